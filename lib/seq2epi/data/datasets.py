"""Labeled sequence CSVs, dataset files (.npz) and the torch dataset over token windows."""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seq2epi.data.sequence import PAD, decode, encode, reverse_complement
from seq2epi.lab.io import atomic_path, compression

_COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")

_ARRAYS = ("tokens", "lengths", "labels", "split")
_SPLITS = ("train", "val", "test")


def normalise(seq: str) -> str:
    """`seq` as the model reads it: upper-case, anything not ACGT as N (sequence.encode's rule)."""
    return decode(encode(seq))


def _csv_rows(path: Path):
    """(line, cells) of a CSV file, gzip-compressed or not; a byte-order mark is not part of the header."""
    opener = gzip.open if compression(path) else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError:
            with opener(path, "rb") as raw:
                text = raw.read().decode("utf-8", "replace")
            line = text[:text.index("\ufffd")].count("\n") + 1
            raise ValueError(f"{path} line {line}: expected UTF-8 text; save the CSV as UTF-8.") from None
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:  # truncated or corrupt
            raise ValueError(f"{path}: a damaged gzip file ({err}).") from None


def read_labeled_csv(path, min_length: int = 0) -> pd.DataFrame:
    """Sequences (normalised) and 0/1 labels from a CSV or .csv.gz with header Sequence,labels or
    sequence,label; the index is each record's line in the file.

    A sequence shorter than `min_length` (the model's largest k-mer) is refused, naming the shortest.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} does not exist")
    records = _csv_rows(path)
    header = [h.strip().lower() for h in next(records, (1, []))[1]]
    label_col = "label" if "label" in header else "labels"
    if "sequence" not in header or label_col not in header:
        raise ValueError(f"{path} line 1: expected a header with columns sequence,label, got {header}.")
    i_seq, i_label = header.index("sequence"), header.index(label_col)
    rows, lines = [], []
    for line, row in records:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} line {line}"
        if len(row) <= max(i_seq, i_label):
            raise ValueError(f"{where}: expected {len(header)} columns, got {len(row)}.")
        seq, label = row[i_seq].strip(), row[i_label].strip()
        if not seq:
            raise ValueError(f"{where}: empty sequence.")
        if label not in ("0", "1", "0.0", "1.0"):
            raise ValueError(f"{where}: label must be 0 or 1, got {label!r}.")
        rows.append((normalise(seq), int(float(label))))
        lines.append(line)
    if not rows:
        raise ValueError(f"{path} has a header but no records.")
    table = pd.DataFrame(rows, columns=["sequence", "label"], index=pd.Index(lines, name="line"))
    lengths = table["sequence"].str.len()
    short = int((lengths < min_length).sum())
    if short:
        raise ValueError(f"{path} line {lengths.idxmin()}: its sequence of {lengths.min()} bp is shorter "
                         f"than the largest k-mer ({min_length} bp), as are {short - 1} other(s); drop them "
                         f"or use smaller kmers.")
    return table


def random_split(n: int, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation rows: round(n * val_fraction) rows chosen with numpy default_rng(seed)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[: round(n * val_fraction)]] = True
    return mask


def overlap_groups(seqs: list[str], k: int = 31) -> np.ndarray:
    """Group id per sequence: sequences sharing a k-mer on either strand (overlapping or repeated windows)
    fall in one group, transitively."""
    parent = list(range(len(seqs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[str, int] = {}
    for i, seq in enumerate(seqs):
        for strand in (seq, seq.translate(_COMPLEMENT)[::-1]):
            for j in range(len(strand) - k + 1):
                other = first_seen.setdefault(strand[j:j + k], i)
                if other != i:
                    parent[root(i)] = root(other)
    return np.array([root(i) for i in range(len(seqs))])


def group_split(groups: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation rows: whole groups in a seeded order while they fit in `val_fraction`, so
    that no group straddles train and validation."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    names, sizes = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    taken = np.cumsum(sizes[order]) <= round(len(groups) * val_fraction)
    return np.isin(groups, names[order][taken])


def validation_split(seqs: list[str], val_fraction: float, seed: int, how: str = "overlap") -> np.ndarray:
    """Validation mask of `seqs`: "random" rows, or "overlap" whole groups of overlapping sequences (a random
    carve-out of overlapping windows leaks: the model has seen most of a validation window in training)."""
    if how == "random":
        return random_split(len(seqs), val_fraction, seed)
    if how == "overlap":
        return group_split(overlap_groups(seqs), val_fraction, seed)
    raise ValueError(f"val_split must be 'overlap' or 'random', got {how!r}")


def save_dataset(path, tokens, lengths, labels, split, **meta) -> None:
    """Atomically write tokens [n, L], lengths, labels [n] or [n, n_targets], split and JSON meta to .npz."""
    path = Path(path)
    tokens = np.asarray(tokens, dtype=np.uint8)
    arrays = {
        "tokens": tokens,
        "lengths": np.asarray(lengths, dtype=np.int32),
        "labels": np.asarray(labels, dtype=np.float32),
        "split": np.asarray(split).astype(str),
    }
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [n, L], got shape {tokens.shape}.")
    for name, array in arrays.items():
        if len(array) != len(tokens):
            raise ValueError(f"{name} has {len(array)} rows but tokens has {len(tokens)}.")
    bad = sorted(set(arrays["split"]) - set(_SPLITS))
    if bad:
        raise ValueError(f"split values must be train/val/test, got {bad}.")
    try:
        arrays["meta"] = np.array(json.dumps(meta))
    except TypeError as e:
        raise ValueError(f"meta must be JSON-serialisable: {e}.") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_dataset(path) -> dict:
    """Arrays tokens, lengths, labels, split of a saved dataset, plus its meta keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        out = {name: z[name] for name in _ARRAYS}
        out.update(json.loads(str(z["meta"])))
    return out


class WindowDataset(torch.utils.data.Dataset):
    """Token windows with labels; rc_augment reverse-complements each item with probability 0.5.

    The flip depends only on (seed, epoch, index), so it is the same whatever the DataLoader workers or resume
    point; call `set_epoch` before building each epoch's iterator (not with persistent workers).
    """

    def __init__(self, tokens, lengths, labels, rc_augment: bool = False, seed: int = 0):
        self.tokens = np.asarray(tokens, dtype=np.uint8)
        self.lengths = np.asarray(lengths)
        self.labels = np.asarray(labels, dtype=np.float32)
        if not len(self.tokens) == len(self.lengths) == len(self.labels):
            raise ValueError(
                f"tokens, lengths and labels differ in rows: {len(self.tokens)}, {len(self.lengths)}, "
                f"{len(self.labels)}."
            )
        self.rc_augment = rc_augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, idx):
        idx = range(len(self))[idx]
        tokens = self.tokens[idx]
        if self.rc_augment and np.random.default_rng((self.seed, self.epoch, idx)).random() < 0.5:
            tokens = reverse_complement(tokens[None], self.lengths[idx : idx + 1])[0]
        return torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(np.array(self.labels[idx]))


def collate_trim(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (tokens, label) items and drop trailing columns that are PAD in every row."""
    tokens = torch.stack([t for t, _ in batch])
    labels = torch.stack([y for _, y in batch])
    used = (tokens != PAD).any(0).nonzero()
    width = int(used.max()) + 1 if len(used) else 0
    return tokens[:, :width], labels
