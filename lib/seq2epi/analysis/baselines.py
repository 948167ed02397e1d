"""Baselines every transformer result is shown beside: GC content, k-mer spectrum logistic regression, and
k-mer spectrum ridge regression for regression targets."""

import warnings

import numpy as np
from scipy.linalg import LinAlgWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from seq2epi.data import sequence
from seq2epi.lab.metrics import spearman


def kmer_spectrum(tokens: np.ndarray, lengths: np.ndarray, k_max: int = 6) -> np.ndarray:
    """Frequencies of all 1..k_max-mers of ACGT per sequence (k-mers with N or PAD are not counted)."""
    tokens = np.asarray(tokens)
    n, width = tokens.shape
    valid = (tokens < 4) & (np.arange(width)[None, :] < np.asarray(lengths)[:, None])
    blocks = []
    for k in range(1, k_max + 1):
        if width < k:
            blocks.append(np.zeros((n, 4**k), np.float32))
            continue
        code = np.zeros((n, width - k + 1), np.int64)
        ok = np.ones((n, width - k + 1), bool)
        for j in range(k):
            code = code * 4 + np.where(valid[:, j:width - k + 1 + j], tokens[:, j:width - k + 1 + j], 0)
            ok &= valid[:, j:width - k + 1 + j]
        rows = np.broadcast_to(np.arange(n)[:, None], code.shape)
        counts = np.zeros((n, 4**k), np.float32)
        np.add.at(counts, (rows[ok], code[ok]), 1.0)
        blocks.append(counts / np.maximum(counts.sum(1, keepdims=True), 1.0))
    return np.hstack(blocks)


class GCContent:
    """GC fraction as a score, its sign chosen on the training data (some marks sit on AT-rich sequence);
    a sequence of only N scores 0.5."""

    def fit(self, tokens, lengths, labels):
        gc = sequence.gc_content(tokens, lengths)
        self.sign = 1.0 if np.nanmean(gc[labels == 1]) >= np.nanmean(gc[labels == 0]) else -1.0
        return self

    def score(self, tokens, lengths) -> np.ndarray:
        return self.sign * np.nan_to_num(sequence.gc_content(tokens, lengths), nan=0.5)


class KmerLogistic:
    """L2 logistic regression on the standardised 1..k_max-mer spectrum."""

    def __init__(self, k_max: int = 6, C: float = 0.01, seed: int = 0):
        self.k_max = k_max
        regression = LogisticRegression(C=C, max_iter=2000, random_state=seed)
        self.model = make_pipeline(StandardScaler(), regression)

    def fit(self, tokens, lengths, labels):
        self.model.fit(kmer_spectrum(tokens, lengths, self.k_max), labels)
        return self

    def score(self, tokens, lengths) -> np.ndarray:
        return self.model.predict_proba(kmer_spectrum(tokens, lengths, self.k_max))[:, 1]


# 1e-9 .. 100: records chose 1e-6 (H3K4me3 learning curve and negatives) and 10 (demo), the old edges
KMER_CS = tuple(float(10.0**e) for e in range(-9, 3))


def select_kmer_logistic(train: tuple, val: tuple, Cs=KMER_CS, k_maxes=(3, 4, 6),
                         seed: int = 0) -> tuple[KmerLogistic, dict]:
    """Fit one KmerLogistic per (k_max, C) on (tokens, lengths, labels) of train; keep the best validation
    AUROC. Returns the model and the validation AUROC of every (k_max, C)."""
    spectra = [kmer_spectrum(part[0], part[1], max(k_maxes)) for part in (train, val)]
    fitted, val_auroc = {}, {}
    for k in k_maxes:
        width = sum(4**j for j in range(1, k + 1))  # the spectrum's 1..k-mer columns come first
        for C in Cs:
            model = KmerLogistic(k, C, seed)
            model.model.fit(spectra[0][:, :width], train[2])
            fitted[k, C] = model
            val_score = model.model.predict_proba(spectra[1][:, :width])[:, 1]
            val_auroc[k, C] = float(roc_auc_score(val[2], val_score))
    return fitted[max(val_auroc, key=val_auroc.get)], val_auroc


def at_grid_edge(C: float, Cs=KMER_CS) -> bool:
    """Whether a chosen C is the grid's smallest or largest: the best may lie beyond it."""
    return C in (min(Cs), max(Cs))


class KmerRidge:
    """Ridge regression per target on the standardised 1..k_max-mer spectrum; a target's NaN rows are left out
    of its fit (standardisation included)."""

    def __init__(self, k_max: int = 6, alpha: float = 1.0):
        self.k_max, self.alpha = k_max, alpha

    def fit(self, tokens, lengths, targets):
        return self.fit_spectrum(kmer_spectrum(tokens, lengths, self.k_max), targets)

    def fit_spectrum(self, spectrum: np.ndarray, targets) -> "KmerRidge":
        """Fit on precomputed kmer_spectrum features [n, features] and targets [n] or [n, n_targets]."""
        targets = np.asarray(targets, dtype=float)
        self.one_target = targets.ndim == 1
        targets = targets.reshape(len(targets), -1)
        if len(targets) != len(spectrum):
            raise ValueError(f"targets have {len(targets)} rows for {len(spectrum)} sequences.")
        self.models = []
        for t in range(targets.shape[1]):
            known = ~np.isnan(targets[:, t])
            if known.sum() < 2:
                raise ValueError(f"target {t} has {known.sum()} known values; a ridge fit needs at least 2.")
            model = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha))
            # the spectrum's columns are dependent by construction (each k's frequencies sum to 1): the
            # penalty is what makes the fit well-posed, so scipy's ill-conditioning warning is noise here
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LinAlgWarning)
                self.models.append(model.fit(spectrum[known], targets[known, t]))
        return self

    def score_spectrum(self, spectrum: np.ndarray) -> np.ndarray:
        out = np.stack([model.predict(spectrum) for model in self.models], axis=1)
        return out[:, 0] if self.one_target else out

    def score(self, tokens, lengths) -> np.ndarray:
        """Predictions [n] or [n, n_targets], as the targets were given to fit."""
        return self.score_spectrum(kmer_spectrum(tokens, lengths, self.k_max))


KMER_ALPHAS = tuple(float(10.0**e) for e in range(-1, 7))  # 0.1 .. 1e6 on standardised features


def _mean_spearman(targets: np.ndarray, predictions: np.ndarray) -> float:
    """Spearman averaged over the target columns (NaN rows of each left out)."""
    targets, predictions = (np.asarray(a, dtype=float).reshape(len(a), -1) for a in (targets, predictions))
    values = [spearman(targets[:, t], predictions[:, t]) for t in range(targets.shape[1])]
    return float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")


def select_kmer_ridge(train: tuple, val: tuple, alphas=KMER_ALPHAS, k_maxes=(3, 4, 5, 6)
                      ) -> tuple[KmerRidge, dict]:
    """Fit one KmerRidge per (k_max, alpha) on (tokens, lengths, targets) of train; keep the best validation
    Spearman (mean over targets). Returns the model and its choice: k_max, alpha, alpha_at_edge and the
    validation Spearman of every (k_max, alpha)."""
    spectra = [kmer_spectrum(part[0], part[1], max(k_maxes)) for part in (train, val)]
    fitted, val_spearman = {}, {}
    for k in k_maxes:
        width = sum(4**j for j in range(1, k + 1))  # the spectrum's 1..k-mer columns come first
        for alpha in alphas:
            model = KmerRidge(k, alpha).fit_spectrum(spectra[0][:, :width], train[2])
            fitted[k, alpha] = model
            val_spearman[k, alpha] = _mean_spearman(val[2], model.score_spectrum(spectra[1][:, :width]))
    k, alpha = max(val_spearman, key=lambda key: np.nan_to_num(val_spearman[key], nan=-np.inf))
    return fitted[k, alpha], {"k_max": k, "alpha": alpha, "alpha_at_edge": at_grid_edge(alpha, alphas),
                              "val_spearman": val_spearman}
