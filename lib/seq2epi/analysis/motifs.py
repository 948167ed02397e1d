"""Motifs from attributions: TF-MoDISco patterns (modisco-lite), JASPAR plant motifs offline (pyjaspar) and
TOMTOM matches between them (memelite)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seq2epi.analysis.interpret import hypothetical, one_hot


@dataclass
class Pattern:
    """A TF-MoDISco pattern, trimmed to where its contribution is at least `trim` of its peak."""

    name: str
    ppm: np.ndarray  # [L, 4] base frequencies of its seqlets
    cwm: np.ndarray  # [L, 4] mean contribution of each base
    n_seqlets: int

    @property
    def consensus(self) -> str:
        return "".join("ACGT"[i] for i in self.ppm.argmax(1))


def _trim(ppm: np.ndarray, cwm: np.ndarray, trim: float) -> tuple[np.ndarray, np.ndarray]:
    score = np.abs(cwm).sum(1)
    keep = np.flatnonzero(score >= trim * score.max())
    return ppm[keep[0] : keep[-1] + 1], cwm[keep[0] : keep[-1] + 1]


def modisco_patterns(tokens, lengths, scores: list[np.ndarray], trim: float = 0.3,
                     sliding_window_size: int = 21, flank_size: int = 10, min_metacluster_size: int = 20,
                     final_min_cluster_size: int = 10, **kwargs) -> list[Pattern]:
    """TF-MoDISco patterns (positive then negative metacluster) of sequences and their [L_i, 4] ISM scores.

    The hypothetical contributions are the ISM changes centred per position; shorter sequences are padded
    with zero columns to the longest. The cluster sizes default below modisco-lite's (100, 20), which are
    set for tens of thousands of sequences; other TFMoDISco keywords pass through.
    """
    from modiscolite.tfmodisco import TFMoDISco

    tokens, lengths = np.asarray(tokens, dtype=np.uint8), np.asarray(lengths)
    if len(scores) != len(tokens):
        raise ValueError(f"got {len(scores)} score arrays for {len(tokens)} sequences.")
    width = int(lengths.max())
    X = one_hot(tokens[:, :width]).transpose(0, 2, 1).astype(np.float32)  # [n, L, 4]; PAD columns are zero
    hyp = np.zeros_like(X)
    for i, (length, score) in enumerate(zip(lengths, scores, strict=True)):
        hyp[i, :length] = hypothetical(score)
    found = TFMoDISco(X, hyp, sliding_window_size=sliding_window_size, flank_size=flank_size,
                      min_metacluster_size=min_metacluster_size,
                      final_min_cluster_size=final_min_cluster_size, **kwargs)
    out = []
    for group, patterns in zip(("pos", "neg"), found, strict=True):
        for i, pattern in enumerate(patterns or []):
            ppm, cwm = _trim(np.asarray(pattern.sequence), np.asarray(pattern.contrib_scores), trim)
            out.append(Pattern(f"{group}_pattern_{i}", ppm, cwm, len(pattern.seqlets)))
    return out


def jaspar_motifs(release: str = "JASPAR2024", tax_group: str = "plants") -> dict[str, np.ndarray]:
    """{"MA0021.1 Dof3": [4, L] probability matrix} of JASPAR's CORE collection for a taxonomic group, read
    from the SQLite database that pyjaspar ships (no network)."""
    from pyjaspar import jaspardb

    with warnings.catch_warnings():  # pyjaspar warns on an empty selection: raised below as one sentence
        warnings.simplefilter("ignore")
        motifs = jaspardb(release=release).fetch_motifs(collection="CORE", tax_group=[tax_group])
    if not motifs:
        raise ValueError(f"JASPAR {release} holds no CORE motif of tax group {tax_group!r}.")
    out = {}
    for motif in motifs:
        counts = np.array([motif.counts[base] for base in "ACGT"], dtype=np.float64)
        out[f"{motif.matrix_id} {motif.name}"] = counts / counts.sum(0, keepdims=True)
    return out


def match_motifs(patterns: list[Pattern], targets: dict[str, np.ndarray], n_nearest: int = 3) -> pd.DataFrame:
    """The `n_nearest` targets of each pattern by TOMTOM p-value (both strands), with the E-value (p x the
    number of targets). Columns pattern, consensus, rank, match, p_value, e_value, strand."""
    from memelite.tomtom import tomtom

    columns = ["pattern", "consensus", "rank", "match", "p_value", "e_value", "strand"]
    if not patterns:
        return pd.DataFrame(columns=columns)
    names, matrices = list(targets), [np.asarray(m, dtype=np.float64) for m in targets.values()]
    queries = [np.ascontiguousarray(p.ppm.T, dtype=np.float64) for p in patterns]
    p, _, _, _, strands, idxs = tomtom(queries, matrices, n_nearest=n_nearest, n_jobs=1)
    rows = []
    for q, pattern in enumerate(patterns):
        for rank in range(idxs.shape[1]):
            p_value = float(p[q, rank])
            rows.append([pattern.name, pattern.consensus, rank + 1, names[int(idxs[q, rank])], p_value,
                         p_value * len(names), "-" if strands[q, rank] else "+"])
    return pd.DataFrame(rows, columns=columns)


def pattern_logo(matrix, ax=None, title: str = "", information: bool = False):
    """A [L, 4] contribution matrix, or with `information` a probability matrix drawn in bits, as a sequence
    logo (logomaker); returns the Axes."""
    import logomaker
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(np.asarray(matrix, dtype=np.float64), columns=list("ACGT"))
    if information:
        frame = logomaker.transform_matrix(frame, from_type="probability", to_type="information")
    if ax is None:
        ax = plt.subplots(figsize=(max(3.0, len(frame) / 3), 1.8))[1]
    logomaker.Logo(frame, ax=ax)
    ax.set_title(title, fontsize=9)
    return ax


def motif_figure(patterns: list[Pattern], matches: pd.DataFrame, jaspar: dict[str, np.ndarray]):
    """Each pattern's contribution logo beside its best JASPAR match (match_motifs' rank 1, drawn on the
    matched strand); returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(patterns), 2, figsize=(10, 1.8 * len(patterns)), squeeze=False)
    for (cwm_ax, match_ax), pattern in zip(axes, patterns, strict=True):
        pattern_logo(pattern.cwm, cwm_ax, f"{pattern.name} ({pattern.n_seqlets} seqlets)")
        best = matches[(matches["pattern"] == pattern.name) & (matches["rank"] == 1)].iloc[0]
        ppm = jaspar[best["match"]].T
        ppm = ppm[::-1, ::-1] if best["strand"] == "-" else ppm
        title = f"{best['match']} ({best['strand']}), E = {best['e_value']:.2g}"
        pattern_logo(ppm, match_ax, title, information=True)
    fig.tight_layout()
    return fig
