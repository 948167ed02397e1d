"""Genome tracks (chrom, start, end, score) as bedGraph and bigWig."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _clean(track: pd.DataFrame) -> pd.DataFrame:
    missing = {"chrom", "start", "end", "score"} - set(track.columns)
    if missing:
        raise ValueError(f"track has no column(s) {sorted(missing)}; expected chrom, start, end, score.")
    return track.loc[track["score"].notna(), ["chrom", "start", "end", "score"]]


def write_bedgraph(track: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a 4-column bedGraph sorted like `sort -k1,1 -k2,2n`; NaN scores are skipped."""
    path = Path(path)
    df = _clean(track).sort_values(["chrom", "start"], kind="stable")
    tmp = _tmp(path)
    df.to_csv(tmp, sep="\t", header=False, index=False, float_format="%.6g")
    os.replace(tmp, path)
    return path


def write_bigwig(track: pd.DataFrame, chrom_sizes: dict[str, int], path: str | os.PathLike) -> Path:
    """Write a bigWig, header in chrom_sizes order; bins must not overlap; NaN scores are skipped."""
    path = Path(path)
    df = _clean(track)
    unknown = sorted(set(df["chrom"]) - set(chrom_sizes))
    if unknown:
        raise ValueError(
            f"track chromosome(s) {unknown} are not in the genome's chromosomes {list(chrom_sizes)}."
        )
    order = {c: i for i, c in enumerate(chrom_sizes)}
    df = df.assign(_o=df["chrom"].map(order)).sort_values(["_o", "start"], kind="stable")
    chroms = df["chrom"].to_numpy()
    starts = df["start"].to_numpy(np.int64)
    ends = df["end"].to_numpy(np.int64)
    sizes = df["chrom"].map(chrom_sizes).to_numpy(np.int64)
    bad = np.flatnonzero((starts < 0) | (ends <= starts) | (ends > sizes))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"track bin {chroms[i]}:{starts[i]}-{ends[i]} is empty or outside the chromosome "
            f"(size {sizes[i]})."
        )
    overlap = np.flatnonzero((chroms[1:] == chroms[:-1]) & (starts[1:] < ends[:-1]))
    if overlap.size:
        i = overlap[0]
        raise ValueError(
            f"track bins {chroms[i]}:{starts[i]}-{ends[i]} and {chroms[i + 1]}:{starts[i + 1]}-"
            f"{ends[i + 1]} overlap; a bigWig needs non-overlapping bins (use stride-wide bins)."
        )
    tmp = _tmp(path)
    bw = pyBigWig.open(str(tmp), "w")
    try:
        bw.addHeader([(c, int(s)) for c, s in chrom_sizes.items()])
        if len(df):
            bw.addEntries(
                chroms.tolist(),
                starts.tolist(),
                ends=ends.tolist(),
                values=df["score"].to_numpy(np.float64).tolist(),
            )
    finally:
        bw.close()
    os.replace(tmp, path)
    return path


def read_bigwig(path: str | os.PathLike, chrom: str, start: int, end: int) -> np.ndarray:
    """Per-base values of chrom:start-end (NaN where the track has no data)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bigWig file {path} does not exist.")
    bw = pyBigWig.open(str(path))
    try:
        sizes = bw.chroms()
        if chrom not in sizes:
            raise ValueError(f"bigWig file {path} has no chromosome {chrom!r}; it has {list(sizes)}.")
        if not 0 <= start < end <= sizes[chrom]:
            raise ValueError(
                f"region {chrom}:{start}-{end} is outside {chrom} (size {sizes[chrom]}) in {path}."
            )
        return np.asarray(bw.values(chrom, start, end, numpy=True), dtype=np.float32)
    finally:
        bw.close()
