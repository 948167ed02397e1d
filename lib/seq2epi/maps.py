"""The epigenome map of a population: variety order, most variable regions, changed windows and variants."""

import bioframe
import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage


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
