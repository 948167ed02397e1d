"""Window arithmetic: window starts over a region, the stride-wide bins centred on them, regions of a genome,
and back from a bin to its window. Coordinates are 0-based half-open."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def _check(window: int, stride: int | None = None) -> None:
    if window < 1:
        raise ValueError(f"window must be a positive number of bases, got {window}.")
    if stride is not None and stride < 1:
        raise ValueError(f"stride must be a positive number of bases, got {stride}.")


def n_windows(length: int, window: int, stride: int) -> int:
    """How many windows start every `stride` bp from the first base of `length` bp and fit inside it."""
    _check(window, stride)
    return max(0, (int(length) - window) // stride + 1)


def window_starts(start: int, end: int, window: int, stride: int) -> np.ndarray:
    """Starts int64 of the windows of `window` bp every `stride` bp from `start` that end by `end`."""
    return start + np.arange(n_windows(end - start, window, stride), dtype=np.int64) * stride


def centred_bins(chrom: str, starts: np.ndarray, window: int, stride: int, size: int) -> pd.DataFrame:
    """Bins chrom,start,end: the `stride`-wide bin centred on each window, clipped to the chromosome."""
    _check(window, stride)
    low = np.asarray(starts, np.int64) + window // 2 - stride // 2
    return pd.DataFrame({"chrom": chrom, "start": np.clip(low, 0, size),
                         "end": np.clip(low + stride, 0, size)})


def bin_windows(bins: pd.DataFrame, window: int, stride: int) -> pd.DataFrame:
    """The bins (other columns kept) with start,end set to the window each bin was scored from.

    A bin clipped at the chromosome start is found from its end (bins are never clipped at both ends unless
    the stride exceeds the chromosome).
    """
    _check(window, stride)
    offset = window // 2 - stride // 2
    start, end = bins["start"].to_numpy(np.int64), bins["end"].to_numpy(np.int64)
    first = np.where(start > 0, start, end - stride) - offset
    return bins.assign(start=first, end=first + window)


def tile(chrom_sizes: dict[str, int], window: int, stride: int, regions: pd.DataFrame | None = None
         ) -> pd.DataFrame:
    """Windows chrom,start,end of width `window` every `stride` bp, fully inside each chromosome or region."""
    _check(window, stride)
    parts = []
    for chrom, start, end in clip_regions(chrom_sizes, window, regions):
        starts = window_starts(start, end, window, stride)
        parts.append(pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + window}))
    if not parts:
        return pd.DataFrame({"chrom": pd.Series(dtype=object), "start": pd.Series(dtype=np.int64),
                             "end": pd.Series(dtype=np.int64)})
    return pd.concat(parts, ignore_index=True)


def clip_regions(chrom_sizes: dict[str, int], window: int, regions: pd.DataFrame | None = None
                 ) -> list[tuple[str, int, int]]:
    """Regions (chrom, start, end) clipped to the chromosomes (None: every chromosome, skipping with a warning
    those shorter than the window); a region on an unknown chromosome or shorter than the window raises."""
    _check(window)
    if regions is None:
        short = [c for c, size in chrom_sizes.items() if size < window]
        if short:
            warnings.warn(f"{len(short)} chromosome(s) shorter than the {window} bp window are not tiled: "
                          f"{short}.", stacklevel=3)
        return [(c, 0, int(size)) for c, size in chrom_sizes.items() if size >= window]
    out = []
    for i, (chrom, start, end) in enumerate(regions[["chrom", "start", "end"]].itertuples(index=False)):
        if chrom not in chrom_sizes:
            raise ValueError(f"region {i} ({chrom}:{start}-{end}) is on a chromosome not in the genome's "
                             f"{list(chrom_sizes)}.")
        start, end = max(int(start), 0), min(int(end), int(chrom_sizes[chrom]))
        if end - start < window:
            raise ValueError(f"region {i} ({chrom}:{start}-{end}) is {max(end - start, 0)} bp after clipping "
                             f"to the chromosome, shorter than the {window} bp window.")
        out.append((chrom, start, end))
    return out


def map_regions(chrom_sizes: dict[str, int], window: int, stride: int, size: int) -> pd.DataFrame:
    """Regions chrom,start,end holding the windows that start in consecutive `size` bp blocks.

    The genome-wide tiling (window starts at multiples of stride) is split without gap or overlap of windows,
    so regions can be predicted apart and merged into one matrix.
    """
    if window < 1 or stride < 1 or size < stride:
        raise ValueError(f"need window >= 1 and 1 <= stride <= size, got window={window}, stride={stride}, "
                         f"size={size}.")
    per = size // stride
    rows = []
    for chrom, length in chrom_sizes.items():
        n = n_windows(length, window, stride)
        rows += [(chrom, j * stride, (min(j + per, n) - 1) * stride + window) for j in range(0, n, per)]
    return pd.DataFrame(rows, columns=["chrom", "start", "end"]).astype({"start": np.int64, "end": np.int64})


def sequence_windows(length: int, window: int, stride: int) -> np.ndarray:
    """Window starts that score a sequence of `length` bp: one at 0 when it fits the window (padded), else the
    record's tiling (window_starts) plus one window ending at the last base, so every base is seen."""
    if length <= window:
        return np.zeros(1, np.int64)
    starts = window_starts(0, length, window, stride)
    return starts if starts[-1] + window == length else np.append(starts, length - window)


def centred_start(start: int, end: int, window: int) -> int:
    """Start of the `window` bp window centred on the REF span [start, end) (a SNV lands at window // 2)."""
    return start + (end - start - window) // 2


def track_windows(start: int, end: int, window: int, stride: int, size: int) -> tuple[int, int]:
    """(first start, count) of the genome track's windows (starts at multiples of stride, inside the
    chromosome) that hold the whole REF span [start, end)."""
    first = max(0, -(-(end - window) // stride) * stride)
    last = min(start // stride * stride, (size - window) // stride * stride)
    return first, max(0, (last - first) // stride + 1)
