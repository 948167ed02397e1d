"""Binary classification metrics, the choice of a threshold on validation data, calibration errors, and
rank and linear correlations with bootstrap intervals for regression targets."""

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn import metrics as skm


def _check(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_score = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_score, dtype=float).ravel()
    if y_true.shape != y_score.shape or y_true.size == 0:
        raise ValueError(
            f"y_true and y_score must be non-empty and equally long, got {y_true.size} and {y_score.size}."
        )
    if not np.isin(y_true, (0, 1)).all():
        bad = np.unique(y_true[~np.isin(y_true, (0, 1))])[:5]
        raise ValueError(f"y_true must hold only 0 and 1, found {bad}.")
    return y_true.astype(int), y_score


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def binary_metrics(y_true, y_score, threshold: float = 0.5) -> dict:
    """acc, auroc, auprc, mcc, sens, spec and confusion counts; predicted positive when score >= threshold."""
    y_true, y_score = _check(y_true, y_score)
    y_pred = (y_score >= threshold).astype(int)
    tn, fp, fn, tp = (int(c) for c in skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel())
    both = 0 < y_true.sum() < y_true.size
    return {
        "acc": (tp + tn) / y_true.size,
        "auroc": float(skm.roc_auc_score(y_true, y_score)) if both else float("nan"),
        "auprc": float(skm.average_precision_score(y_true, y_score)) if y_true.any() else float("nan"),
        "mcc": float(skm.matthews_corrcoef(y_true, y_pred)),
        "sens": _ratio(tp, tp + fn),
        "spec": _ratio(tn, tn + fp),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "threshold": float(threshold),
    }


def choose_threshold(y_true, y_score, criterion: str = "mcc") -> float:
    """The observed score that, as `score >= threshold`, maximises MCC (or Youden's J = sens + spec - 1)."""
    if criterion not in ("mcc", "youden"):
        raise ValueError(f"criterion must be 'mcc' or 'youden', got {criterion!r}.")
    y_true, y_score = _check(y_true, y_score)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("choose_threshold needs both positive and negative labels.")
    fpr, tpr, thresholds = skm.roc_curve(y_true, y_score, drop_intermediate=False)
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]  # drop the +inf "predict nothing" point
    if criterion == "youden":
        score = tpr - fpr
    else:
        tp, fp = np.rint(tpr * n_pos), np.rint(fpr * n_neg)
        fn, tn = n_pos - tp, n_neg - fp
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        score = np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(thresholds[np.argmax(score)])


def _resample_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """[n_boot, n] counts of how often each of n examples is drawn in each bootstrap resample of size n."""
    draws = rng.integers(0, n, (n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def _weighted_metrics(w_pos: np.ndarray, w_neg: np.ndarray, above: np.ndarray) -> dict[str, np.ndarray]:
    """auroc, auprc, mcc, acc of resamples from per-score-level weights [B, U], levels by descending score."""
    n_pos, n_neg = w_pos.sum(1), w_neg.sum(1)
    neg_below = n_neg[:, None] - np.cumsum(w_neg, 1)
    auroc = (w_pos * (neg_below + w_neg / 2)).sum(1) / (n_pos * n_neg)
    tp_cum, fp_cum = np.cumsum(w_pos, 1), np.cumsum(w_neg, 1)
    precision = np.divide(tp_cum, tp_cum + fp_cum, out=np.zeros_like(tp_cum), where=tp_cum + fp_cum > 0)
    auprc = (w_pos * precision).sum(1) / n_pos
    tp, fp = w_pos[:, above].sum(1), w_neg[:, above].sum(1)
    fn, tn = n_pos - tp, n_neg - fp
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(denom), where=denom > 0)
    return {"auroc": auroc, "auprc": auprc, "mcc": mcc, "acc": (tp + tn) / (n_pos + n_neg)}


def bootstrap_ci(y_true, y_score, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of auroc, auprc, mcc and acc over stratified bootstrap resamples of the examples.

    Positives and negatives are resampled separately (class counts fixed); all resamples are scored at once
    from per-score-level weights, in chunks that keep memory bounded.
    """
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"level must lie in (0, 1) and n_boot be >= 1, got level={level} n_boot={n_boot}.")
    y_true, y_score = _check(y_true, y_score)
    if y_true.all() or not y_true.any():
        raise ValueError("bootstrap_ci needs both positive and negative labels.")
    order = np.argsort(-y_score, kind="stable")
    y_true, y_score = y_true[order], y_score[order]
    starts = np.flatnonzero(np.r_[True, y_score[1:] != y_score[:-1]])  # first example of each score level
    above = y_score[starts] >= threshold
    pos, neg = np.flatnonzero(y_true == 1), np.flatnonzero(y_true == 0)
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // len(y_true))
    parts = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w_pos, w_neg = np.zeros((b, len(y_true))), np.zeros((b, len(y_true)))
        w_pos[:, pos] = _resample_counts(rng, len(pos), b)
        w_neg[:, neg] = _resample_counts(rng, len(neg), b)
        w_pos, w_neg = np.add.reduceat(w_pos, starts, axis=1), np.add.reduceat(w_neg, starts, axis=1)
        parts.append(_weighted_metrics(w_pos, w_neg, above))
    alpha = (1 - level) / 2
    return {k: tuple(float(q) for q in np.quantile(np.concatenate([p[k] for p in parts]), [alpha, 1 - alpha]))
            for k in parts[0]}


def per_target(y, p, thresholds=0.5, marks: list[str] | None = None) -> dict[str, dict]:
    """binary_metrics of each target column of y, p [n, T] (NaN labels left out), keyed by mark name."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    y, p = y.reshape(len(y), -1), p.reshape(len(p), -1)
    if y.shape != p.shape:
        raise ValueError(f"labels and scores must have the same shape, got {y.shape} and {p.shape}.")
    marks = [str(t) for t in range(y.shape[1])] if marks is None else list(marks)
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=float), (y.shape[1],))
    if len(marks) != y.shape[1]:
        raise ValueError(f"got {len(marks)} mark names for {y.shape[1]} targets.")
    out = {}
    for t, mark in enumerate(marks):
        known = ~np.isnan(y[:, t])
        if not known.any():
            raise ValueError(f"target {mark!r} has no labelled example.")
        out[mark] = binary_metrics(y[known, t], p[known, t], thresholds[t]) | {"n": int(known.sum())}
    return out


def reliability_bins(y_true, y_prob, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: lower, upper, count, mean_prob and frac_pos (observed rate) of each."""
    y_true, y_prob = _check(y_true, y_prob)
    if n_bins < 1 or ((y_prob < 0) | (y_prob > 1)).any():
        raise ValueError(f"need n_bins >= 1 and probabilities in [0, 1], got n_bins={n_bins}, "
                         f"scores from {y_prob.min():.3g} to {y_prob.max():.3g}.")
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.searchsorted(edges, y_prob, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_prob = np.bincount(which, y_prob, n_bins) / count
        frac_pos = np.bincount(which, y_true, n_bins) / count
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count, "mean_prob": mean_prob,
                         "frac_pos": frac_pos})


def ece(y_true, y_prob, n_bins: int = 10) -> float:
    """Expected calibration error of P(y = 1): the count-weighted mean |observed rate - mean probability|."""
    bins = reliability_bins(y_true, y_prob, n_bins)
    full = bins["count"] > 0
    gap = (bins["frac_pos"] - bins["mean_prob"]).abs()[full]
    return float((gap * bins["count"][full]).sum() / bins["count"].sum())


def brier(y_true, y_prob) -> float:
    """Brier score: the mean squared difference between probability and label (0 is perfect)."""
    y_true, y_prob = _check(y_true, y_prob)
    return float(np.mean((y_prob - y_true) ** 2))


def _known_pairs(y, p) -> tuple[np.ndarray, np.ndarray]:
    """(y, p) as float arrays of equal length, pairs where either is NaN left out."""
    y, p = np.asarray(y, dtype=float).ravel(), np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"targets and predictions must be equally long, got {y.size} and {p.size}.")
    known = ~(np.isnan(y) | np.isnan(p))
    return y[known], p[known]


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of a with the same row of b [B, n]; NaN where a row is constant."""
    a, b = a - a.mean(axis=-1, keepdims=True), b - b.mean(axis=-1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    return np.divide((a * b).sum(axis=-1), denom, out=np.full(denom.shape, np.nan), where=denom > 0)


def pearson(y, p) -> float:
    """Pearson correlation over the pairs without NaN; NaN with fewer than 2 pairs or a constant side."""
    y, p = _known_pairs(y, p)
    return float(_rowwise_pearson(y, p)) if y.size >= 2 else float("nan")


def spearman(y, p) -> float:
    """Spearman correlation (average ranks for ties) over the pairs without NaN; NaN as in `pearson`."""
    y, p = _known_pairs(y, p)
    return float(_rowwise_pearson(rankdata(y), rankdata(p))) if y.size >= 2 else float("nan")


def regression_metrics(y, p, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """spearman, pearson, n (pairs without NaN) and percentile intervals spearman_ci, pearson_ci [low, high]
    over bootstrap resamples of the pairs, all resamples ranked and correlated at once."""
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"level must lie in (0, 1) and n_boot be >= 1, got level={level} n_boot={n_boot}.")
    y, p = _known_pairs(y, p)
    if y.size < 2:
        raise ValueError(f"regression_metrics needs at least 2 pairs without NaN, got {y.size}.")
    draws = np.random.default_rng(seed).integers(0, y.size, (n_boot, y.size))
    y_boot, p_boot = y[draws], p[draws]
    boots = {"spearman": _rowwise_pearson(rankdata(y_boot, axis=1), rankdata(p_boot, axis=1)),
             "pearson": _rowwise_pearson(y_boot, p_boot)}
    alpha = (1 - level) / 2
    out = {"spearman": spearman(y, p), "pearson": pearson(y, p), "n": int(y.size)}
    for name, values in boots.items():
        finite = values[np.isfinite(values)]
        out[f"{name}_ci"] = [float(q) for q in np.quantile(finite, [alpha, 1 - alpha])] if finite.size \
            else [float("nan")] * 2
    return out
