"""What the model looks at: in-silico mutagenesis, gradient x input, saliency logos and salient k-mers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from seq2epi.sequence import ALPHABET, PAD


def _check_tokens(tokens) -> np.ndarray:
    tokens = np.asarray(tokens, dtype=np.uint8)
    if tokens.ndim != 1 or (tokens == PAD).any():
        raise ValueError(f"tokens must be one sequence [L] without PAD, got shape {tokens.shape}.")
    return tokens


@torch.inference_mode()
def in_silico_mutagenesis(model: torch.nn.Module, tokens, device: str = "cpu", batch_size: int = 256,
                          target: int = 0) -> np.ndarray:
    """[L, 4] change in the `target` logit when each position becomes A, C, G or T (0 at the reference)."""
    tokens = _check_tokens(tokens)
    model = model.to(device).eval()
    pos, base = np.nonzero(tokens[:, None] != np.arange(4))
    ref = torch.from_numpy(tokens.astype(np.int64)).to(device)
    reference = model(ref[None])[0, target].float().item()
    out = np.zeros((len(tokens), 4), np.float32)
    for i in range(0, len(pos), batch_size):
        where, to = pos[i : i + batch_size], base[i : i + batch_size]
        batch = ref.repeat(len(where), 1)
        batch[torch.arange(len(where)), torch.from_numpy(where).to(device)] = torch.from_numpy(to).to(device)
        out[where, to] = model(batch)[:, target].float().cpu().numpy() - reference
    return out


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


def top_kmers(model: torch.nn.Module, tokens, lengths, k: int = 6, n: int = 20, method: str = "ism",
              min_count: int = 3, target: int = 0, batch_size: int = 256, device: str = "cpu",
              progress: bool = False) -> pd.DataFrame:
    """The `n` k-mers whose occurrences in the sequences are most enriched in saliency, best first.

    An occurrence scores the mean saliency of its k positions; a k-mer's z compares the mean over its
    occurrences with all occurrences of all k-mers (z = (mean - overall) / (sd / sqrt(count))), so a motif
    seen often and salient each time ranks above a rare one; k-mers seen fewer than `min_count` times are
    left out. Columns kmer, count, saliency (mean), z. method "ism" is exact, "gradient" a one-pass estimate.
    """
    if method not in ("ism", "gradient"):
        raise ValueError(f"method must be 'ism' or 'gradient', got {method!r}.")
    tokens, lengths = np.asarray(tokens, dtype=np.uint8), np.asarray(lengths)
    sums, counts = np.zeros(4**k), np.zeros(4**k)
    every = []
    for row, length in tqdm(zip(tokens, lengths, strict=True), total=len(tokens), disable=not progress,
                            desc="attribution"):
        seq = row[:length]
        if method == "ism":
            scores = in_silico_mutagenesis(model, seq, device, batch_size, target)
        else:
            scores = gradient_x_input(model, seq, target, device)
        windows = np.lib.stride_tricks.sliding_window_view(seq, k)
        ok = (windows < 4).all(1)
        code = (windows[ok].astype(np.int64) * 4 ** np.arange(k - 1, -1, -1)).sum(1)
        value = np.convolve(saliency(scores, seq), np.ones(k) / k, mode="valid")[ok]
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
