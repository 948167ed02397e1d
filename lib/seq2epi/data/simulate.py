"""A simulated rice-like demo: genome, genes, SNP varieties and histone-mark peaks that follow planted motifs.

Peaks are called from each variety's own sequence by one rule per mark: a cluster of at least `min_count`
exact motif hits (either strand), consecutive hits at most `max_gap` bp apart. Planting puts such clusters at
~70% of promoters (H3K4me3, CpG-like motif in a GC-rich stretch) and in the bodies of some other genes
(H3K27me3, GAGA-like motif in an AT-rich stretch); decoy stretches of the same composition with mutated motif
copies sit elsewhere, so GC content alone is a clearly imperfect predictor.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from Bio import bgzf

from seq2epi.data.sequence import Genome
from seq2epi.lab.io import atomic_path

_ASCII = np.frombuffer(b"ACGT", dtype=np.uint8)


@dataclass(frozen=True)
class MarkRule:
    motif: str
    min_count: int
    max_gap: int
    pad: int


RULES = {
    "H3K4me3": MarkRule("GCGGCGGC", min_count=3, max_gap=100, pad=100),
    "H3K27me3": MarkRule("CTCTCTCT", min_count=4, max_gap=350, pad=200),
}


def _revcomp(seq: str) -> str:
    return seq.translate(str.maketrans("ACGT", "ACGT"[::-1]))[::-1]


def _dna(rng: np.random.Generator, gc: np.ndarray) -> np.ndarray:
    """Random ASCII bases with per-position GC probability `gc`."""
    strong = rng.random(gc.shape) < gc
    coin = rng.random(gc.shape) < 0.5
    return np.where(strong, np.where(coin, ord("G"), ord("C")), np.where(coin, ord("A"), ord("T"))).astype(
        np.uint8
    )


def _stretch(seq: np.ndarray, start: int, length: int, gc: float, rng: np.random.Generator) -> None:
    start, end = max(start, 0), min(start + length, len(seq))
    seq[start:end] = _dna(rng, np.full(end - start, gc))


def _plant(
    seq: np.ndarray, start: int, end: int, motif: str, n: int, p_mutate: float, rng: np.random.Generator
) -> None:
    """Write n motif copies (random strand, one base mutated with p_mutate) in n slots of [start, end)."""
    k = len(motif)
    slot = (end - start) // n
    for i in range(n):
        copy = np.frombuffer(
            (motif if rng.random() < 0.5 else _revcomp(motif)).encode(), dtype=np.uint8
        ).copy()
        if rng.random() < p_mutate:
            j = rng.integers(k)
            copy[j] = rng.choice(_ASCII[_ASCII != copy[j]])
        at = start + i * slot + int(rng.integers(max(slot - k, 0) + 1))
        seq[at : at + k] = copy


def _chromosome(rng: np.random.Generator, length: int, first_gene: int) -> tuple[np.ndarray, list[tuple]]:
    """One chromosome (ASCII uint8) and its genes (start, end, strand, name)."""
    block = 2000  # isochore-like blocks: AT-rich, average or GC-rich, ~43% GC overall
    level = rng.choice(np.array([0.33, 0.41, 0.58]), size=length // block + 1, p=[0.3, 0.4, 0.3])
    gc = np.clip(level + rng.normal(0, 0.02, level.shape), 0.25, 0.65)
    seq = _dna(rng, np.repeat(gc, block)[:length])
    k4_motif, k27_motif = RULES["H3K4me3"].motif, RULES["H3K27me3"].motif
    genes = []
    pos = int(rng.integers(500, 2500))
    while True:
        glen = int(rng.integers(1500, 4000))
        if pos + glen > length - 3000:
            break
        strand = "+" if rng.random() < 0.5 else "-"
        genes.append((pos, pos + glen, strand, f"DemoG{first_gene + len(genes):04d}"))
        gap = int(rng.integers(800, 3000))
        if rng.random() < 0.6:  # intergenic decoy: GC-rich or AT-rich stretch with mutated motifs only
            at = pos + glen + gap // 2 - 150
            decoy_gc, motif = (0.55, k4_motif) if rng.random() < 0.6 else (0.32, k27_motif)
            _stretch(seq, at, 300, decoy_gc, rng)
            _plant(seq, at + 50, at + 250, motif, 2, 1.0, rng)
        pos += glen + gap
    for start, end, strand, _ in genes:
        tss = start if strand == "+" else end
        centre = tss - 50 if strand == "+" else tss + 50
        _stretch(seq, centre - 200, 400, 0.50, rng)
        k4_marked = rng.random() < 0.78
        if k4_marked:
            _plant(seq, centre - 100, centre + 100, k4_motif, int(rng.integers(4, 8)), 0.2, rng)
        else:
            _plant(seq, centre - 100, centre + 100, k4_motif, 2, 1.0, rng)
        body = int(rng.integers(start + 300, max(start + 301, end - 1100)))
        if not k4_marked and rng.random() < 0.9:
            _stretch(seq, body, 1000, 0.32, rng)
            _plant(seq, body, body + 1000, k27_motif, int(rng.integers(6, 11)), 0.2, rng)
        elif rng.random() < 0.5:
            _stretch(seq, body, 1000, 0.32, rng)
            _plant(seq, body, body + 1000, k27_motif, 2, 1.0, rng)
    seq[length - 1500 : length - 1000] = ord("N")  # an assembly gap
    return seq, genes


def call_peaks(seq: str, rule: MarkRule) -> list[tuple[int, int, int, int]]:
    """Peaks (start, end, summit offset, hit count) of `rule` in one chromosome sequence."""
    motifs = {rule.motif, _revcomp(rule.motif)}
    hits = np.array(
        [m.start() for m in re.finditer(f"(?=({'|'.join(sorted(motifs))}))", seq)], dtype=np.int64
    )
    if not hits.size:
        return []
    k = len(rule.motif)
    peaks = []
    for cluster in np.split(hits, np.flatnonzero(np.diff(hits) > rule.max_gap) + 1):
        if len(cluster) < rule.min_count:
            continue
        near = np.searchsorted(cluster, cluster + 100, "right") - np.searchsorted(
            cluster, cluster - 100, "left"
        )
        summit = int(cluster[near.argmax()]) + k // 2
        start, end = max(int(cluster[0]) - rule.pad, 0), min(int(cluster[-1]) + k + rule.pad, len(seq))
        peaks.append((start, end, summit - start, len(cluster)))
    return peaks


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _fasta(chroms: dict[str, str]) -> str:
    return "".join(
        f">{name}\n" + "\n".join(s[i : i + 60] for i in range(0, len(s), 60)) + "\n"
        for name, s in chroms.items()
    )


def _vcf(ref: dict[str, str], varieties: dict[str, dict[str, str]]) -> str:
    """Homozygous SNVs of every variety against the reference."""
    names = list(varieties)
    lines = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    lines += [f"##contig=<ID={c},length={len(s)}>" for c, s in ref.items()]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *names]))
    for chrom, r in ref.items():
        rarr = np.frombuffer(r.encode(), dtype=np.uint8)
        arrs = [np.frombuffer(varieties[v][chrom].encode(), dtype=np.uint8) for v in names]
        for pos in np.flatnonzero(np.any([a != rarr for a in arrs], axis=0)):
            alleles = [chr(a[pos]) for a in arrs]
            alts = sorted({a for a in alleles if a != r[pos]})
            gts = ["0/0" if a == r[pos] else f"{alts.index(a) + 1}/{alts.index(a) + 1}" for a in alleles]
            lines.append(
                "\t".join([chrom, str(pos + 1), ".", r[pos], ",".join(alts), ".", "PASS", ".", "GT", *gts])
            )
    return "\n".join(lines) + "\n"


def simulate_demo(
    out_dir: str | os.PathLike,
    n_chroms: int = 3,
    chrom_len: int = 200_000,
    n_varieties: int = 3,
    marks: tuple[str, ...] = ("H3K4me3", "H3K27me3"),
    seed: int = 0,
    sheet: str = "fasta",
) -> Path:
    """Write genome.fa, V<i>.fa, variants.vcf, genes.gff, peaks/ and samples.tsv; return samples.tsv.

    V1 is the reference. The sheet gives each variety as its FASTA (`sheet="fasta"`), or as the reference
    plus its sample of variants.vcf (`sheet="vcf"`); the varieties differ by SNVs, so peaks called on a
    variety's own sequence are in reference coordinates either way.
    """
    if sheet not in ("fasta", "vcf"):
        raise ValueError(f"sheet must be 'fasta' or 'vcf', got {sheet!r}.")
    unknown = [m for m in marks if m not in RULES]
    if unknown:
        raise ValueError(f"marks {unknown} have no simulation rule; choose from {list(RULES)}.")
    if chrom_len < 10_000 or n_chroms < 1 or n_varieties < 1:
        raise ValueError("simulate_demo needs n_chroms >= 1, n_varieties >= 1 and chrom_len >= 10,000 bp.")
    out = Path(out_dir)
    (out / "peaks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ref, gff = {}, ["##gff-version 3"]
    n_genes = 0
    for c in range(n_chroms):
        name = f"chr{c + 1:02d}"
        seq, genes = _chromosome(rng, chrom_len, n_genes + 1)
        n_genes += len(genes)
        ref[name] = seq.tobytes().decode()
        gff.append(f"##sequence-region {name} 1 {chrom_len}")
        for start, end, strand, gene in genes:
            common = f"{name}\tseq2epi\t{{}}\t{start + 1}\t{end}\t.\t{strand}\t.\t"
            gff.append(common.format("gene") + f"ID={gene};Name={gene}")
            gff.append(common.format("mRNA") + f"ID={gene}.1;Parent={gene};Name={gene}.1")
    varieties = {"V1": ref}
    for v in range(2, n_varieties + 1):
        chroms = {}
        for name, s in ref.items():
            arr = np.frombuffer(s.encode(), dtype=np.uint8).copy()
            pos = rng.choice(len(arr), size=round(0.003 * len(arr)), replace=False)
            pos = np.sort(pos[arr[pos] != ord("N")])
            idx = np.searchsorted(_ASCII, arr[pos])
            arr[pos] = _ASCII[(idx + rng.integers(1, 4, len(pos))) % 4]
            chroms[name] = arr.tobytes().decode()
        varieties[f"V{v}"] = chroms
    _write(out / "genes.gff", "\n".join(gff) + "\n")
    columns = ["fasta"] if sheet == "fasta" else ["reference", "vcf", "vcf_sample"]
    samples = ["\t".join(["variety", "mark", *columns, "peaks"])]
    for variety, chroms in varieties.items():
        fasta = "genome.fa" if variety == "V1" else f"{variety}.fa"
        _write(out / fasta, _fasta(chroms))
        for mark in marks:
            rows = []
            for name, s in chroms.items():
                for start, end, offset, count in call_peaks(s, RULES[mark]):
                    rows.append(
                        f"{name}\t{start}\t{end}\t{variety}_{mark}_{len(rows) + 1}\t{min(1000, 100 * count)}"
                        f"\t.\t{count:.1f}\t-1\t-1\t{offset}"
                    )
            peaks = f"peaks/{variety}_{mark}.narrowPeak"
            _write(out / peaks, "\n".join(rows) + "\n")
            given = fasta if sheet == "fasta" else f"genome.fa\tvariants.vcf\t{variety}"
            samples.append(f"{variety}\t{mark}\t{given}\t{peaks}")
    if n_varieties > 1 or sheet == "vcf":
        _write(out / "variants.vcf", _vcf(ref, varieties))
    _write(out / "samples.tsv", "\n".join(samples) + "\n")
    return out / "samples.tsv"


# ---------------------------------------------------------------------------------------------------------
# Populations of inbred varieties (msprime) over a real sequence, for scale tests
#
# msprime simulates n_varieties + 1 haploid genomes (rice is inbred: a variety is one haplotype); the extra
# one is the reference, so REF is the FASTA base and a variety differs from it as one member of the
# population from another. For haploid samples the mean pairwise coalescence time is population_size
# generations, so the per-generation mutation rate diversity / (2 * population_size * (1 - indel_fraction))
# makes the SNP nucleotide diversity `diversity`. Mutations follow HKY (uniform base frequencies,
# transition/transversion ratio kappa); a site's alleles are relabelled onto the FASTA base by an XOR of
# base indices, which keeps transitions transitions. A fraction indel_fraction of sites become 1-10 bp indels
# (length k with probability ~ 1/k, half insertions of random bases, half deletions of reference bases).
# Sites at N, deletions crossing N or the interval end, and sites inside an earlier deletion are dropped and
# counted in the ##seq2epi_simulation header line. A name ending in .gz is written BGZF-compressed, unindexed
# (run `tabix -p vcf` to index it).
# ---------------------------------------------------------------------------------------------------------

_BASE_INDEX = np.full(256, -1, dtype=np.int8)
_BASE_INDEX[_ASCII] = np.arange(4)
_GT = np.frombuffer(b"".join(f"\t{k}/{k}".encode() for k in range(4)), dtype=np.uint8).reshape(4, 4)
_INDEL_LENGTHS = np.arange(1, 11)
_INDEL_WEIGHTS = (1 / _INDEL_LENGTHS) / (1 / _INDEL_LENGTHS).sum()


def _population_plan(
    ref: bytes, positions: np.ndarray, indel_fraction: float, rng: np.random.Generator
) -> tuple[list, dict[str, int]]:
    """Per site: None (dropped), "snp", or the (REF, ALT) of an indel; and the counts of dropped sites."""
    n = len(positions)
    indel = rng.random(n) < indel_fraction
    deletion = rng.random(n) < 0.5
    lengths = rng.choice(_INDEL_LENGTHS, size=n, p=_INDEL_WEIGHTS)
    inserted = _ASCII[rng.integers(0, 4, size=(n, _INDEL_LENGTHS[-1]))]
    plan, dropped, blocked = [], {"at_N": 0, "indel_overlap": 0}, 0
    for i, p in enumerate(positions.tolist()):
        if ref[p] not in b"ACGT":
            plan.append(None)
            dropped["at_N"] += 1
        elif p < blocked:
            plan.append(None)
            dropped["indel_overlap"] += 1
        elif not indel[i]:
            plan.append("snp")
        elif deletion[i]:
            span = ref[p : p + lengths[i] + 1]
            if len(span) <= lengths[i] or span.translate(None, b"ACGT"):
                plan.append(None)
                dropped["indel_overlap"] += 1
            else:
                plan.append((span.decode(), chr(ref[p])))
                blocked = p + len(span)
        else:
            plan.append((chr(ref[p]), chr(ref[p]) + inserted[i, : lengths[i]].tobytes().decode()))
    return plan, dropped


def simulate_population(
    fasta: str | os.PathLike,
    chrom: str,
    start: int,
    end: int,
    n_varieties: int,
    out_vcf: str | os.PathLike,
    diversity: float = 0.003,
    indel_fraction: float = 0.1,
    seed: int = 0,
    recombination_rate: float = 1e-10,
    population_size: int = 10_000,
    kappa: float = 2.0,
) -> Path:
    """Write a VCF of `n_varieties` inbred varieties simulated over chrom:[start, end) of `fasta`."""
    import msprime  # ~1 s to import, and only this function needs it

    if n_varieties < 1 or not 0 <= indel_fraction < 1 or diversity <= 0 or end <= start:
        raise ValueError(
            f"simulate_population needs n_varieties >= 1, 0 <= indel_fraction < 1, diversity > 0 and a "
            f"non-empty interval; got {n_varieties}, {indel_fraction}, {diversity}, {chrom}:{start}-{end}."
        )
    genome = Genome(fasta)
    ref = genome.fetch(chrom, start, end).encode()
    rng = np.random.default_rng(seed)
    ancestry_seed, mutation_seed = (int(s) for s in rng.integers(1, 2**31, size=2))
    mutation_rate = diversity / (2 * population_size * (1 - indel_fraction))
    ts = msprime.sim_ancestry(
        samples=n_varieties + 1,
        ploidy=1,
        population_size=population_size,
        sequence_length=end - start,
        recombination_rate=recombination_rate,
        random_seed=ancestry_seed,
    )
    ts = msprime.sim_mutations(
        ts, rate=mutation_rate, model=msprime.HKY(kappa=kappa), random_seed=mutation_seed
    )
    plan, dropped = _population_plan(ref, ts.tables.sites.position.astype(np.int64), indel_fraction, rng)
    names = [f"SIM{i + 1:04d}" for i in range(n_varieties)]
    header = [
        "##fileformat=VCFv4.2",
        f"##source=seq2epi.simulate_population(msprime {msprime.__version__})",
        f"##reference={Path(fasta).resolve()}",
        *(f"##contig=<ID={c},length={size}>" for c, size in genome.chrom_sizes.items()),
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        f"##seq2epi_simulation=<region={chrom}:{start}-{end},seed={seed},diversity={diversity},"
        f"population_size={population_size},mutation_rate={mutation_rate:.6g},"
        f"recombination_rate={recombination_rate:g},kappa={kappa},indel_fraction={indel_fraction},"
        f"sites={ts.num_sites},dropped_at_N={dropped['at_N']},dropped_indel_overlap={dropped['indel_overlap']}>",
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *names]),
    ]
    out = Path(out_vcf)
    with atomic_path(out) as tmp, (bgzf.BgzfWriter(str(tmp), "wb") if out.name.endswith(".gz")
                                   else open(tmp, "wb")) as f:
        f.write(("\n".join(header) + "\n").encode())
        for variant, what in zip(ts.variants(), plan, strict=True):
            if what is None:
                continue
            p = int(variant.site.position)
            r = int(_BASE_INDEX[ref[p]])
            states = _BASE_INDEX[np.frombuffer("".join(variant.alleles).encode(), dtype=np.uint8)]
            g = variant.genotypes
            bases = (states ^ (states[g[0]] ^ r))[g[1:]]  # XOR keeps A<->G and C<->T transitions
            if (bases == r).all():
                continue
            if what == "snp":
                alts = np.unique(bases[bases != r])
                code = np.zeros(4, dtype=np.intp)
                code[alts] = np.arange(1, len(alts) + 1)
                ref_allele, alt_allele = chr(ref[p]), ",".join(chr(_ASCII[a]) for a in alts)
                gts = _GT[code[bases]]
            else:
                (ref_allele, alt_allele), gts = what, _GT[(bases != r).astype(np.intp)]
            line = f"{chrom}\t{start + p + 1}\t.\t{ref_allele}\t{alt_allele}\t.\tPASS\t.\tGT"
            f.write(line.encode() + gts.tobytes() + b"\n")
    return out
