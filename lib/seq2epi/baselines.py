"""Baselines every transformer result is shown beside: GC content, k-mer spectrum logistic regression."""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from seq2epi import sequence


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


KMER_CS = tuple(float(10.0**e) for e in range(-6, 2))  # 1e-6 .. 10: the choice was at 1e-3, the old edge


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
