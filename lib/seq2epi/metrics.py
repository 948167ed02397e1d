"""Binary classification metrics and the choice of a decision threshold on validation data."""

import numpy as np
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
