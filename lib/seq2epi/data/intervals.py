"""Peaks (BED / narrowPeak), windows around summits, background windows, chromosome splits, GFF genes."""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import unquote

import bioframe
import numpy as np
import pandas as pd

from seq2epi.lab.io import open_text

_HEADER_PREFIXES = ("#", "track", "browser")


def _chrom_list(chrom_sizes) -> str:
    names = list(chrom_sizes)
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")


def _int(value: str, what: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{where}: {what} must be an integer, got {value!r}.") from None


def read_peaks(path, chrom_sizes: dict[str, int], mark: str | None = None) -> pd.DataFrame:
    """Peaks from BED3+ or narrowPeak as chrom,start,end,summit (summit absolute; peak centre when absent).

    A BED of labelled windows, whose '#chrom' header names a `label` column (and maybe `mark`), gives its
    label-1 rows (of `mark`, when both are given) as the peaks.
    """
    path = Path(path)
    rows, label_at, mark_at = [], None, None
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("#chrom"):
                names = line[1:].rstrip("\r\n").split("\t")
                label_at = names.index("label") if "label" in names else None
                mark_at = names.index("mark") if "mark" in names and mark is not None else None
            if not line.strip() or line.startswith(_HEADER_PREFIXES):
                continue
            where = f"{path} line {lineno}"
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 3:
                fields = line.split()
            if len(fields) < 3:
                raise ValueError(f"{where}: expected at least 3 tab-separated columns (chrom, start, end).")
            if label_at is not None:
                if len(fields) <= max(label_at, mark_at or 0):
                    raise ValueError(f"{where}: expected the columns its header names, found {len(fields)}.")
                if fields[label_at] != "1" or mark_at is not None and fields[mark_at] != mark:
                    continue
            chrom = fields[0]
            start, end = _int(fields[1], "start", where), _int(fields[2], "end", where)
            if not 0 <= start < end:
                raise ValueError(f"{where}: expected 0 <= start < end, got start={start} end={end}.")
            if chrom not in chrom_sizes:
                names = _chrom_list(chrom_sizes)
                raise ValueError(f"{where}: chromosome {chrom!r} is not in the FASTA (which has {names}).")
            summit = (start + end) // 2
            if len(fields) == 10:
                offset = _int(fields[9], "the narrowPeak summit offset (column 10)", where)
                if offset >= end - start:
                    raise ValueError(
                        f"{where}: summit offset {offset} lies outside the {end - start} bp peak."
                    )
                if offset >= 0:
                    summit = start + offset
            rows.append((chrom, start, end, summit))
    if not rows:
        chosen = "" if label_at is None else f" labelled 1{'' if mark_at is None else f' for {mark}'}"
        raise ValueError(f"{path} has no peak records{chosen} (the file is empty or only has header lines).")
    peaks = pd.DataFrame(rows, columns=["chrom", "start", "end", "summit"])
    size = peaks["chrom"].map(chrom_sizes)
    past = peaks["end"] > size
    inside = peaks["start"] < size
    if past.any():
        warnings.warn(
            f"{path}: clipped {int((past & inside).sum())} peak(s) extending past the chromosome end and "
            f"dropped {int((~inside).sum())} lying entirely past it.",
            stacklevel=2,
        )
        peaks["end"] = np.minimum(peaks["end"], size)
        peaks["summit"] = np.minimum(peaks["summit"], peaks["end"] - 1)
        peaks = peaks[inside].reset_index(drop=True)
    return peaks


def summit_windows(peaks: pd.DataFrame, window: int, chrom_sizes: dict[str, int]) -> pd.DataFrame:
    """Windows of `window` bp centred on each summit, shifted inside the chromosome, duplicates dropped."""
    if window <= 0:
        raise ValueError(f"window must be a positive number of bp, got {window}.")
    for chrom in peaks["chrom"].unique():
        if chrom not in chrom_sizes:
            raise ValueError(
                f"chromosome {chrom!r} of the peaks is not in the FASTA ({_chrom_list(chrom_sizes)})."
            )
        if chrom_sizes[chrom] < window:
            raise ValueError(
                f"window {window} bp is longer than chromosome {chrom} ({chrom_sizes[chrom]} bp)."
            )
    summit = peaks["summit"] if "summit" in peaks else (peaks["start"] + peaks["end"]) // 2
    size = peaks["chrom"].map(chrom_sizes)
    start = np.clip(summit - window // 2, 0, size - window).astype(np.int64)
    out = pd.DataFrame({"chrom": peaks["chrom"].values, "start": start.values, "end": start.values + window})
    return out.drop_duplicates().reset_index(drop=True)


def _free_starts(blocked: pd.DataFrame, chrom_sizes: dict[str, int], window: int):
    """Regions free of `blocked` intervals and how many `window`-bp windows start in each."""
    free = bioframe.complement(blocked[["chrom", "start", "end"]], view_df=dict(chrom_sizes))
    return free, np.maximum(free["end"].to_numpy() - free["start"].to_numpy() - window + 1, 0)


def _nth_windows(free: pd.DataFrame, n_starts: np.ndarray, picks: np.ndarray, window: int) -> pd.DataFrame:
    """Windows of the given indices into the free window starts, numbered region by region."""
    cum = np.cumsum(n_starts)
    region = np.searchsorted(cum, picks, side="right")
    start = free["start"].to_numpy()[region] + picks - (cum[region] - n_starts[region])
    return pd.DataFrame(
        {"chrom": free["chrom"].to_numpy()[region], "start": start.astype(np.int64), "end": start + window}
    )


def background_windows(
    peaks: pd.DataFrame, chrom_sizes: dict[str, int], window: int, n: int, seed: int
) -> pd.DataFrame:
    """`n` distinct random windows overlapping no peak, drawn uniformly over all such windows, sorted."""
    if window <= 0 or n < 0:
        raise ValueError(f"window must be positive and n non-negative, got window={window} n={n}.")
    free, n_starts = _free_starts(peaks, chrom_sizes, window)
    total = int(n_starts.sum())
    if total < n:
        raise ValueError(
            f"only {total} windows of {window} bp avoid the peaks, fewer than the n={n} requested."
        )
    picks = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    return _nth_windows(free, n_starts, picks, window)


def _window_gc(genome, windows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(GC fraction among non-N bases, N fraction) of each window of `genome`."""
    gc, n_frac = np.empty(len(windows)), np.empty(len(windows))
    for i, (chrom, start, end) in enumerate(windows[["chrom", "start", "end"]].itertuples(index=False)):
        counts = np.bincount(genome.tokens(chrom, start, end), minlength=5)
        gc[i] = (counts[1] + counts[2]) / max(counts[:4].sum(), 1)
        n_frac[i] = counts[4] / (end - start)
    return gc, n_frac


def _gc_bin(gc: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each GC fraction among `bins` equal bins of [0, 1] (a fraction on an edge goes up, 1.0 last)."""
    return np.minimum(gc * bins + 1e-9, bins - 1).astype(int)


def _allocate(weights: np.ndarray, n: int) -> np.ndarray:
    """Integer counts summing to n, proportional to weights (largest remainders)."""
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    return counts


def gc_matched_background(peaks: pd.DataFrame, genome, window: int, n: int, seed: int, bins: int = 20,
                          max_n_fraction: float = 0.1, exclude: pd.DataFrame | None = None,
                          max_rounds: int = 6) -> pd.DataFrame:
    """`n` distinct windows overlapping no peak (nor `exclude`) whose GC histogram matches the peaks' summit
    windows (those not overlapping `exclude`, with at most `max_n_fraction` N); columns chrom,start,end,gc
    (sample_background)."""
    blocked = peaks[["chrom", "start", "end"]]
    positives = summit_windows(peaks, window, genome.chrom_sizes)
    if exclude is not None and len(exclude):
        blocked = pd.concat([blocked, exclude[["chrom", "start", "end"]]], ignore_index=True)
        positives = positives[~overlaps(positives, exclude)]
    pos_gc, pos_n = _window_gc(genome, positives)
    pos_gc = pos_gc[pos_n <= max_n_fraction]
    if not len(pos_gc):
        raise ValueError(f"no peak window of {window} bp with at most {max_n_fraction:.0%} N to match GC to.")
    return sample_background(genome, blocked, np.array([window]), n, seed, pos_gc, bins, max_n_fraction,
                             max_rounds)


def sample_background(genome, blocked: pd.DataFrame, lengths: np.ndarray, n: int, seed: int,
                      target_gc: np.ndarray | None = None, bins: int = 20, max_n_fraction: float = 0.1,
                      max_rounds: int = 6) -> pd.DataFrame:
    """`n` distinct windows of `genome` overlapping no `blocked` interval, with at most `max_n_fraction` N,
    each as long as a seeded draw from `lengths`; columns chrom,start,end,gc, sorted. With `target_gc` their
    GC histogram matches it (`bins` equal bins of [0, 1]); without, they are uniform over the free genome.

    Candidates (the centre of a free window as long as the longest length) are drawn in growing rounds until
    every GC bin can be filled; a bin still short takes its remainder from the nearest bins, with a warning.
    """
    longest = int(np.max(lengths))
    free, n_starts = _free_starts(blocked, genome.chrom_sizes, longest)
    total = int(n_starts.sum())
    rng, length_rng = np.random.default_rng(seed), np.random.default_rng([seed, 2])
    target = _allocate(np.bincount(_gc_bin(target_gc, bins), minlength=bins) if target_gc is not None
                       else np.ones(1), n)
    bins = bins if target_gc is not None else 1
    seen, gc = np.empty(0, np.int64), np.empty(0)  # candidate indices into the free starts; GC (NaN: N-rich)
    cut = np.empty(0, np.int64)  # each candidate's length
    size = 10 * n
    for _ in range(max_rounds):
        new = np.setdiff1d(rng.integers(0, total, size) if total else [], seen)
        new_cut = length_rng.choice(lengths, len(new)) if len(lengths) > 1 else np.full(len(new), longest)
        new_gc, n_frac = _window_gc(genome, _centred(_nth_windows(free, n_starts, new, longest), new_cut))
        seen, cut = np.r_[seen, new], np.r_[cut, new_cut]
        gc = np.r_[gc, np.where(n_frac <= max_n_fraction, new_gc, np.nan)]
        have = np.bincount(_gc_bin(gc[~np.isnan(gc)], bins), minlength=bins)
        if (have >= target).all() or len(seen) == total:
            break
        size *= 2
    usable = ~np.isnan(gc)
    seen, gc, cut = seen[usable], gc[usable], cut[usable]
    if len(seen) < n:
        raise ValueError(f"only {len(seen)} background windows of {longest} bp with at most "
                         f"{max_n_fraction:.0%} N were found, fewer than the n={n} requested.")
    perm = rng.permutation(len(seen))  # random order: the first k candidates of a bin are a random k
    seen, gc, cut = seen[perm], gc[perm], cut[perm]
    bin_of = _gc_bin(gc, bins)
    chosen = np.zeros(len(seen), bool)
    for b in range(bins):
        chosen[np.flatnonzero(bin_of == b)[: target[b]]] = True
    missing = target - np.bincount(bin_of[chosen], minlength=bins)
    if missing.any():
        warnings.warn(f"GC-matched background: {missing.sum()} of {n} windows come from neighbouring GC bins "
                      f"(too few candidates in their own bin after {max_rounds} rounds).", stacklevel=2)
    for b in np.flatnonzero(missing):
        for near in sorted(range(bins), key=lambda j: (abs(j - b), j)):
            spare = np.flatnonzero((bin_of == near) & ~chosen)[: missing[b]]
            chosen[spare] = True
            missing[b] -= len(spare)
    order = np.argsort(seen[chosen])
    windows = _nth_windows(free, n_starts, seen[chosen][order], longest)
    return _centred(windows, cut[chosen][order]).assign(gc=gc[chosen][order])


def _centred(windows: pd.DataFrame, lengths: np.ndarray) -> pd.DataFrame:
    """Each window cut to its central `lengths` bases."""
    start = windows["start"].to_numpy()
    start = start + (windows["end"].to_numpy() - start - lengths) // 2
    return windows.assign(start=start, end=start + lengths)


def held_out_region(text: str) -> tuple[str, int, float]:
    """A held-out chromosome ('chr03') or region ('chr01:350000-500000') as (chrom, start, end)."""
    return parse_region(text) if ":" in text else (text, 0, np.inf)


def split_by_region(df: pd.DataFrame, val: list[str], test: list[str], require_present: bool = True
                    ) -> np.ndarray:
    """'train' / 'val' / 'test' per window of `df` (chrom, start, end): held out when its centre lies in one
    of the chromosomes or chrom:start-end regions listed for validation or test (each region's chromosome
    must hold windows, unless not `require_present`)."""
    regions = {"val": [(r, *held_out_region(r)) for r in val],
               "test": [(r, *held_out_region(r)) for r in test]}
    present = set(df["chrom"])
    for kind, what in (("val", "validation"), ("test", "test")):
        missing = [name for name, chrom, *_ in regions[kind] if chrom not in present]
        if missing and require_present:
            raise ValueError(f"{what} region(s) {missing} lie on chromosomes without windows (the windows "
                             f"are on {_chrom_list(sorted(present))}).")
    for v_name, v_chrom, v_start, v_end in regions["val"]:
        for t_name, t_chrom, t_start, t_end in regions["test"]:
            if v_chrom == t_chrom and v_start < t_end and t_start < v_end:
                raise ValueError(f"validation region {v_name} and test region {t_name} overlap.")
    chrom, centre = df["chrom"].to_numpy(), ((df["start"] + df["end"]) // 2).to_numpy()
    split = np.full(len(df), "train", dtype=object)
    for kind in ("val", "test"):
        for _, name, start, end in regions[kind]:
            split[(chrom == name) & (centre >= start) & (centre < end)] = kind
    return split.astype(str)


def read_gff_genes(path) -> pd.DataFrame:
    """Gene features of a GFF3 (optionally .gz) as chrom,start,end,strand,name (0-based half-open)."""
    path = Path(path)
    rows = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("##FASTA"):
                break
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            where = f"{path} line {lineno}"
            if len(fields) != 9:
                raise ValueError(f"{where}: expected 9 tab-separated GFF3 columns, got {len(fields)}.")
            if fields[2] != "gene":
                continue
            start, end = _int(fields[3], "start", where) - 1, _int(fields[4], "end", where)
            if not 0 <= start < end:
                raise ValueError(f"{where}: expected 1 <= start <= end, got start={start + 1} end={end}.")
            attrs = dict(kv.split("=", 1) for kv in fields[8].strip().split(";") if "=" in kv)
            name = unquote(attrs.get("Name") or attrs.get("ID") or "")
            rows.append((fields[0], start, end, fields[6], name))
    if not rows:
        raise ValueError(f"{path} has no 'gene' features (GFF3 column 3).")
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "strand", "name"])


def parse_region(text: str) -> tuple[str, int, int]:
    """'chr01:100000-150000' (0-based half-open, commas allowed) as (chrom, start, end)."""
    chrom, _, span = text.replace(",", "").rpartition(":")
    start, _, end = span.partition("-")
    if not chrom or not start.isdigit() or not end.isdigit() or int(start) >= int(end):
        raise ValueError(f"region {text!r} is not of the form chrom:start-end with start < end.")
    return chrom, int(start), int(end)


def regions_table(texts: list[str]) -> pd.DataFrame | None:
    """'chrom:start-end' texts as a chrom, start, end table (None for none: the whole genome)."""
    spans = [parse_region(text) for text in texts]
    return pd.DataFrame(spans, columns=["chrom", "start", "end"]) if spans else None


def overlaps(windows: pd.DataFrame, peaks: pd.DataFrame) -> np.ndarray:
    """Whether each window (chrom,start,end) overlaps any peak, in the windows' order."""
    hits = bioframe.overlap(windows[["chrom", "start", "end"]].reset_index(drop=True),
                            peaks[["chrom", "start", "end"]], how="inner", return_index=True)
    found = np.zeros(len(windows), bool)
    found[hits["index"].unique()] = True
    return found


def read_labelled_windows(path) -> pd.DataFrame:
    """A BED of labelled windows (chrom, start, end, then named columns such as mark, split, label), with or
    without a '#chrom' header line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {path} does not exist")
    with open_text(path) as f:
        first = f.readline()
    if first.startswith("#chrom") or first.startswith("chrom"):
        table = pd.read_csv(path, sep="\t").rename(columns={"#chrom": "chrom"})
    else:
        table = pd.read_csv(path, sep="\t", header=None, comment="#")
        table = table.rename(columns={0: "chrom", 1: "start", 2: "end"})
    if not {"chrom", "start", "end"} <= set(table.columns) or table.empty:
        raise ValueError(f"{path}: expected a BED of windows with columns chrom, start, end (and a header "
                         f"naming further columns such as label).")
    return table


def window_scores(track: pd.DataFrame, windows: pd.DataFrame) -> np.ndarray:
    """The mean track score over the bins overlapping each window (NaN where none does), in window order."""
    hits = bioframe.overlap(windows[["chrom", "start", "end"]].reset_index(drop=True),
                            track[["chrom", "start", "end", "score"]], how="inner", return_index=True,
                            suffixes=("", "_bin"))
    means = hits.groupby("index")["score_bin"].mean()
    scores = np.full(len(windows), np.nan)
    scores[means.index.to_numpy()] = means.to_numpy()
    return scores


def promoter_windows(genes: pd.DataFrame, chrom_sizes: dict[str, int], upstream: int = 1000) -> pd.DataFrame:
    """The `upstream` bp before each gene's TSS (strand-aware: before `start` on +, after `end` on -), as
    chrom,start,end,name; promoters running off their chromosome are left out."""
    plus = genes["strand"].to_numpy() != "-"
    tss = np.where(plus, genes["start"].to_numpy(), genes["end"].to_numpy())
    start = np.where(plus, tss - upstream, tss)
    out = pd.DataFrame({"chrom": genes["chrom"].to_numpy(), "start": start, "end": start + upstream,
                        "name": genes["name"].to_numpy()})
    sizes = out["chrom"].map(chrom_sizes)
    return out[(out["start"] >= 0) & (out["end"] <= sizes)].reset_index(drop=True)


def intergenic_windows(genes: pd.DataFrame, chrom_sizes: dict[str, int], window: int, n: int, seed: int,
                       margin: int = 2000) -> pd.DataFrame:
    """`n` random windows at least `margin` bp from every gene (so off their promoters too), sorted."""
    blocked = genes.assign(start=(genes["start"] - margin).clip(lower=0), end=genes["end"] + margin)
    return background_windows(blocked[["chrom", "start", "end"]], chrom_sizes, window, n, seed)
