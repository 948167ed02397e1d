"""What the model looks at: in-silico mutagenesis (tangermeme), gradient x input, logos, salient k-mers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from seq2epi.data.sequence import ALPHABET, PAD, N
from seq2epi.lab.progress import bar


def _check_tokens(tokens) -> np.ndarray:
    tokens = np.asarray(tokens, dtype=np.uint8)
    if tokens.ndim != 1 or (tokens == PAD).any():
        raise ValueError(f"tokens must be one sequence [L] without PAD, got shape {tokens.shape}.")
    return tokens


def one_hot(tokens) -> np.ndarray:
    """int8 one-hot [n, 4, L] of tokens [n, L] (tangermeme's layout); N and PAD are all-zero columns."""
    tokens = np.asarray(tokens, dtype=np.uint8)
    table = np.zeros((PAD + 1, 4), np.int8)
    table[np.arange(4), np.arange(4)] = 1
    return np.ascontiguousarray(table[tokens].transpose(0, 2, 1))


class OneHotModel(torch.nn.Module):
    """The token model seen through one-hot input [B, 4, L], as tangermeme expects; a zero column is N.

    Each position is embedded as X^T E[A..T] + (1 - sum X) E[N], which equals the model's embedding of the
    tokens on a hard one-hot input and lets gradients reach X.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        table, X = self.model.encoder.weight, X.to(self.model.encoder.weight.dtype)
        present = X.sum(1)
        embedded = torch.einsum("bcl,ce->ble", X, table[:4]) + (1 - present).unsqueeze(-1) * table[N]
        tokens = torch.where(present > 0, X.argmax(1), N)
        hook = self.model.encoder.register_forward_hook(lambda module, args, out: embedded)
        try:
            return self.model(tokens)
        finally:
            hook.remove()


def ism(model: torch.nn.Module, tokens, lengths, target: int = 0, batch_size: int = 256, device: str = "cpu",
        progress: bool = False) -> list[np.ndarray]:
    """[L_i, 4] change in the `target` logit when each position becomes A, C, G or T (0 at the reference),
    one array per sequence of tokens [n, L] (PAD after lengths); tangermeme's saturation mutagenesis, run on
    the sequences of each length together (N is mutated to every base, PAD never)."""
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    tokens, lengths = np.asarray(tokens, dtype=np.uint8), np.asarray(lengths)
    wrapped, out = OneHotModel(model).eval(), [None] * len(tokens)  # tangermeme restores its mode
    for length in bar(np.unique(lengths), "ISM by length", enabled=progress):
        rows = np.flatnonzero(lengths == length)
        part = tokens[rows, :length]
        if (part == PAD).any():
            raise ValueError(f"tokens hold PAD inside the first {length} positions (their length).")
        y0, y_hat = saturation_mutagenesis(wrapped, torch.from_numpy(one_hot(part)), batch_size=batch_size,
                                           device=device, raw_outputs=True, fast=False)
        delta = (y_hat[..., target] - y0[:, None, None, target]).float().numpy()  # [n, 4, L]
        for row, d in zip(rows, delta, strict=True):
            out[row] = np.ascontiguousarray(d.T)
    return out


def in_silico_mutagenesis(model: torch.nn.Module, tokens, device: str = "cpu", batch_size: int = 256,
                          target: int = 0) -> np.ndarray:
    """[L, 4] change in the `target` logit when each position becomes A, C, G or T (0 at the reference)."""
    tokens = _check_tokens(tokens)
    return ism(model, tokens[None], [len(tokens)], target, batch_size, device)[0]


def hypothetical(scores) -> np.ndarray:
    """ISM changes [.., L, 4] centred on each position's mean: TF-MoDISco's hypothetical contributions."""
    scores = np.asarray(scores, dtype=np.float32)
    return scores - scores.mean(-1, keepdims=True)


def gradient_x_input(model: torch.nn.Module, tokens, target: int = 0, device: str = "cpu") -> np.ndarray:
    """[L, 4] first-order estimate of in_silico_mutagenesis: grad_l . (E[b] - E[ref_l]) (0 at the reference).

    grad_l is d logit / d embedding at position l and E the embedding table, so each entry is the Taylor
    approximation of the logit change of one substitution: exact for a model linear in its embeddings, and
    one forward and backward pass instead of 3L forward passes.
    """
    tokens = _check_tokens(tokens)
    model = model.to(device).eval()
    x = torch.from_numpy(tokens.astype(np.int64)).to(device)
    table = model.encoder.weight.detach()
    embedded = table[x][None].requires_grad_()
    hook = model.encoder.register_forward_hook(lambda module, args, out: embedded)
    try:
        with torch.enable_grad():
            grad = torch.autograd.grad(model(x[None])[0, target], embedded)[0][0]  # [L, ninp]
    finally:
        hook.remove()
    return (grad @ table[:4].T - (grad * table[x]).sum(1, keepdim=True)).float().cpu().numpy()


def saliency(scores, tokens) -> np.ndarray:
    """[L] ISM saliency: minus the mean effect of the three substitutions at each position (0 at N)."""
    scores, tokens = np.asarray(scores, dtype=float), _check_tokens(tokens)
    if scores.shape != (len(tokens), 4):
        raise ValueError(f"scores must be [L, 4] for {len(tokens)} tokens, got shape {scores.shape}.")
    return np.where(tokens < 4, -scores.sum(1) / 3, 0.0)


def attribution_logo(scores, tokens, ax=None):
    """Draw the saliency of each reference base as that letter's height (logomaker); returns the Axes."""
    import logomaker
    import matplotlib.pyplot as plt

    tokens = _check_tokens(tokens)
    heights = np.zeros((len(tokens), 4))
    known = np.flatnonzero(tokens < 4)
    heights[known, tokens[known]] = saliency(scores, tokens)[known]
    if ax is None:
        ax = plt.subplots(figsize=(max(4.0, len(tokens) / 8), 2))[1]
    logomaker.Logo(pd.DataFrame(heights, columns=list(ALPHABET[:4])), ax=ax)
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set(xlabel="position", ylabel="saliency (-mean ISM)")
    return ax


def attributions(model: torch.nn.Module, tokens, lengths, method: str = "ism", target: int = 0,
                 batch_size: int = 256, device: str = "cpu", progress: bool = False) -> list[np.ndarray]:
    """[L_i, 4] logit change of each substitution, per sequence: "ism" exact, "gradient" an estimate."""
    if method not in ("ism", "gradient"):
        raise ValueError(f"method must be 'ism' or 'gradient', got {method!r}.")
    if method == "ism":
        return ism(model, tokens, lengths, target, batch_size, device, progress)
    rows = bar(zip(tokens, lengths, strict=True), "gradient", total=len(tokens), enabled=progress)
    return [gradient_x_input(model, row[:length], target, device) for row, length in rows]


def salient_kmers(tokens, lengths, scores: list[np.ndarray], k: int = 6, n: int = 20,
                  min_count: int = 3) -> pd.DataFrame:
    """The `n` k-mers whose occurrences in the sequences are most enriched in saliency, best first.

    `scores` holds each sequence's [L, 4] ISM (see attributions). An occurrence scores the mean saliency of
    its k positions; a k-mer's z compares the mean over its occurrences with all occurrences of all k-mers
    (z = (mean - overall) / (sd / sqrt(count))), so a motif seen often and salient each time ranks above a
    rare one; k-mers seen fewer than `min_count` times are left out. Columns kmer, count, saliency (mean), z.
    """
    tokens, lengths = np.asarray(tokens, dtype=np.uint8), np.asarray(lengths)
    if len(scores) != len(tokens):
        raise ValueError(f"got {len(scores)} score arrays for {len(tokens)} sequences.")
    sums, counts = np.zeros(4**k), np.zeros(4**k)
    every = []
    for row, length, score in zip(tokens, lengths, scores, strict=True):
        seq = row[:length]
        windows = np.lib.stride_tricks.sliding_window_view(seq, k)
        ok = (windows < 4).all(1)
        code = (windows[ok].astype(np.int64) * 4 ** np.arange(k - 1, -1, -1)).sum(1)
        value = np.convolve(saliency(score, seq), np.ones(k) / k, mode="valid")[ok]
        np.add.at(sums, code, value)
        np.add.at(counts, code, 1)
        every.append(value)
    every = np.concatenate(every)
    keep = np.flatnonzero(counts >= min_count)
    mean = sums[keep] / counts[keep]
    z = (mean - every.mean()) / (every.std() / np.sqrt(counts[keep]))
    names = ["".join("ACGT"[c // 4 ** (k - 1 - j) % 4] for j in range(k)) for c in keep]
    table = pd.DataFrame({"kmer": names, "count": counts[keep].astype(int), "saliency": mean, "z": z})
    return table.sort_values("z", ascending=False, kind="stable").head(n).reset_index(drop=True)


def top_kmers(model: torch.nn.Module, tokens, lengths, k: int = 6, n: int = 20, method: str = "ism",
              min_count: int = 3, target: int = 0, batch_size: int = 256, device: str = "cpu",
              progress: bool = False) -> pd.DataFrame:
    """salient_kmers of the sequences' attributions (method "ism" exact, "gradient" a one-pass estimate)."""
    scores = attributions(model, tokens, lengths, method, target, batch_size, device, progress)
    return salient_kmers(tokens, lengths, scores, k, n, min_count)


def confident_positives(labels: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The rows labelled 1 (first target), the highest-scored first."""
    positives = np.flatnonzero(np.asarray(labels).reshape(len(labels), -1)[:, 0] == 1)
    return positives[np.argsort(-np.asarray(score)[positives])]


def attribution_figure(scores: list[np.ndarray], tokens, lengths, rows, probability, mark: str):
    """One attribution logo per row of `rows` (its ISM `scores`), titled with P(mark); returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(14, 1.8 * len(rows)), squeeze=False)
    for ax, i, row_scores in zip(axes[:, 0], rows, scores, strict=False):
        attribution_logo(row_scores, tokens[i, : lengths[i]], ax=ax)
        ax.set_title(f"test window {i}: P({mark}) = {probability[i]:.3f}", fontsize=9)
    fig.tight_layout()
    return fig


def last_layer_attention(model: torch.nn.Module, tokens, device: str = "cpu") -> np.ndarray:
    """The head-averaged self-attention of the last layer over one sequence's k-mer positions."""
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(tokens)[None], dtype=torch.long, device=device)
        _, attention = model(x, return_attention=True)
    return attention[0, -1].float().cpu().numpy()
