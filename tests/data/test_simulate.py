import gzip
import re
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED

from seq2epi.data.intervals import read_gff_genes, read_peaks
from seq2epi.data.sequence import Genome, encode, gc_content, pad_batch
from seq2epi.data.simulate import RULES, _revcomp, call_peaks, simulate_demo, simulate_population


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return simulate_demo(out)


def auroc(pos, neg):
    ranks = pd.Series(np.r_[pos, neg]).rank().to_numpy()
    return (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def test_layout(demo):
    samples = pd.read_csv(demo, sep="\t")
    assert list(samples.columns) == ["variety", "mark", "fasta", "peaks"]
    assert len(samples) == 6 and set(samples["mark"]) == {"H3K4me3", "H3K27me3"}
    assert samples.loc[samples["variety"] == "V1", "fasta"].unique().tolist() == ["genome.fa"]
    for row in samples.itertuples():
        genome = Genome(demo.parent / row.fasta)
        assert genome.chrom_sizes == {"chr01": 200_000, "chr02": 200_000, "chr03": 200_000}
        peaks = read_peaks(demo.parent / row.peaks, genome.chrom_sizes)
        assert (
            len(peaks) > 10 and ((peaks["summit"] >= peaks["start"]) & (peaks["summit"] < peaks["end"])).all()
        )
        assert len(pd.read_csv(demo.parent / row.peaks, sep="\t", header=None).columns) == 10
    lines = (demo.parent / "V2.fa").read_text().splitlines()
    assert max(len(line) for line in lines) == 60
    genes = read_gff_genes(demo.parent / "genes.gff")
    assert set(genes["strand"]) == {"+", "-"} and genes["name"].iloc[0] == "DemoG0001"


def test_same_seed_same_files(tmp_path):
    a = simulate_demo(tmp_path / "a", n_chroms=1, chrom_len=30_000, n_varieties=2, seed=5).parent
    b = simulate_demo(tmp_path / "b", n_chroms=1, chrom_len=30_000, n_varieties=2, seed=5).parent
    c = simulate_demo(tmp_path / "c", n_chroms=1, chrom_len=30_000, n_varieties=2, seed=6).parent
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 9 and not any(p.suffix == ".tmp" for p in files)
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in files)
    assert (a / "genome.fa").read_bytes() != (c / "genome.fa").read_bytes()


def test_varieties_carry_snps_and_their_own_peaks(demo):
    ref, var = Genome(demo.parent / "genome.fa"), Genome(demo.parent / "V2.fa")
    r, v = ref.fetch("chr01", 0, 200_000), var.fetch("chr01", 0, 200_000)
    diff = np.frombuffer(r.encode(), np.uint8) != np.frombuffer(v.encode(), np.uint8)
    assert 0.002 < diff.mean() < 0.004
    for mark, rule in RULES.items():
        peaks = pd.read_csv(demo.parent / f"peaks/V2_{mark}.narrowPeak", sep="\t", header=None)
        mine = [(s, e) for s, e, _, _ in call_peaks(v, rule)]
        assert peaks.loc[peaks[0] == "chr01", [1, 2]].apply(tuple, axis=1).tolist() == mine
    assert len(pd.read_csv(demo.parent / "variants.vcf", sep="\t", comment="#", header=None)) > 1000


@pytest.mark.parametrize("mark", RULES)
def test_motif_rule_is_planted_and_gc_is_not_enough(demo, mark):
    genome = Genome(demo.parent / "genome.fa")
    peaks = read_peaks(demo.parent / f"peaks/V1_{mark}.narrowPeak", genome.chrom_sizes)
    motif = RULES[mark].motif
    pattern = re.compile(f"(?=({motif}|{_revcomp(motif)}))")
    rng = np.random.default_rng(0)
    pos = [genome.fetch(c, s - 100, s + 100) for c, s in zip(peaks["chrom"], peaks["summit"], strict=True)]
    neg = []
    while len(neg) < 1000:
        chrom = f"chr0{rng.integers(1, 4)}"
        start = int(rng.integers(0, 200_000 - 200))
        here = peaks[peaks["chrom"] == chrom]
        seq = genome.fetch(chrom, start, start + 200)
        if "N" not in seq and not ((here["start"] < start + 200) & (here["end"] > start)).any():
            neg.append(seq)
    motif_auc = auroc([len(pattern.findall(s)) for s in pos], [len(pattern.findall(s)) for s in neg])
    gc = gc_content(pad_batch([encode(s) for s in pos + neg])[0])
    gc_auc = auroc(gc[: len(pos)], gc[len(pos) :])
    assert motif_auc > 0.97
    assert max(gc_auc, 1 - gc_auc) < 0.95, gc_auc


# --- simulate_population: a population of inbred varieties over a real sequence --------------------------


@pytest.fixture(params=["demo", "rice"])
def region(request, demo):
    """(FASTA, chrom, start, end): 50 kb of the demo genome holding its N gap, or of IRGSP-1.0 chr01."""
    if request.param == "demo":
        return demo.parent / "genome.fa", "chr01", 150_000, 200_000
    rice = SHARED / "rice_irgsp1_subset" / "genome.fa"
    if not rice.is_file():
        pytest.skip("shared data absent")
    return rice, "chr01", 100_000, 150_000


def snp_diversity(vcf: Path, n_bases: int) -> float:
    """Mean pairwise differences per bp among the samples, over SNP records."""
    total = 0.0
    for rec in cyvcf2.VCF(str(vcf)):
        if len(rec.REF) == 1 and all(len(a) == 1 for a in rec.ALT):
            counts = np.bincount(rec.genotype.array()[:, 0])
            n = counts.sum()
            total += (n * n - (counts**2).sum()) / (n * (n - 1))
    return total / n_bases


@pytest.mark.slow
def test_population_vcf_matches_reference(region, tmp_path):
    fasta, chrom, start, end = region
    genome = Genome(fasta)
    vcf = simulate_population(fasta, chrom, start, end, 30, tmp_path / "pop.vcf", seed=1)
    reader = cyvcf2.VCF(str(vcf))
    assert reader.samples == [f"SIM{i:04d}" for i in range(1, 31)]
    assert dict(zip(reader.seqnames, reader.seqlens, strict=True)) == genome.chrom_sizes
    records, blocked, n_indels = 0, start, 0
    for rec in reader:
        at = rec.POS - 1
        assert rec.CHROM == chrom and blocked <= at and at + len(rec.REF) <= end
        assert set(rec.REF) <= set("ACGT") and rec.REF == genome.fetch(chrom, at, at + len(rec.REF))
        assert rec.REF not in rec.ALT and all(set(a) <= set("ACGT") for a in rec.ALT)
        gt = rec.genotype.array()
        assert (gt[:, 0] == gt[:, 1]).all() and (gt[:, 0] > 0).any() and not gt[:, 2].any()
        if len(rec.REF) != 1 or len(rec.ALT[0]) != 1:
            assert len(rec.ALT) == 1 and rec.ALT[0][0] == rec.REF[0]
            assert 1 <= abs(len(rec.REF) - len(rec.ALT[0])) <= 10
            n_indels += 1
        blocked = at + len(rec.REF)
        records += 1
    assert records > 300
    assert abs(n_indels / records - 0.1) < 4 * (0.1 * 0.9 / records) ** 0.5, (n_indels, records)


@pytest.mark.slow
def test_population_same_seed_same_file_and_bgzip(demo, tmp_path):
    fasta = demo.parent / "genome.fa"
    a, b, c = (
        simulate_population(fasta, "chr02", 0, 30_000, 12, tmp_path / name, seed=seed)
        for name, seed in [("a.vcf", 3), ("b.vcf", 3), ("c.vcf", 4)]
    )
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    gz = simulate_population(fasta, "chr02", 0, 30_000, 12, tmp_path / "a.vcf.gz", seed=3)
    assert gz.read_bytes()[12:14] == b"BC" and gzip.decompress(gz.read_bytes()) == a.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vcf", "a.vcf.gz", "b.vcf", "c.vcf"]


@pytest.mark.slow
def test_population_single_variety_differs_from_reference(demo, tmp_path):
    vcf = simulate_population(demo.parent / "genome.fa", "chr03", 0, 50_000, 1, tmp_path / "one.vcf")
    gts = [rec.genotype.array()[0, :2].tolist() for rec in cyvcf2.VCF(str(vcf))]
    assert len(gts) > 20 and all(g == [1, 1] for g in gts)


@pytest.mark.parametrize("diversity", [0.002, 0.004])
@pytest.mark.slow
def test_population_diversity_is_calibrated(demo, tmp_path, diversity):
    # A higher recombination rate than the selfing default makes many independent trees in 50 kb, so the
    # mean over five seeds is tight; the calibration itself does not depend on recombination.
    fasta = demo.parent / "genome.fa"
    n_bases = sum(base in "ACGT" for base in Genome(fasta).fetch("chr01", 150_000, 200_000))
    pis = []
    for seed in range(5):
        region = (fasta, "chr01", 150_000, 200_000, 20, tmp_path / f"{seed}.vcf")
        vcf = simulate_population(*region, diversity=diversity, seed=seed, recombination_rate=1e-7)
        pis.append(snp_diversity(vcf, n_bases))
    assert diversity / 1.5 < np.mean(pis) < diversity * 1.5, pis


def test_population_rejects_bad_arguments(demo, tmp_path):
    fasta = demo.parent / "genome.fa"
    with pytest.raises(ValueError, match="n_varieties >= 1"):
        simulate_population(fasta, "chr01", 0, 1000, 0, tmp_path / "x.vcf")
    with pytest.raises(ValueError, match="not in the FASTA"):
        simulate_population(fasta, "chr9", 0, 1000, 5, tmp_path / "x.vcf")
    assert not list(tmp_path.iterdir())
