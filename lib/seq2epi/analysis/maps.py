"""The epigenome map of a population: reference and varieties predicted over regions into a variety × bin
matrix; its analysis: variety order, most variable regions, changed windows and the variants inside them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import bioframe
import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from seq2epi.analysis.tracks import MatrixStore
from seq2epi.data import intervals, tiling
from seq2epi.data.sequence import PAD, Genome, N
from seq2epi.data.variants import (
    REFERENCE,
    Variants,
    check_interval,
    distinct_window_blocks,
    index_vcf,
    read_samples,
)
from seq2epi.lab import records
from seq2epi.lab.io import atomic_path
from seq2epi.lab.progress import bar

Predictor = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (tokens [n, L], lengths [n]) -> probs


# ---- the map: predict the reference and every variety ----

def predict_varieties(predictor: Predictor, genome: Genome, variants: Variants | None,
                      region: tuple[str, int, int], window: int, stride: int, max_n_fraction: float = 0.5,
                      n_targets: int = 1, chunk_bytes: int = 2**26, dedup: str = "alleles"
                      ) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Scores [n_samples + 1, n_bins] (or [..., n_targets]) of the reference and every variety over a region.

    `predictor(tokens, lengths)` gives probabilities [n] or [n, n_targets], e.g. Record.predictor(...).
    Each distinct window is predicted once; windows more than `max_n_fraction` N (or PAD, where deletions ran
    out of chromosome) score NaN. Bins are `stride` wide and centred on the windows, as in predict_genome.
    dedup: how distinct windows are found, "alleles" (by allele pattern) or "bytes" (every window built and
    hashed, the reference implementation); both make the same predictor calls, so the same scores.
    stats: total and distinct windows.
    """
    chrom, start, end = region
    targets = () if n_targets == 1 else (n_targets,)
    parts, distinct = [], 0
    blocks = distinct_window_blocks(genome, variants, chrom, start, end, window, stride, chunk_bytes, dedup)
    for uniq, inverse in blocks:
        lengths = (uniq != PAD).sum(1)
        keep = np.flatnonzero((uniq >= N).sum(1) <= max_n_fraction * window)
        scores = np.full((len(uniq),) + targets, np.nan, np.float32)
        if keep.size:
            scores[keep] = np.reshape(predictor(uniq[keep], lengths[keep]), (keep.size,) + targets)
        parts.append(scores[inverse])
        distinct += len(uniq)
    scores = np.concatenate(parts, axis=1)
    bins = tiling.centred_bins(chrom, tiling.window_starts(start, end, window, stride), window, stride,
                               genome.chrom_sizes[chrom])
    return scores, bins, {"total": scores.shape[0] * scores.shape[1], "distinct": distinct}


def region_scores(predictor: Predictor, genome: Genome, region: tuple[str, int, int], window: int,
                  stride: int, vcf_path=None, samples: list[str] | None = None, n_targets: int = 1,
                  dedup: str = "alleles", **load_kw) -> tuple[np.ndarray, list[str], dict]:
    """(scores, row names, stats) of one region; the VCF (optional) is read over the region plus a window.

    load_kw (het, missing, chrom_alias) go to Variants.load; dedup to predict_varieties.
    """
    chrom, start, end = region
    check_interval(genome, chrom, start, end)
    variants = None
    if vcf_path is not None:
        margin = (chrom, start, min(genome.chrom_sizes[chrom], end + window))
        variants = Variants.load(vcf_path, genome, margin, samples, **load_kw)
    scores, _, stats = predict_varieties(predictor, genome, variants, region, window, stride,
                                         n_targets=n_targets, dedup=dedup)
    rows = [REFERENCE] + (variants.samples if variants is not None else [])
    return scores, rows, stats | (variants.counts if variants is not None else {})


def check_regions(regions: pd.DataFrame, window: int, stride: int) -> None:
    """Raise when two regions hold the same window (a start on the stride grid in both)."""
    spans = regions[["chrom", "start", "end"]].reset_index(drop=True)
    first = -(-spans["start"].to_numpy(np.int64) // stride) * stride  # first window start on the grid
    last = spans["end"].to_numpy(np.int64) - window  # last possible window start
    order = np.lexsort((first, spans["chrom"].to_numpy(dtype=str)))
    reach = {}
    for i in order.tolist():
        chrom = spans["chrom"].iat[i]
        if chrom in reach and first[i] <= last[reach[chrom]] and first[i] <= last[i]:
            j = reach[chrom]
            a, b = (f"{chrom}:{spans['start'].iat[k]}-{spans['end'].iat[k]}" for k in (j, i))
            raise ValueError(f"regions {j} ({a}) and {i} ({b}) both hold the window at {chrom}:{first[i]}; "
                             f"expected a region list that does not overlap itself (tiling.map_regions "
                             f"makes one).")
        if chrom not in reach or last[i] > last[reach[chrom]]:
            reach[chrom] = i


def map_varieties(predictor: Predictor, genome: Genome, store: MatrixStore, regions: pd.DataFrame,
                  vcf_path=None, progress: bool = True, dedup: str = "alleles", **load_kw) -> dict:
    """Predict each region not yet done into `store` (rows: reference, then its samples); returns stats.

    A bgzipped VCF or BCF is indexed once (index_vcf), so each region reads only its records; a plain VCF is
    scanned whole for each region (bgzip it for a genome). load_kw: het, missing, chrom_alias (Variants.load).
    """
    check_regions(regions, store.window, store.stride)
    samples = store.samples[1:] if vcf_path is not None else None
    if vcf_path is not None:
        index_vcf(vcf_path)
    totals = {"regions": 0, "skipped_done": 0, "total": 0, "distinct": 0}
    todo = regions[["chrom", "start", "end"]].itertuples(index=False)
    for chrom, start, end in bar(todo, "regions", total=len(regions), enabled=progress):
        if store.done(chrom, start, end):
            totals["skipped_done"] += 1
            continue
        scores, rows, stats = region_scores(predictor, genome, (chrom, int(start), int(end)), store.window,
                                            store.stride, vcf_path, samples, len(store.marks), dedup,
                                            **load_kw)
        if rows != store.samples:
            raise ValueError(f"matrix store {store.path} has rows {store.samples[:20]}, but region "
                             f"{chrom}:{start}-{end} gave {rows[:20]}.")
        store.write_region(chrom, int(start), int(end), scores)
        totals["regions"] += 1
        totals["total"] += stats["total"]
        totals["distinct"] += stats["distinct"]
    return totals


def population_summary(loaded: Variants, stats: dict) -> str:
    """The varieties mapped and how many of their windows were distinct (predicted), in two lines."""
    lines = [f"{len(loaded.samples)} varieties; VCF records and calls: {loaded.counts}"]
    if stats["total"]:
        lines.append(f"{stats['distinct']:,} distinct of {stats['total']:,} variety windows "
                     f"({stats['distinct'] / stats['total']:.1%}) were predicted")
    return "\n".join(lines)


def map_population(predictor: Predictor, genome: Genome, vcf_path, path, window: int, stride: int,
                   block: int, regions: pd.DataFrame | None = None, samples: list[str] | None = None,
                   progress: bool = True, **load_kw) -> tuple[MatrixStore, pd.DataFrame, dict]:
    """The map of the VCF's samples (default all) in the store at `path` (created, or resumed), over the
    genome's `block` bp map regions (those overlapping `regions` when given); returns store, regions and
    stats. load_kw (dedup, het, missing, chrom_alias) go to map_varieties."""
    samples = list(samples or read_samples(vcf_path))
    todo = tiling.map_regions(genome.chrom_sizes, window, stride, block)
    if regions is not None:
        todo = todo[intervals.overlaps(todo, regions)].reset_index(drop=True)
    store = MatrixStore.create(path, [REFERENCE, *samples], genome.chrom_sizes, window, stride, resume=True)
    return store, todo, map_varieties(predictor, genome, store, todo, vcf_path, progress, **load_kw)


# ---- analysis of a map ----


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; expected {columns}, got {list(df.columns)}.")


def check_map(scores: np.ndarray, bins: pd.DataFrame, samples: list[str]) -> np.ndarray:
    """The scores as floats, after checking they are [samples, bins] and bins has chrom, start, end."""
    _require(bins, ["chrom", "start", "end"], "bins")
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(samples), len(bins)):
        raise ValueError(f"scores have shape {scores.shape}; "
                         f"expected [{len(samples)} samples, {len(bins)} bins].")
    return scores


def _block_means(scores: np.ndarray, bins: pd.DataFrame, key: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Each variety's mean score over the bins sharing (chrom, key), and each block's chrom, start, end."""
    ids = pd.DataFrame({"chrom": bins["chrom"].to_numpy(), "key": key}).groupby(
        ["chrom", "key"], sort=False).ngroup().to_numpy()
    means = pd.DataFrame(scores.T).groupby(ids).mean().to_numpy().T
    blocks = bins[["chrom", "start", "end"]].reset_index(drop=True).groupby(ids).agg(
        chrom=("chrom", "first"), start=("start", "min"), end=("end", "max"))
    return means, blocks.reset_index(drop=True)


def cluster_order(scores: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering of the rows (euclidean; a NaN takes its bin's mean)."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"scores have shape {x.shape}; expected a 2-D [varieties, bins] array.")
    x = x[:, ~np.isnan(x).all(axis=0)]
    if len(x) < 2 or x.shape[1] == 0:
        return np.arange(len(x))
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    return leaves_list(linkage(x, method="average", metric="euclidean", optimal_ordering=True))


def overview_bin_size(bins: pd.DataFrame, stride: int, n_blocks: int = 200) -> int:
    """A block size in bp, a multiple of stride, of about `n_blocks` blocks along the longest chromosome."""
    return max(stride, int(bins["end"].max()) // n_blocks // stride * stride)


def aggregate(scores: np.ndarray, bins: pd.DataFrame, samples: list[str],
              bin_size: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Each variety's mean score in `bin_size` bp blocks of each chromosome; the blocks' chrom,start,end."""
    scores = check_map(scores, bins, samples)
    if bin_size < 1:
        raise ValueError(f"bin_size is {bin_size}; expected a positive number of base pairs.")
    return _block_means(scores, bins, bins["start"].to_numpy() // bin_size)


def variable_regions(scores: np.ndarray, bins: pd.DataFrame, samples: list[str], width_bins: int = 10,
                     n: int = 20) -> pd.DataFrame:
    """The `n` blocks of `width_bins` consecutive bins whose mean score varies most between varieties.

    Columns chrom, start, end, variance (across varieties, of the block mean), range (max - min),
    high_variety, low_variety; sorted by variance, descending. Blocks do not cross chromosomes.
    """
    scores = check_map(scores, bins, samples)
    if width_bins < 1:
        raise ValueError(f"width_bins is {width_bins}; expected at least 1.")
    rank = bins.groupby("chrom", sort=False)["start"].rank(method="first").to_numpy(dtype=int) - 1
    means, blocks = _block_means(scores, bins, rank // width_bins)
    seen = ~np.isnan(means).all(axis=0)
    means, blocks = means[:, seen], blocks[seen]
    names = np.asarray(samples, dtype=object)
    out = blocks.assign(variance=np.nanvar(means, axis=0),
                        range=np.nanmax(means, axis=0) - np.nanmin(means, axis=0),
                        high_variety=names[np.nanargmax(means, axis=0)],
                        low_variety=names[np.nanargmin(means, axis=0)])
    return out.sort_values("variance", ascending=False, kind="stable").head(n).reset_index(drop=True)


def changed_windows(scores: np.ndarray, bins: pd.DataFrame, samples: list[str], reference_row: int = 0,
                    min_delta: float = 0.2) -> pd.DataFrame:
    """Bins where a variety's score differs from the reference row's by at least `min_delta`, in bin order.

    Columns chrom, start, end, sample, reference_score, score, delta (score - reference_score).
    """
    scores = check_map(scores, bins, samples)
    if not 0 <= reference_row < len(scores):
        raise ValueError(f"reference_row is {reference_row}; expected a row of the {len(scores)} varieties.")
    reference = scores[reference_row]
    delta = scores - reference
    hit = np.abs(delta) >= min_delta - 1e-9  # tolerance: 0.7 - 0.5 counts as 0.2
    hit[reference_row] = False
    b, v = np.nonzero(hit.T)
    return bins[["chrom", "start", "end"]].iloc[b].reset_index(drop=True).assign(
        sample=np.asarray(samples, dtype=object)[v], reference_score=reference[b], score=scores[v, b],
        delta=delta[v, b])


def variants_in(regions: pd.DataFrame, variants: pd.DataFrame) -> pd.DataFrame:
    """The variants inside each region: region columns, then the variant's (a clash gets a `variant_` prefix).

    A variant spans [start, start + len(ref)), so a deletion reaching into a region counts. When both tables
    have a `sample` column, a region gets only the variants of its own sample.
    """
    _require(regions, ["chrom", "start", "end"], "regions")
    _require(variants, ["chrom", "start", "ref", "alt"], "variants")
    on = ["sample"] if "sample" in regions.columns and "sample" in variants.columns else []
    starts = variants["start"].to_numpy(dtype=int)
    spans = pd.DataFrame({"chrom": variants["chrom"].to_numpy(), "start": starts,
                          "end": starts + variants["ref"].str.len().to_numpy(dtype=int)})
    spans[on] = variants[on].to_numpy()
    boxes = regions[["chrom", "start", "end", *on]].reset_index(drop=True)
    hits = bioframe.overlap(boxes, spans, how="inner", on=on or None, return_input=False, return_index=True,
                            suffixes=("", "_v"))
    i, j = hits["index"].to_numpy(dtype=int), hits["index_v"].to_numpy(dtype=int)
    order = np.lexsort((starts[j], i))
    left = regions.iloc[i[order]].reset_index(drop=True)
    right = variants.iloc[j[order]].drop(columns=["chrom", *on]).reset_index(drop=True)
    right = right.rename(columns=lambda c: f"variant_{c}" if c in left.columns else c)
    return pd.concat([left, right], axis=1)


# ---- many varieties: difference from the reference, row order, PCA, variance ----

MAX_LINKAGE_ROWS = 1000  # above this many rows, row_order avoids the n × n distances of linkage


def _filled(scores: np.ndarray) -> np.ndarray:
    """[rows, bins] floats without all-NaN bins; a remaining NaN takes its bin's mean."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"scores have shape {x.shape}; expected a 2-D [varieties, bins] array.")
    x = x[:, ~np.isnan(x).all(axis=0)]
    return np.where(np.isnan(x), np.nanmean(x, axis=0), x) if x.size else x


def difference_from_reference(scores: np.ndarray, reference_row: int = 0) -> np.ndarray:
    """Each row's scores minus the reference row's (the reference row becomes 0)."""
    scores = np.asarray(scores, dtype=float)
    if not 0 <= reference_row < len(scores):
        raise ValueError(f"reference_row is {reference_row}; expected a row of the {len(scores)} varieties.")
    return scores - scores[reference_row]


def row_order(scores: np.ndarray, max_linkage_rows: int = MAX_LINKAGE_ROWS, n_clusters: int = 50,
              seed: int = 0) -> np.ndarray:
    """Rows ordered so that similar rows sit together: cluster_order up to `max_linkage_rows` rows; above,
    k-means of the rows' first 20 principal components, the clusters in the leaf order of their centres and
    each cluster's rows by their first principal component (memory rows × bins, no rows × rows matrix)."""
    x = _filled(scores)
    if len(x) <= max_linkage_rows:
        return cluster_order(x)
    if x.shape[1] == 0 or np.ptp(x, axis=0).max() == 0:
        return np.arange(len(x))
    pcs = PCA(min(20, *x.shape), svd_solver="randomized", random_state=seed).fit_transform(x)
    k = min(n_clusters, len(np.unique(pcs.round(12), axis=0)))
    fit = KMeans(k, n_init=3, random_state=seed).fit(pcs)
    rank = np.empty(k, dtype=int)
    rank[cluster_order(fit.cluster_centers_)] = np.arange(k)
    return np.lexsort((pcs[:, 0], rank[fit.labels_]))


def variety_pca(scores: np.ndarray, samples: list[str], n_components: int = 2, max_bins: int = 5000,
                seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """PCA of the varieties by their predicted profiles over the `max_bins` bins that vary most between
    them: a table (sample, PC1, PC2, ...) and each component's fraction of the variance (0 when the
    profiles are all equal)."""
    x = _filled(scores)
    if len(x) != len(samples):
        raise ValueError(f"scores have {len(x)} rows; expected one per sample ({len(samples)}).")
    coords, explained = np.zeros((len(x), n_components)), np.zeros(n_components)
    spread = x.var(axis=0)
    if len(x) > 1 and (spread > 0).any():
        keep = np.argsort(spread, kind="stable")[-max_bins:]
        pca = PCA(min(n_components, len(x), len(keep)), random_state=seed)
        coords[:, : pca.n_components] = pca.fit_transform(x[:, keep])
        explained[: pca.n_components] = pca.explained_variance_ratio_
    table = pd.DataFrame(coords, columns=[f"PC{i + 1}" for i in range(n_components)])
    table.insert(0, "sample", list(samples))
    return table, explained


def bin_variance(scores: np.ndarray, bins: pd.DataFrame, samples: list[str]) -> pd.DataFrame:
    """Track chrom, start, end, score: each bin's variance across the varieties (NaN scores left out)."""
    scores = check_map(scores, bins, samples)
    seen = (~np.isnan(scores)).any(axis=0)
    variance = np.full(len(bins), np.nan)
    variance[seen] = np.nanvar(scores[:, seen], axis=0)
    return bins[["chrom", "start", "end"]].reset_index(drop=True).assign(score=variance)


def read_variety_labels(path) -> pd.Series:
    """Population label per variety from a TSV with a `variety` column and a `population` column (or one
    other column, whose name becomes the series' name)."""
    table = pd.read_csv(path, sep="\t", dtype=str, comment="#")
    others = [c for c in table.columns if c != "variety"]
    label = "population" if "population" in others else others[0] if len(others) == 1 else None
    if "variety" not in table.columns or label is None:
        raise ValueError(f"{path}: expected a TSV with columns variety and population (or variety and one "
                         f"label column), got columns {list(table.columns)}.")
    doubled = table["variety"][table["variety"].duplicated()].tolist()
    if doubled:
        raise ValueError(f"{path}: variety {doubled[0]!r} is listed twice; expected one row per variety.")
    return table.set_index("variety")[label].fillna("")


CHANGED = "changed_windows.tsv.gz"


def write_changes(scores: np.ndarray, bins: pd.DataFrame, samples: list[str], carried: pd.DataFrame,
                  window: int, stride: int, min_delta: float) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """Bins whose score moves by `min_delta` from the reference's in some variety, with the variants that
    variety carries in the `window` bp the bin's score comes from (CHANGED: a row per variety, bin and
    variant, gzipped: a population repeats them), and the most variable regions (variable_regions.tsv);
    returns both and the number of bins changed."""
    changed = changed_windows(scores, bins, samples, min_delta=min_delta)
    with_variants = variants_in(tiling.bin_windows(changed, window, stride), carried)
    with atomic_path(CHANGED) as tmp:
        with_variants.to_csv(tmp, sep="\t", index=False)
    variable = variable_regions(scores, bins, samples, width_bins=10, n=20)
    with atomic_path("variable_regions.tsv") as tmp:
        variable.to_csv(tmp, sep="\t", index=False)
    return with_variants, len(changed[["chrom", "start"]].drop_duplicates()), variable


# ---- two maps of the same varieties, side by side ----

def _map_model(params: dict) -> str:
    """The record a map's model came from: its `checkpoint` (a record name, or a path into one)."""
    checkpoint = str(params.get("checkpoint") or "")
    parts = [p for p in checkpoint.split("/") if p not in ("", "..", ".")]
    return parts[0] if parts else "its own"


def map_summary(record: Path) -> dict:
    """What a map record (04 with varieties) wrote of its map, as one column: model, mark, changed_delta, the
    bins and variety-bins changing by it, the variants inside them, the largest change, the most variable
    block, and the AUROC of the reference track for bins near a TSS and for labelled windows when it scored
    them."""
    record = Path(record)
    params = records.read_parameters(record)
    # the changed windows: gzipped, or plain in the records from before 2026-12-07
    written = [p for p in (record / CHANGED, record / "changed_windows.tsv") if p.exists()]
    if not written:
        raise FileNotFoundError(f"record {record.name} holds no {CHANGED}: it is not the record of a map "
                                "(04 with varieties)")
    changed = pd.read_csv(written[0], sep="\t")
    variable = pd.read_csv(record / "variable_regions.tsv", sep="\t")
    metrics_path = record / "genome_metrics.json"
    scored = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    top = variable.iloc[0] if len(variable) else None
    implicated = changed[["chrom", "variant_start", "ref", "alt"]].dropna().drop_duplicates()
    summary = {
        "model (record)": _map_model(params), "mark": params.get("mark"),
        "changed_delta": params.get("changed_delta"),
        "bins changed in some variety": len(changed[["chrom", "start"]].drop_duplicates()),
        "variety-bin changes": len(changed[["chrom", "start", "sample"]].drop_duplicates()),
        "variants inside changed windows": len(implicated),
        "largest |change|": float(changed["delta"].abs().max()) if len(changed) else 0.0,
        "most variable block": f"{top.chrom}:{top.start}-{top.end}" if top is not None else "",
        "its range across varieties": float(top["range"]) if top is not None else np.nan,
    }
    if "tss_bins" in scored:
        summary["reference track: bins near a TSS, AUROC"] = scored["tss_bins"]["auroc"]
    for split in ("train", "test"):
        if f"labelled_{split}" in scored:
            summary[f"labelled {split} windows AUROC"] = scored[f"labelled_{split}"]["auroc"]
    return summary


def compare_maps(here: Path, other: Path) -> pd.DataFrame:
    """Two map records of the same varieties side by side (map_summary), and how many of the most variable
    blocks (variable_regions.tsv) of each overlap one of the other's."""
    table = pd.DataFrame({Path(r).name: map_summary(r) for r in (here, other)})
    mine, theirs = (pd.read_csv(Path(r) / "variable_regions.tsv", sep="\t") for r in (here, other))
    shared = f"{int(intervals.overlaps(mine, theirs).sum())} of {len(mine)}" if len(theirs) else "0"
    table.loc["variable blocks overlapping the other map's"] = [
        shared, f"{int(intervals.overlaps(theirs, mine).sum())} of {len(theirs)}" if len(mine) else "0"]
    return table
