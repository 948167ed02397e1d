from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seq2epi.data.datasets import (
    WindowDataset,
    collate_trim,
    group_split,
    load_dataset,
    overlap_groups,
    random_split,
    read_labeled_csv,
    save_dataset,
    validation_split,
)
from seq2epi.data.sequence import PAD, decode, encode, pad_batch

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture
def windows():
    tokens, lengths = pad_batch([encode(s) for s in ["ACGTAC", "GGN", "TTTTA", "CA"]], length=8)
    return tokens, lengths, np.array([1, 0, 1, 0], dtype=np.float32)


def test_read_labeled_csv_both_headers():
    df = read_labeled_csv(DATA / "labeled.csv")
    assert list(df.columns) == ["sequence", "label"]
    assert df["sequence"].tolist() == ["ACGTACGTAC", "ACGTNNACGT", "GGGGCCCCAA"]  # as the model reads them
    assert df.index.tolist() == [2, 3, 4]  # lines of the file
    assert df["label"].tolist() == [1, 0, 1] and df["label"].dtype == np.int64
    assert read_labeled_csv(DATA / "labeled_lower.csv").values.tolist() == [["ACGT", 0], ["TTTTGGGG", 1]]


@pytest.mark.parametrize(
    "text, match",
    [
        ("seq,label\nACGT,1\n", r"line 1: expected a header with columns sequence,label"),
        ("sequence,label\nACGT,1\nACGT,2\n", r"line 3: label must be 0 or 1, got '2'"),
        ("sequence,label\nACGT,1\nACGT,yes\n", r"line 3: label must be 0 or 1, got 'yes'"),
        ("sequence,label\n\nACGT,1\n,0\n", r"line 4: empty sequence"),
        ("sequence,label\nACGT\n", r"line 2: expected 2 columns, got 1"),
        ("sequence,label\n", r"has a header but no records"),
    ],
)
def test_read_labeled_csv_errors_name_file_and_line(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"bad\.csv.*{match}"):
        read_labeled_csv(path)


def test_read_labeled_csv_reads_gzip_and_a_byte_order_mark():
    plain = read_labeled_csv(DATA / "labeled.csv")
    assert read_labeled_csv(DATA / "labeled.csv.gz").equals(plain)
    bom = read_labeled_csv(DATA / "labeled_bom.csv")
    assert bom.values.tolist() == [["ACGTACGTAC", 1], ["GGGGCCCCAA", 0]]


def test_read_labeled_csv_names_the_line_that_is_not_utf8_and_a_damaged_gzip(tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("sequence,label\nACGT,1\nACGT,0 # séquence\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.csv line 3: expected UTF-8 text"):
        read_labeled_csv(latin1)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes((DATA / "labeled.csv.gz").read_bytes()[:30])
    with pytest.raises(ValueError, match=r"cut\.csv\.gz: a damaged gzip file"):
        read_labeled_csv(truncated)


def test_read_labeled_csv_names_the_shortest_sequence_below_min_length():
    assert len(read_labeled_csv(DATA / "short.csv", min_length=6)) == 4
    with pytest.raises(ValueError, match=r"short\.csv line 4: its sequence of 6 bp is shorter than the "
                                         r"largest k-mer \(9 bp\), as are 1 other\(s\)"):
        read_labeled_csv(DATA / "short.csv", min_length=9)


def test_random_split_seeded():
    mask = random_split(100, 0.2, seed=3)
    assert mask.dtype == bool and mask.sum() == 20
    assert np.array_equal(mask, random_split(100, 0.2, seed=3))
    assert not np.array_equal(mask, random_split(100, 0.2, seed=4))
    with pytest.raises(ValueError, match="val_fraction"):
        random_split(10, 1.0, seed=0)


def _random_dna(n: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), n))


def test_overlap_groups_join_windows_sharing_31_bp_on_either_strand():
    genome = _random_dna(400, 0)
    reverse = genome[150:250].translate(str.maketrans("ACGT", "TGCA"))[::-1]
    seqs = [genome[0:100], genome[69:169], genome[150:250], genome[300:400], reverse, genome[131:200]]
    groups = overlap_groups(seqs, k=31)
    # 0-1 share 31 bp, 1-2 share 19 bp but 5 bridges them; 4 is 2 reverse-complemented; 3 stands alone
    assert groups[0] == groups[1] == groups[2] == groups[4] == groups[5]
    assert groups[3] != groups[0]
    assert len(set(overlap_groups(seqs[:2], k=32))) == 2


def test_group_split_takes_whole_groups_seeded():
    groups = np.repeat(np.arange(50), np.arange(50) % 4 + 1)
    mask = group_split(groups, 0.2, seed=1)
    for g in np.unique(groups):
        assert len(set(mask[groups == g])) == 1
    assert abs(mask.sum() - 0.2 * len(groups)) <= 4
    assert np.array_equal(mask, group_split(groups, 0.2, seed=1))
    assert not np.array_equal(mask, group_split(groups, 0.2, seed=2))


def test_validation_split_overlap_keeps_overlapping_windows_together():
    genome = _random_dna(20000, 1)
    seqs = [genome[i:i + 200] for i in range(0, 19800, 100)]  # every window overlaps its neighbours
    seqs += [_random_dna(200, 10 + i) for i in range(200)]
    mask = validation_split(seqs, 0.3, seed=0)
    assert not mask[:198].any() or mask[:198].all()
    assert validation_split(seqs, 0.3, seed=0, how="random")[:198].any()
    with pytest.raises(ValueError, match="val_split must be 'overlap' or 'random'"):
        validation_split(seqs, 0.3, seed=0, how="blocks")


def test_save_load_round_trip_with_meta(tmp_path, windows):
    tokens, lengths, labels = windows
    path = tmp_path / "sub" / "windows.npz"
    save_dataset(path, tokens, lengths, labels, ["train", "val", "test", "train"], mark="H3K4me3", window=8)
    assert sorted(p.name for p in path.parent.iterdir()) == ["windows.npz"]  # no .tmp left behind
    ds = load_dataset(path)
    assert np.array_equal(ds["tokens"], tokens) and ds["tokens"].dtype == np.uint8
    assert np.array_equal(ds["lengths"], lengths)
    assert ds["labels"].dtype == np.float32 and ds["labels"].tolist() == [1, 0, 1, 0]
    assert ds["split"].tolist() == ["train", "val", "test", "train"]
    assert ds["mark"] == "H3K4me3" and ds["window"] == 8


def test_save_dataset_multi_target_and_bad_input(tmp_path, windows):
    tokens, lengths, _ = windows
    path = tmp_path / "multi.npz"
    save_dataset(path, tokens, lengths, np.eye(4, 3), np.array(["train"] * 4))
    assert load_dataset(path)["labels"].shape == (4, 3)
    with pytest.raises(ValueError, match="labels has 3 rows"):
        save_dataset(path, tokens, lengths, [0, 1, 0], ["train"] * 4)
    with pytest.raises(ValueError, match="train/val/test"):
        save_dataset(path, tokens, lengths, [0, 1, 0, 1], [True, False, True, False])
    with pytest.raises(ValueError, match="JSON"):
        save_dataset(path, tokens, lengths, [0, 1, 0, 1], ["train"] * 4, when=object())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.npz"]
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_dataset(tmp_path / "missing.npz")


def test_window_dataset_items(windows):
    ds = WindowDataset(*windows)
    tokens, label = ds[0]
    assert tokens.dtype == torch.long and tokens.shape == (8,)
    assert decode(tokens.numpy()) == "ACGTAC" and label.dtype == torch.float32 and label.item() == 1
    assert decode(ds[-1][0].numpy()) == "CA" and len(ds) == 4


def test_window_dataset_rc_augment_deterministic_per_epoch(windows):
    tokens, lengths, labels = windows
    ds = WindowDataset(
        np.repeat(tokens, 50, 0), np.repeat(lengths, 50), np.repeat(labels, 50), rc_augment=True
    )
    first = [decode(ds[i][0].numpy()) for i in range(len(ds))]
    assert first == [decode(ds[i][0].numpy()) for i in range(len(ds))]
    assert set(first[:50]) == {"ACGTAC", "GTACGT"}  # both orientations occur, PAD stays at the end
    assert set(first[50:100]) == {"GGN", "NCC"}
    assert all(ds[i][0][-1] == PAD for i in range(len(ds)))
    ds.set_epoch(1)
    assert first != [decode(ds[i][0].numpy()) for i in range(len(ds))]
    ds.set_epoch(0)
    loader = DataLoader(ds, batch_size=16, num_workers=2, collate_fn=collate_trim)
    assert [decode(row.numpy()) for batch, _ in loader for row in batch] == first


def test_collate_trim_drops_all_pad_columns(windows):
    ds = WindowDataset(*windows)
    tokens, labels = collate_trim([ds[1], ds[3]])
    assert tokens.shape == (2, 3) and tokens.dtype == torch.long
    assert tokens[1].tolist() == [1, 0, PAD]
    assert labels.tolist() == [0, 0]
    assert collate_trim([ds[0], ds[1]])[0].shape == (2, 6)


def test_read_real_smep_csv(shared_data):
    df = read_labeled_csv(shared_data / "rice_smep" / "H3K4me3_train.csv")
    assert len(df) == 2000 and df["label"].sum() == 1000
    assert df["sequence"].str.len().between(128, 799).all()
