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


def select_kmer_logistic(train: tuple, val: tuple, Cs=(1e-3, 1e-2, 1e-1), k_max: int = 6,
                         seed: int = 0) -> tuple[KmerLogistic, dict]:
    """Fit one KmerLogistic per C on (tokens, lengths, labels) of train; keep the best validation AUROC."""
    fitted = {C: KmerLogistic(k_max, C, seed).fit(*train) for C in Cs}
    val_auroc = {C: float(roc_auc_score(val[2], m.score(val[0], val[1]))) for C, m in fitted.items()}
    best = max(val_auroc, key=val_auroc.get)
    return fitted[best], val_auroc
