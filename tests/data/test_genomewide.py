import gzip
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seq2epi.data.genomewide import (
    GenomeWindows,
    blocks,
    chrom_tokens,
    fixed_windows,
    labels_at,
    training_subset,
    window_centres,
    windows,
)
from seq2epi.data.labels import build_labels
from seq2epi.data.sequence import N, decode, reverse_complement

DATA = Path(__file__).parents[1] / "data"
TINY = {"chr1": 50, "chr2": 25, "chr3": 10}


def tiny_labels():
    return build_labels(TINY, bin_size=10, segmentation=DATA / "states.bed", label_map={"active": [1, 2]},
                        peaks={"dhs_leaf": (DATA / "dhs.bed", "wtleaf")})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A 20-kb random chromosome with Ns at 2,000-5,000, states of 100 bp labelled up to 18,000, val
    8,000-12,000 and test 12,000-16,000."""
    folder = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 4, 20_000).astype(np.uint8)
    seq[2_000:5_000] = N
    states = folder / "states.bed"
    states.write_text("".join(f"c\t{s}\t{s + 100}\t{1 + (s // 100) % 3}\n" for s in range(0, 18_000, 100)))
    labels = build_labels({"c": 20_000}, bin_size=50, segmentation=states, label_map={"one": [1], "two": [2]})
    cut = blocks({"c": 20_000}, labels, ["c:8000-12000"], ["c:12000-16000"])
    return {"c": seq}, labels, cut


def test_chrom_tokens_reads_plain_and_gzip_and_chooses_chromosomes(tmp_path):
    plain = chrom_tokens(DATA / "tiny.fa")
    assert {k: decode(v) for k, v in plain.items()} == {
        "chr1": "ACGTACGTNNACGTNNACGTACGTTTGGCCAAGGTTCCAAGGCCNNACGT", "chr2": "TTTTGGGGCCCCAAAANNNNACGTA",
        "chr3": "NNNNNACGTA"}
    packed = tmp_path / "tiny.fa.gz"
    packed.write_bytes(gzip.compress((DATA / "tiny.fa").read_bytes()))
    chosen = chrom_tokens(packed, ["chr2"])
    assert list(chosen) == ["chr2"] and chosen["chr2"].dtype == np.uint8
    np.testing.assert_array_equal(chosen["chr2"], plain["chr2"])
    with pytest.raises(ValueError, match=r"tiny.fa has no chromosome\(s\) \['chr9'\]"):
        chrom_tokens(DATA / "tiny.fa", ["chr2", "chr9"])


def test_blocks_cut_the_labelled_extent_at_held_out_regions():
    cut = blocks(TINY, tiny_labels(), ["chr1:20-30"], ["chr2"])
    assert cut.values.tolist() == [["chr1", 0, 20, "train"], ["chr1", 20, 30, "val"],
                                   ["chr1", 30, 40, "train"], ["chr2", 0, 25, "test"]]
    with pytest.raises(ValueError, match="validation region chr1:20-30 and test region chr1:25-45 overlap"):
        blocks(TINY, tiny_labels(), ["chr1:20-30"], ["chr1:25-45"])
    with pytest.raises(ValueError, match="chromosome 'chr9' is not in the genome"):
        blocks(TINY, tiny_labels(), ["chr9:0-10"], [])


def test_window_centres_tile_inside_blocks_and_windows_read_them():
    cut = blocks(TINY, tiny_labels(), ["chr1:20-30"], ["chr2"])
    centres = window_centres(cut, "train", window=8, stride=5)
    assert centres.values.tolist() == [["chr1", 4, 0, 8], ["chr1", 9, 5, 13], ["chr1", 14, 10, 18],
                                       ["chr1", 34, 30, 38]]
    tokens = chrom_tokens(DATA / "tiny.fa")
    got = windows(tokens, centres, 8)
    assert got.dtype == np.uint8 and got.shape == (4, 8)
    assert decode(got[1]) == "CGTNNACG" and decode(got[3]) == "AAGGTTCC"
    off = windows(tokens, pd.DataFrame({"chrom": ["chr2", "chr2"], "centre": [1, 24]}), 6)
    assert [decode(row) for row in off] == ["NNTTTT", "CGTANN"]
    assert window_centres(cut, "val", window=12, stride=1).empty


def test_fixed_windows_drop_n_rich_and_unlabelled_windows(toy):
    tokens, labels, cut = toy
    centres, seqs, targets = fixed_windows(tokens, labels, cut, "train", window=200, stride=100,
                                           centre_bin=100, max_n_fraction=0.1)
    assert seqs.shape == (len(centres), 200) and targets.shape == (len(centres), 2)
    assert ((seqs == N).mean(1) <= 0.1).all() and not np.isnan(targets).all(1).any()
    assert set(centres["start"]).isdisjoint(range(1_900, 5_000))  # N-rich
    assert centres["end"].max() <= 18_000
    assert not ((centres["end"] > 8_000) & (centres["start"] < 16_000)).any()
    np.testing.assert_array_equal(seqs, windows(tokens, centres, 200))
    np.testing.assert_array_equal(targets, labels.at("c", centres["centre"].to_numpy(), 100))


def test_training_draws_stay_in_train_blocks_avoid_n_and_match_labels(toy):
    tokens, labels, cut = toy
    data = GenomeWindows(tokens, labels, cut, "train", window=200, centre_bin=100, windows_per_epoch=3000)
    start = data.starts
    assert len(data) == 3000 and len(np.unique(start)) > 2000
    assert (((start >= 0) & (start + 200 <= 8_000)) | ((start >= 16_000) & (start + 200 <= 18_000))).all()
    assert not ((start + 200 > 2_020) & (start < 4_980)).any()  # more than 20 N
    x, y = data[7]
    assert x.dtype.is_floating_point is False and x.shape == (200,) and y.shape == (2,)
    np.testing.assert_array_equal(x.numpy(), tokens["c"][start[7]:start[7] + 200])
    np.testing.assert_array_equal(y.numpy(), labels.at("c", start[7:8] + 100, 100)[0])
    np.testing.assert_array_equal(data.targets, labels_at(labels, data.chroms, start + 100, 100))


def test_an_epochs_draw_depends_only_on_seed_and_epoch(toy):
    tokens, labels, cut = toy
    args = dict(window=200, centre_bin=100, windows_per_epoch=500, rc_augment=True, seed=3)
    run = GenomeWindows(tokens, labels, cut, "train", **args)
    draws = []
    for epoch in range(4):
        run.set_epoch(epoch)
        draws.append((run.starts.copy(), run.flip.copy()))
    resumed = GenomeWindows(tokens, labels, cut, "train", **args)
    resumed.set_epoch(3)
    np.testing.assert_array_equal(resumed.starts, draws[3][0])
    np.testing.assert_array_equal(resumed.flip, draws[3][1])
    assert not np.array_equal(draws[2][0], draws[3][0])
    other_seed = GenomeWindows(tokens, labels, cut, "train", **{**args, "seed": 4})
    assert not np.array_equal(other_seed.starts, draws[0][0])


def test_rc_augment_flips_half_the_windows_and_keeps_labels(toy):
    tokens, labels, cut = toy
    data = GenomeWindows(tokens, labels, cut, "val", window=200, centre_bin=100, windows_per_epoch=1000,
                         rc_augment=True)
    assert 400 < data.flip.sum() < 600
    i = int(np.flatnonzero(data.flip)[0])
    x, y = data[i]
    plain = tokens["c"][data.starts[i]:data.starts[i] + 200]
    np.testing.assert_array_equal(x.numpy(), reverse_complement(plain))
    np.testing.assert_array_equal(y.numpy(), data.targets[i])
    assert ((data.starts >= 8_000) & (data.starts + 200 <= 12_000)).all()


def test_impossible_draws_are_refused(toy):
    tokens, labels, cut = toy
    with pytest.raises(ValueError, match="no 5000-bp window fits inside a val block"):
        GenomeWindows(tokens, labels, cut, "val", window=5000, centre_bin=100, windows_per_epoch=10)
    n_only = {"c": np.full(20_000, N, np.uint8)}
    with pytest.raises(ValueError, match="have at most 10% N and a labelled centre"):
        GenomeWindows(n_only, labels, cut, "train", window=200, centre_bin=100, windows_per_epoch=10)


def test_real_chr1_states_and_leaf_dhs(shared_data):
    folder = shared_data / "arabidopsis_tair10_chr1"
    clock = time.perf_counter()
    tokens = chrom_tokens(folder / "chr1.fa.gz")
    sizes = {name: len(seq) for name, seq in tokens.items()}
    assert sizes == {"NC_003070.9": 30_427_671}
    labels = build_labels(sizes, bin_size=50, segmentation=folder / "chromatin_states.bed",
                          label_map={"active": [1, 2], "polycomb": [5], "heterochromatin": [8, 9],
                                     "genebody": [6, 7]}, label_states=list(range(1, 10)),
                          peaks={"dhs_leaf": (folder / "dhs_zhang2012.bed", "wtleaf")})
    cut = blocks(sizes, labels, ["NC_003070.9:15000000-20000000"], ["NC_003070.9:20000000-25000000"])
    assert cut[["start", "end", "split"]].values.tolist() == [[0, 15_000_000, "train"],
                                                              [15_000_000, 20_000_000, "val"],
                                                              [20_000_000, 25_000_000, "test"]]
    data = GenomeWindows(tokens, labels, cut, "train", window=1024, centre_bin=200, windows_per_epoch=10_000,
                         rc_augment=True)
    built = time.perf_counter() - clock
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the process's, torch included
    clock = time.perf_counter()
    data.set_epoch(1)
    draw = time.perf_counter() - clock
    assert (data.starts + 1024 <= 15_000_000).all() and (data.starts >= 0).all()
    positives = np.nanmean(data.targets, axis=0).astype(float).round(3).tolist()
    rates = dict(zip(labels.targets, positives, strict=True))
    print(f"\nchr1: read + labels + blocks + first draw {built:.1f} s, peak process memory "
          f"{peak / 2**20:.0f} MiB, a draw of 10,000 windows {draw * 1000:.0f} ms; positives {rates}")
    assert not np.isnan(data.targets).any()  # every training centre lies inside the segmentation
    for target in ("active", "polycomb", "heterochromatin", "genebody"):
        assert 0.05 < rates[target] < 0.45, rates
    assert 0.005 < rates["dhs_leaf"] < 0.2, rates
    assert peak < 4 * 2**30 and draw < 2.0
    val_centres, val_tokens, val_targets = fixed_windows(tokens, labels, cut, "val", 1024, 5000, 200, 0.1)
    assert val_centres["start"].min() >= 15_000_000 and val_centres["end"].max() <= 20_000_000
    assert len(val_centres) > 900 and val_tokens.shape[1] == 1024
    assert np.isnan(labels.at("NC_003070.9", np.array([26_000_000]), 200)).all()


def _span(cut: pd.DataFrame, split: str) -> int:
    part = cut[cut["split"] == split]
    return int((part["end"] - part["start"]).sum())


def test_training_subset_keeps_nested_spread_pieces_of_the_training_blocks():
    blocks = pd.DataFrame({"chrom": ["c", "c", "c"], "start": [0, 6_000_000, 8_000_000],
                           "end": [6_000_000, 8_000_000, 12_000_000], "split": ["train", "val", "train"]})
    small, large = (training_subset(blocks, bp, seed=3) for bp in (1_000_000, 3_000_000))
    for cut, bp in ((small, 1_000_000), (large, 3_000_000)):
        spans = (_span(cut, "train"), _span(cut, "unused"), _span(cut, "val"))
        assert spans == (bp, 10_000_000 - bp, 2_000_000)
    kept = [set(map(tuple, cut.loc[cut["split"] == "train", ["start", "end"]].values.tolist()))
            for cut in (small, large)]
    assert kept[0] < kept[1]
    assert training_subset(blocks, 0, seed=3) is blocks
    with pytest.raises(ValueError, match="more than the 10,000,000 bp"):
        training_subset(blocks, 11_000_000, seed=3)
