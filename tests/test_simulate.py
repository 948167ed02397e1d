import re

import numpy as np
import pandas as pd
import pytest

from seq2epi.intervals import read_gff_genes, read_peaks
from seq2epi.sequence import Genome, encode, gc_content, pad_batch
from seq2epi.simulate import RULES, _revcomp, call_peaks, simulate_demo


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
