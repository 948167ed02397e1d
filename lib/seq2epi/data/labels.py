"""Genome-wide targets from a segmentation BED (states → targets) and peak sets, binned, read at centres."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seq2epi.data.intervals import _chrom_list, _int, held_out_region
from seq2epi.lab.io import open_text

_HEADER_PREFIXES = ("#", "track", "browser")


@dataclass
class GenomeLabels:
    """Per chromosome, the fraction of each `bin_size`-bp bin carrying each target (NaN: unlabelled bin)."""

    targets: list[str]
    bin_size: int
    cover: dict[str, np.ndarray]  # chrom -> float32 [n_bins, n_targets]

    def at(self, chrom: str, centres: np.ndarray, centre_bin: int) -> np.ndarray:
        """float32 [n, n_targets]: 1 where at least half of the central `centre_bin` bp (centre_bin a
        multiple of bin_size) carry the target, 0 where less, NaN where any of it is unlabelled.

        The central span is the centre_bin / bin_size bins whose first edge is nearest to
        centre - centre_bin // 2 (exact when that is a bin edge); bins off the chromosome are unlabelled."""
        if centre_bin <= 0 or centre_bin % self.bin_size:
            raise ValueError(f"centre_bin must be a positive multiple of bin_size={self.bin_size}, "
                             f"got {centre_bin}.")
        if chrom not in self.cover:
            raise ValueError(f"chromosome {chrom!r} has no labels (labelled: {_chrom_list(self.cover)}).")
        cover = self.cover[chrom]
        per_span = centre_bin // self.bin_size
        first = (np.asarray(centres, np.int64) - centre_bin // 2 + self.bin_size // 2) // self.bin_size
        index = first[:, None] + np.arange(per_span)
        inside = (index >= 0) & (index < len(cover))
        fractions = np.where(inside[..., None], cover[np.clip(index, 0, len(cover) - 1)], np.nan)
        share = fractions.mean(axis=1)
        return np.where(np.isnan(share), np.nan, np.nan_to_num(share) >= 0.5).astype(np.float32)


@dataclass
class _Bed:
    """Intervals of one BED file with the line each came from."""

    path: Path
    table: pd.DataFrame  # chrom, start, end, name, line


def _read_bed(path, chrom_sizes: dict[str, int], need_name: bool) -> _Bed:
    """chrom, start, end (and name when `need_name`) of every record, checked against `chrom_sizes`."""
    path = Path(path)
    need = 4 if need_name else 3
    rows = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.startswith(_HEADER_PREFIXES):
                continue
            where = f"{path} line {lineno}"
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < need:
                raise ValueError(f"{where}: expected at least {need} tab-separated columns (chrom, start, end"
                                 f"{', name' if need_name else ''}), got {len(fields)}.")
            chrom, start, end = fields[0], _int(fields[1], "start", where), _int(fields[2], "end", where)
            if not 0 <= start < end:
                raise ValueError(f"{where}: expected 0 <= start < end, got start={start} end={end}.")
            if chrom not in chrom_sizes:
                raise ValueError(f"{where}: chromosome {chrom!r} is not in the genome (which has "
                                 f"{_chrom_list(chrom_sizes)}).")
            if end > chrom_sizes[chrom]:
                raise ValueError(f"{where}: the interval ends at {end}, past the end of {chrom} "
                                 f"({chrom_sizes[chrom]} bp).")
            rows.append((chrom, start, end, fields[3].strip() if len(fields) > 3 else "", lineno))
    return _Bed(path, pd.DataFrame(rows, columns=["chrom", "start", "end", "name", "line"]))


def _check_no_overlap(bed: _Bed) -> None:
    """Refuse a segmentation in which two segments share a base, naming both lines."""
    table = bed.table.sort_values(["chrom", "start"], kind="stable")
    for _, segs in table.groupby("chrom", sort=False):
        reach = np.maximum.accumulate(segs["end"].to_numpy())
        clash = np.flatnonzero(segs["start"].to_numpy()[1:] < reach[:-1])
        if len(clash):
            later = segs.iloc[clash[0] + 1]
            earlier = segs.iloc[int(np.argmax(reach[: clash[0] + 1] > later["start"]))]
            raise ValueError(f"{bed.path} line {later['line']}: segment {later['chrom']}:{later['start']}-"
                             f"{later['end']} overlaps line {earlier['line']} ({earlier['start']}-"
                             f"{earlier['end']}); expected non-overlapping segments.")


def _check_states(bed: _Bed, label_map: dict[str, list], label_states: list | None) -> None:
    """Every mapped state occurs in the segmentation; every segmentation state is among `label_states`."""
    present = set(bed.table["name"])
    if label_states is not None:
        allowed = {str(s) for s in label_states}
        outside = ~bed.table["name"].isin(allowed)
        if outside.any():
            row = bed.table[outside].iloc[0]
            raise ValueError(f"{bed.path} line {row['line']}: state {row['name']!r} is not one of the "
                             f"label_states {sorted(allowed)}.")
    for target, states in label_map.items():
        absent = [str(s) for s in states if str(s) not in present]
        if absent:
            raise ValueError(f"{bed.path}: label_map target {target!r} names state(s) {absent} that no line "
                             f"has (its states are {sorted(present)}).")


def _merged(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals as sorted, disjoint (starts, ends)."""
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    if not len(starts):
        return starts, ends
    reach = np.maximum.accumulate(ends)
    first = np.flatnonzero(np.r_[True, starts[1:] > reach[:-1]])
    return starts[first], reach[np.r_[first[1:] - 1, len(starts) - 1]]


def _covered_below(starts: np.ndarray, ends: np.ndarray, x: np.ndarray) -> np.ndarray:
    """bp of the sorted, disjoint intervals that lie below each position `x`."""
    if not len(starts):
        return np.zeros(len(x), np.int64)
    lengths = ends - starts
    before = np.r_[0, np.cumsum(lengths)]
    last = np.searchsorted(starts, x, side="right") - 1  # the last interval starting at or before x
    at = np.maximum(last, 0)
    return np.where(last >= 0, before[at] + np.clip(x - starts[at], 0, lengths[at]), 0)


def _bin_cover(starts: np.ndarray, ends: np.ndarray, size: int, bin_size: int) -> np.ndarray:
    """Fraction of each bin of a `size`-bp chromosome (the last bin may be shorter) covered by the union of
    the intervals."""
    starts, ends = _merged(np.asarray(starts, np.int64), np.asarray(ends, np.int64))
    edges = np.minimum(np.arange(-(-size // bin_size) + 1, dtype=np.int64) * bin_size, size)
    return (np.diff(_covered_below(starts, ends, edges)) / np.diff(edges)).astype(np.float32)


def _target_cover(intervals: pd.DataFrame, extent: pd.DataFrame, chrom_sizes: dict[str, int],
                  bin_size: int) -> dict[str, np.ndarray]:
    """Per chrom, the bins' covered fraction by `intervals`, NaN where a bin is not wholly inside `extent`."""
    out = {}
    for chrom, size in chrom_sizes.items():
        on, within = intervals[intervals["chrom"] == chrom], extent[extent["chrom"] == chrom]
        share = _bin_cover(on["start"].to_numpy(), on["end"].to_numpy(), size, bin_size)
        labelled = _bin_cover(within["start"].to_numpy(), within["end"].to_numpy(), size, bin_size) >= 1
        out[chrom] = np.where(labelled, share, np.nan).astype(np.float32)
    return out


def _read_peak_target(path, name_filter: str, chrom_sizes: dict[str, int]) -> pd.DataFrame:
    """Peaks of a BED whose name column holds `name_filter` among its comma-separated names ("" keeps all)."""
    bed = _read_bed(path, chrom_sizes, need_name=bool(name_filter))
    table = bed.table
    if name_filter:
        table = table[table["name"].map(lambda names: name_filter in names.split(","))]
    if table.empty:
        chosen = f" named {name_filter!r}" if name_filter else ""
        raise ValueError(f"{bed.path} has no peak records{chosen} (expected at least one).")
    return table


def _regions(texts: list[str], chrom_sizes: dict[str, int] | None) -> pd.DataFrame:
    """'chrom' or 'chrom:start-end' regions as chrom, start, end: a whole chromosome ends at its size (at
    infinity without `chrom_sizes`, which otherwise must hold every region's chromosome)."""
    rows = []
    for text in texts:
        chrom, start, end = held_out_region(text)
        if chrom_sizes is not None and chrom not in chrom_sizes:
            raise ValueError(f"region {text!r}: chromosome {chrom!r} is not in the genome (which has "
                             f"{_chrom_list(chrom_sizes)}).")
        rows.append((chrom, start, end if chrom_sizes is None else int(min(end, chrom_sizes[chrom]))))
    return pd.DataFrame(rows, columns=["chrom", "start", "end"])


def build_labels(chrom_sizes: dict[str, int], bin_size: int = 50, segmentation: Path | None = None,
                 label_map: dict[str, list] | None = None, label_states: list | None = None,
                 peaks: dict[str, tuple[Path, str]] | None = None, extent: list[str] | None = None
                 ) -> GenomeLabels:
    """Targets of a segmentation (`label_map`: target -> the states it unites, labelled where segments lie)
    and of peak sets (`peaks`: target -> (BED, name filter), labelled over `extent`, else the segmentation's
    extent, else whole chromosomes), binned at `bin_size` bp."""
    label_map, peaks = label_map or {}, peaks or {}
    if bin_size <= 0:
        raise ValueError(f"bin_size must be a positive number of bp, got {bin_size}.")
    if label_map and segmentation is None:
        raise ValueError("label_map needs a segmentation BED to map its states from.")
    both = sorted(set(label_map) & set(peaks))
    if both:
        raise ValueError(f"target(s) {both} are named both in label_map and in peaks; expected unique names.")
    if not label_map and not peaks:
        raise ValueError("no targets: expected a label_map over a segmentation, or peaks.")
    whole = pd.DataFrame({"chrom": list(chrom_sizes), "start": 0, "end": list(chrom_sizes.values())})
    peak_extent = _regions(extent, chrom_sizes) if extent else whole
    cover = {}
    if segmentation is not None:
        bed = _read_bed(segmentation, chrom_sizes, need_name=True)
        _check_no_overlap(bed)
        _check_states(bed, label_map, label_states)
        if not extent:
            peak_extent = bed.table
        for target, states in label_map.items():
            chosen = bed.table[bed.table["name"].isin({str(s) for s in states})]
            cover[target] = _target_cover(chosen, bed.table, chrom_sizes, bin_size)
    for target, (path, name_filter) in peaks.items():
        cover[target] = _target_cover(_read_peak_target(path, name_filter, chrom_sizes), peak_extent,
                                      chrom_sizes, bin_size)
    targets = list(cover)
    stacked = {chrom: np.stack([cover[t][chrom] for t in targets], axis=1) for chrom in chrom_sizes}
    return GenomeLabels(targets, bin_size, stacked)


def read_segmentation(path: Path, chrom_sizes: dict[str, int]) -> pd.DataFrame:
    """A segmentation BED as chrom, start, end, state (checked as build_labels checks it), e.g. to draw it."""
    bed = _read_bed(path, chrom_sizes, need_name=True)
    _check_no_overlap(bed)
    return bed.table[["chrom", "start", "end"]].assign(state=bed.table["name"]).reset_index(drop=True)


def read_peak_set(path: Path, name_filter: str, chrom_sizes: dict[str, int]) -> pd.DataFrame:
    """A peak target's peaks (chrom, start, end) as build_labels reads them, e.g. to draw them."""
    return _read_peak_target(path, name_filter, chrom_sizes)[["chrom", "start", "end"]].reset_index(drop=True)


def drawn_labels(segmentation: Path | None, peak_targets: dict[str, tuple[Path, str]],
                 chrom_sizes: dict[str, int]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """What a track figure draws beside the predictions: the segmentation (read_segmentation) and the first
    peak target's peaks (read_peak_set), each None when absent."""
    states = read_segmentation(segmentation, chrom_sizes) if segmentation else None
    first = next(iter(peak_targets.values()), None)
    return states, read_peak_set(*first, chrom_sizes) if first else None
