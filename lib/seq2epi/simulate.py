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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
) -> Path:
    """Write genome.fa, V<i>.fa, variants.vcf, genes.gff, peaks/ and samples.tsv; return samples.tsv."""
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
    samples = ["variety\tmark\tfasta\tpeaks"]
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
            samples.append(f"{variety}\t{mark}\t{fasta}\t{peaks}")
    if n_varieties > 1:
        _write(out / "variants.vcf", _vcf(ref, varieties))
    _write(out / "samples.tsv", "\n".join(samples) + "\n")
    return out / "samples.tsv"
