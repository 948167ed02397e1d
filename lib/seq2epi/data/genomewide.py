"""Genome-wide windows: chromosomes as tokens, labelled blocks by split, a fixed tiling of held-out blocks
and training windows drawn on the fly each epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seq2epi.data.intervals import _chrom_list
from seq2epi.data.labels import GenomeLabels, _regions
from seq2epi.data.sequence import N, encode, iter_fasta, reverse_complement
from seq2epi.lab.io import atomic_path

_SPLITS = ("train", "val", "test")


def chrom_tokens(fasta: Path, chroms: list[str] | None = None) -> dict[str, np.ndarray]:
    """Each chromosome as uint8 tokens (sequence.encode's alphabet), read once (plain, gzip or bgzip)."""
    wanted = None if chroms is None else set(chroms)
    out = {name: encode(seq) for name, seq in iter_fasta(fasta) if wanted is None or name in wanted}
    missing = [c for c in chroms or [] if c not in out]
    if missing:
        raise ValueError(f"FASTA file {fasta} has no chromosome(s) {missing}.")
    return out


def held_out_regions(val_regions: list[str], test_regions: list[str],
                     chrom_sizes: dict[str, int] | None = None) -> pd.DataFrame:
    """The validation and test regions ('chrom' or 'chrom:start-end') as chrom, start, end, split (a whole
    chromosome ends at its size, or at infinity without `chrom_sizes`); a validation region overlapping a
    test region is refused."""
    regions = pd.concat([_regions(val_regions, chrom_sizes).assign(split="val", name=list(val_regions)),
                         _regions(test_regions, chrom_sizes).assign(split="test", name=list(test_regions))],
                        ignore_index=True)
    val, test = regions[regions["split"] == "val"], regions[regions["split"] == "test"]
    for v in val.itertuples():
        for t in test.itertuples():
            if v.chrom == t.chrom and v.start < t.end and t.start < v.end:
                raise ValueError(f"validation region {v.name} and test region {t.name} overlap.")
    return regions[["chrom", "start", "end", "split"]]


def _labelled_runs(labels: GenomeLabels, chrom: str, size: int) -> list[tuple[int, int]]:
    """[start, end) bp of the runs of bins labelled for at least one target."""
    labelled = ~np.isnan(labels.cover[chrom]).all(axis=1)
    edges = np.flatnonzero(np.diff(np.r_[0, labelled.astype(np.int8), 0]))
    return [(int(a) * labels.bin_size, min(int(b) * labels.bin_size, size)) for a, b in edges.reshape(-1, 2)]


def _cut(chrom: str, start: int, end: int, held_out: pd.DataFrame) -> list[tuple[str, int, int, str]]:
    """The run [start, end) cut at the held-out regions' edges, each piece with its split, like pieces
    joined."""
    regions = held_out[held_out["chrom"] == chrom]
    inner = regions[["start", "end"]].to_numpy().ravel()
    cuts = np.unique(np.r_[start, inner[(inner > start) & (inner < end)], end])
    pieces: list[tuple[str, int, int, str]] = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        hit = regions[(regions["start"] <= a) & (regions["end"] >= b)]
        split = hit["split"].iloc[0] if len(hit) else "train"
        if pieces and pieces[-1][3] == split:
            pieces[-1] = (chrom, pieces[-1][1], int(b), split)
        else:
            pieces.append((chrom, int(a), int(b), split))
    return pieces


def blocks(chrom_sizes: dict[str, int], labels: GenomeLabels, val_regions: list[str],
           test_regions: list[str]) -> pd.DataFrame:
    """The labelled extent (bins labelled for at least one target) cut into contiguous blocks: chrom, start,
    end, split ('train' | 'val' | 'test'); regions are 'chrom:start-end' or a whole chromosome."""
    held_out = held_out_regions(val_regions, test_regions, chrom_sizes)
    rows = [piece for chrom, size in chrom_sizes.items() if chrom in labels.cover
            for start, end in _labelled_runs(labels, chrom, size)
            for piece in _cut(chrom, start, end, held_out)]
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "split"])


def training_subset(blocks: pd.DataFrame, total_bp: int, seed: int, chunk: int = 500_000) -> pd.DataFrame:
    """The blocks with training sequence cut to about `total_bp` (0: all of it): the training blocks split
    into `chunk`-bp pieces, a seeded order of the pieces kept until `total_bp` is reached, the rest marked
    'unused' (never drawn). The pieces spread over the whole training extent, and a smaller total keeps a
    subset of a larger one's (the points of a learning curve in genome length)."""
    if not total_bp:
        return blocks
    train = blocks[blocks["split"] == "train"]
    pieces = [(b.chrom, s, min(s + chunk, b.end)) for b in train.itertuples()
              for s in range(int(b.start), int(b.end), chunk)]
    sizes = np.array([end - start for _, start, end in pieces])
    if total_bp > sizes.sum():
        raise ValueError(f"train_genome_bp {total_bp:,} is more than the {sizes.sum():,} bp of the training "
                         "blocks.")
    order = np.random.default_rng(seed).permutation(len(pieces))
    kept = order[: int(np.searchsorted(np.cumsum(sizes[order]), total_bp)) + 1]
    split = np.where(np.isin(np.arange(len(pieces)), kept), "train", "unused")
    cut = pd.DataFrame(pieces, columns=["chrom", "start", "end"]).assign(split=split)
    return (pd.concat([blocks[blocks["split"] != "train"], cut], ignore_index=True)
            .sort_values(["chrom", "start"], kind="stable").reset_index(drop=True))


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}.")


def window_centres(blocks: pd.DataFrame, split: str, window: int, stride: int) -> pd.DataFrame:
    """A fixed tiling of centres (chrom, centre; and the window's start, end = start + window, start =
    centre - window // 2) whose whole window lies inside one block of `split`, every `stride` bp."""
    _check_split(split)
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got window={window} stride={stride}.")
    parts = []
    for block in blocks[blocks["split"] == split].itertuples():
        start = np.arange(block.start, block.end - window + 1, stride, dtype=np.int64)
        parts.append(pd.DataFrame({"chrom": block.chrom, "centre": start + window // 2, "start": start,
                                   "end": start + window}))
    if not parts:
        return pd.DataFrame({"chrom": pd.Series(dtype=str), **{c: pd.Series(dtype=np.int64)
                                                             for c in ("centre", "start", "end")}})
    return pd.concat(parts, ignore_index=True)


def token_slices(tokens: dict[str, np.ndarray], chroms: np.ndarray, starts: np.ndarray, width: int
                 ) -> np.ndarray:
    """uint8 [n, width]: tokens[chrom][start:start + width] per row, N where it runs off the chromosome."""
    chroms, starts = np.asarray(chroms), np.asarray(starts, np.int64)
    out = np.empty((len(starts), width), np.uint8)
    names, which = np.unique(chroms, return_inverse=True)
    for k, chrom in enumerate(names):
        if chrom not in tokens:
            raise ValueError(f"chromosome {chrom!r} is not among the sequences ({_chrom_list(tokens)}).")
        seq, rows = tokens[chrom], np.flatnonzero(which == k)
        whole = (starts[rows] >= 0) & (starts[rows] + width <= len(seq))
        if len(seq) >= width:
            out[rows[whole]] = np.lib.stride_tricks.sliding_window_view(seq, width)[starts[rows[whole]]]
        edge = rows[~whole]
        pos = starts[edge, None] + np.arange(width)
        out[edge] = np.where((pos >= 0) & (pos < len(seq)), seq[np.clip(pos, 0, len(seq) - 1)], N)
    return out


def windows(tokens: dict[str, np.ndarray], centres: pd.DataFrame, window: int) -> np.ndarray:
    """uint8 [n, window] token windows around the centres (start = centre - window // 2)."""
    return token_slices(tokens, centres["chrom"].to_numpy(), centres["centre"].to_numpy() - window // 2,
                        window)


def labels_at(labels: GenomeLabels, chroms: np.ndarray, centres: np.ndarray, centre_bin: int) -> np.ndarray:
    """float32 [n, n_targets]: `labels.at` of each (chrom, centre)."""
    chroms, centres = np.asarray(chroms), np.asarray(centres, np.int64)
    out = np.empty((len(centres), len(labels.targets)), np.float32)
    names, which = np.unique(chroms, return_inverse=True)
    for k, chrom in enumerate(names):
        rows = np.flatnonzero(which == k)
        out[rows] = labels.at(chrom, centres[rows], centre_bin)
    return out


def _usable(tokens: np.ndarray, targets: np.ndarray, max_n_fraction: float) -> np.ndarray:
    """Windows with at most `max_n_fraction` N whose centre is labelled for at least one target."""
    return ((tokens == N).mean(axis=1) <= max_n_fraction) & ~np.isnan(targets).all(axis=1)


def fixed_windows(tokens: dict[str, np.ndarray], labels: GenomeLabels, blocks: pd.DataFrame, split: str,
                  window: int, stride: int, centre_bin: int, max_n_fraction: float
                  ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The tiling of `split`'s blocks as (centres table chrom/centre/start/end, uint8 tokens [n, window],
    float32 labels [n, n_targets]), without windows with too much N or no labelled target."""
    centres = window_centres(blocks, split, window, stride)
    seqs = windows(tokens, centres, window)
    targets = labels_at(labels, centres["chrom"].to_numpy(), centres["centre"].to_numpy(), centre_bin)
    keep = _usable(seqs, targets, max_n_fraction)
    return centres[keep].reset_index(drop=True), seqs[keep], targets[keep]


class GenomeWindows(torch.utils.data.Dataset):
    """`windows_per_epoch` windows drawn uniformly, each epoch afresh, over every position whose whole
    window lies inside one block of `split`, whose central `centre_bin` bp are labelled for some target and
    whose window has at most `max_n_fraction` N; rc_augment reverse-complements half of them.

    An epoch's draw depends only on (seed, epoch): call `set_epoch` before each epoch's iterator, so a run
    resumed at epoch 5 draws what an uninterrupted run drew.
    """

    _ROUND = 8192  # candidates examined at once (bounds the [candidates, window] token array)

    def __init__(self, tokens, labels: GenomeLabels, blocks: pd.DataFrame, split: str, window: int,
                 centre_bin: int, windows_per_epoch: int, rc_augment: bool = False, seed: int = 0,
                 max_n_fraction: float = 0.1):
        _check_split(split)
        if window <= 0 or windows_per_epoch <= 0:
            raise ValueError(f"window and windows_per_epoch must be positive, got window={window} "
                             f"windows_per_epoch={windows_per_epoch}.")
        chosen = blocks[blocks["split"] == split]
        n_starts = np.maximum(chosen["end"].to_numpy() - chosen["start"].to_numpy() - window + 1, 0)
        if not n_starts.sum():
            raise ValueError(f"no {window}-bp window fits inside a {split} block ({len(chosen)} blocks).")
        self.tokens, self.labels, self.window, self.centre_bin = tokens, labels, window, centre_bin
        self.windows_per_epoch, self.rc_augment, self.seed = windows_per_epoch, rc_augment, seed
        self.max_n_fraction = max_n_fraction
        self._block_chrom = chosen["chrom"].to_numpy()
        self._block_start = chosen["start"].to_numpy().astype(np.int64)
        self._cum_starts = np.cumsum(n_starts)
        self._starts_before = self._cum_starts - n_starts
        self.set_epoch(0)

    def _candidates(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(chrom, window start) of `n` uniform draws among the split's window starts."""
        picks = rng.integers(0, self._cum_starts[-1], n)
        block = np.searchsorted(self._cum_starts, picks, side="right")
        return self._block_chrom[block], self._block_start[block] + picks - self._starts_before[block]

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chrom, start, labels) of the epoch's windows, rejected candidates redrawn."""
        chroms, starts, targets = [], [], []
        have = drawn = 0
        while have < self.windows_per_epoch:
            if drawn >= 50 * self.windows_per_epoch + self._ROUND:
                raise ValueError(f"only {have} of {drawn} drawn {self.window}-bp windows have at most "
                                 f"{self.max_n_fraction:.0%} N and a labelled centre; expected more of the "
                                 f"blocks to be usable.")
            size = min(self._ROUND, 2 * (self.windows_per_epoch - have) + 256)
            chrom, start = self._candidates(rng, size)
            drawn += size
            centre_targets = labels_at(self.labels, chrom, start + self.window // 2, self.centre_bin)
            keep = _usable(token_slices(self.tokens, chrom, start, self.window), centre_targets,
                           self.max_n_fraction)
            keep = np.flatnonzero(keep)[: self.windows_per_epoch - have]
            chroms.append(chrom[keep]), starts.append(start[keep]), targets.append(centre_targets[keep])
            have += len(keep)
        return np.concatenate(chroms), np.concatenate(starts), np.concatenate(targets)

    def set_epoch(self, epoch: int) -> None:
        """Redraw the epoch's windows (and their strands), seeded by (seed, epoch)."""
        rng = np.random.default_rng((self.seed, epoch))
        self.epoch = epoch
        self.chroms, self.starts, self.targets = self._draw(rng)
        self.flip = (rng.random(self.windows_per_epoch) < 0.5) if self.rc_augment \
            else np.zeros(self.windows_per_epoch, bool)

    def __len__(self) -> int:
        return self.windows_per_epoch

    def __getitem__(self, i):
        i = range(len(self))[i]
        start = int(self.starts[i])
        tokens = self.tokens[self.chroms[i]][start : start + self.window]
        if self.flip[i]:
            tokens = reverse_complement(tokens)
        return torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(self.targets[i].copy())


def drawn_windows(tokens: dict[str, np.ndarray], labels: GenomeLabels, blocks: pd.DataFrame, window: int,
                  centre_bin: int, n: int, seed: int, max_n_fraction: float
                  ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """`n` training windows drawn once, as fixed_windows returns a tiling: the baselines' training set (the
    draw of GenomeWindows' epoch 0, which training never uses: its epochs count from 1)."""
    drawn = GenomeWindows(tokens, labels, blocks, "train", window, centre_bin, n, seed=seed,
                          max_n_fraction=max_n_fraction)
    centres = pd.DataFrame({"chrom": drawn.chroms, "centre": drawn.starts + window // 2,
                            "start": drawn.starts, "end": drawn.starts + window})
    return centres, token_slices(tokens, drawn.chroms, drawn.starts, window), drawn.targets


def save_genome(path: Path, tokens: dict[str, np.ndarray], labels: GenomeLabels, blocks: pd.DataFrame
                ) -> None:
    """The chromosomes' tokens, the labels and the blocks in one .npz (uncompressed: it loads in a second),
    for 02 to draw training windows from and 04 to score tracks against."""
    chroms = list(tokens)
    arrays = {f"tokens_{i}": tokens[c] for i, c in enumerate(chroms)}
    arrays |= {f"cover_{i}": labels.cover[c] for i, c in enumerate(chroms) if c in labels.cover}
    meta = {"chroms": chroms, "targets": list(labels.targets), "bin_size": labels.bin_size,
            "labelled": [c for c in chroms if c in labels.cover],
            "blocks": blocks[["chrom", "start", "end", "split"]].to_dict("list")}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta, default=int)), **arrays)


def load_genome(path: Path) -> tuple[dict[str, np.ndarray], GenomeLabels, pd.DataFrame]:
    """(tokens, labels, blocks) as save_genome wrote them."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"genome file {path} does not exist (01_data_prep writes it in genomewide "
                                "mode)")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        chroms = meta["chroms"]
        tokens = {c: z[f"tokens_{i}"] for i, c in enumerate(chroms)}
        cover = {c: z[f"cover_{i}"] for i, c in enumerate(chroms) if c in meta["labelled"]}
    return tokens, GenomeLabels(meta["targets"], meta["bin_size"], cover), pd.DataFrame(meta["blocks"])
