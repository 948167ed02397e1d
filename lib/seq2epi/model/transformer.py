"""The Nucleic Transformer: k-mer convolutions, a post-norm encoder with Mish, GeM pooling, a linear head."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seq2epi.data.sequence import N_TOKENS, PAD


@dataclass
class ModelConfig:
    ninp: int = 512
    nhead: int = 8
    nhid: int = 2048
    nlayers: int = 6
    kmers: tuple[int, ...] = (13,)
    dropout: float = 0.1
    attention_dropout: float | None = None  # attention weights (None: dropout)
    n_targets: int = 1
    attention: str = "fast"  # "fast": F.scaled_dot_product_attention; "reference": explicit float32 softmax
    kmer_features: int = 0  # k > 0: the 1..k-mer spectrum (the k-mer baseline's features) joins the pool
    conv_stride: int = 1  # the k-mer convolutions' stride: s shortens what attention sees s-fold
    max_len: int = 5000


# ---- positions and k-mers ----

class PositionalEncoding(nn.Module):
    """Sinusoidal positions added to the embeddings, then dropout."""

    def __init__(self, ninp: int, dropout: float, max_len: int):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, ninp, 2).float() * (-math.log(10000.0) / ninp))
        pe = torch.zeros(max_len, ninp)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.size(1)])


class KmerAggregate(nn.Module):
    """One Conv1d per k (every `stride`-th window); outputs concatenated along the sequence axis, then
    LayerNorm."""

    def __init__(self, kmers: tuple[int, ...], ninp: int, stride: int = 1):
        super().__init__()
        if stride < 1:
            raise ValueError(f"conv_stride must be >= 1, got {stride}.")
        self.kmers, self.stride = tuple(kmers), stride
        self.convs = nn.ModuleList(nn.Conv1d(ninp, ninp, k, stride=stride, padding=0) for k in self.kmers)
        self.norm = nn.LayerNorm(ninp)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, L, E], pad [B, L] bool -> ([B, L', E], valid [B, L']); valid: no PAD in the window.

        L' sums (L - k) // stride + 1 over the k-mers; window i of a k starts at token i * stride.
        """
        x = x.transpose(1, 2)
        out = torch.cat([conv(x) for conv in self.convs], dim=2).transpose(1, 2)
        # PAD count of every k-window from a cumulative sum: no length-specialising pooling, so one compiled
        # graph serves every batch width
        count = F.pad(pad.int().cumsum(1), (1, 0))
        ends = count.size(1)
        s = self.stride
        valid = torch.cat([count[:, k::s] == count[:, : ends - k : s] for k in self.kmers], dim=1)
        return self.norm(out), valid


# ---- attention and encoder ----

class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names and shapes."""

    def __init__(self, ninp: int, nhead: int, dropout: float, impl: str = "fast"):
        super().__init__()
        if ninp % nhead:
            raise ValueError(f"ninp ({ninp}) must be divisible by nhead ({nhead}).")
        if impl not in ("fast", "reference"):
            raise ValueError(f"attention must be 'fast' or 'reference', got {impl!r}.")
        self.nhead, self.dropout, self.impl = nhead, dropout, impl
        self.in_proj_weight = nn.Parameter(torch.empty(3 * ninp, ninp))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * ninp))
        self.out_proj = nn.Linear(ninp, ninp)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None, need_weights: bool = False):
        """x [B, L, E], valid [B, L] keys (None: all) -> (out [B, L, E], mean weights [B, L, L] or None)."""
        B, L, E = x.shape
        q, k, v = (t.view(B, L, self.nhead, -1).transpose(1, 2)
                   for t in F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1))
        mask = None if valid is None else valid[:, None, None, :]
        p = self.dropout if self.training else 0.0
        weights = None
        if self.impl == "fast" and not need_weights:  # no mask lets SDPA pick its flash kernel
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, attn = reference_attention(q, k, v, mask, p)
            out = out.to(x.dtype)
            weights = attn.mean(dim=1) if need_weights else None
        return self.out_proj(out.transpose(1, 2).reshape(B, L, E)), weights


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                        dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The lab's computation in float32 whatever the autocast: (softmax(q k^T / sqrt(d)) v, the weights)."""
    with torch.autocast(q.device.type, enabled=False):  # matmul is on autocast's lower-precision list
        scores = q.float() @ k.float().transpose(-2, -1) / math.sqrt(q.size(-1))
        attn = (scores if mask is None else scores.masked_fill(~mask, float("-inf"))).softmax(dim=-1)
        return F.dropout(attn, dropout) @ v.float(), attn


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer with a Mish feed-forward block."""

    def __init__(self, ninp: int, nhead: int, nhid: int, dropout: float, attention: str,
                 attention_dropout: float | None = None):
        super().__init__()
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.self_attn = SelfAttention(ninp, nhead, attention_dropout, attention)
        self.linear1 = nn.Linear(ninp, nhid)
        self.linear2 = nn.Linear(nhid, ninp)
        self.activation = nn.Mish()
        self.norm1, self.norm2 = nn.LayerNorm(ninp), nn.LayerNorm(ninp)
        self.dropout = nn.Dropout(dropout)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None, need_weights: bool = False):
        attn, weights = self.self_attn(x, valid, need_weights)
        x = self.norm1(x + self.dropout1(attn))
        x = self.norm2(x + self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x))))))
        return x, weights


# ---- pooling, k-mer spectrum and model ----

class GeM(nn.Module):
    """Generalised-mean pooling over valid positions, with a learnable exponent p."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, L, E], valid [B, L] -> [B, E]."""
        w = valid.unsqueeze(-1).to(x.dtype)
        mean = (x.clamp(min=self.eps).pow(self.p) * w).sum(1) / w.sum(1)
        return mean.pow(1.0 / self.p)


class KmerSpectrum(nn.Module):
    """Frequencies of every 1..k_max-mer of ACGT per sequence (k-mers with N or PAD not counted), as
    baselines.kmer_spectrum computes them, standardised by batch statistics (running ones in eval)."""

    def __init__(self, k_max: int):
        super().__init__()
        self.k_max = k_max
        self.size = sum(4**k for k in range(1, k_max + 1))
        self.norm = nn.BatchNorm1d(self.size, affine=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] -> [B, size]."""
        valid = tokens < 4
        base = tokens.masked_fill(~valid, 0)
        blocks = []
        for k in range(1, self.k_max + 1):
            width = tokens.size(1) - k + 1
            code = torch.zeros_like(base[:, :width])
            ok = torch.ones_like(valid[:, :width])
            for j in range(k):
                code = code * 4 + base[:, j : j + width]
                ok = ok & valid[:, j : j + width]
            counts = torch.zeros(tokens.size(0), 4**k, device=tokens.device).scatter_add_(1, code, ok.float())
            blocks.append(counts / counts.sum(1, keepdim=True).clamp(min=1))
        return self.norm(torch.cat(blocks, dim=1))


@torch.compiler.disable  # a host sync: only for direct calls, which do not say whether the batch is padded
def _shortest(pad: torch.Tensor) -> int:
    """Fewest non-PAD tokens in a row."""
    return int((~pad).sum(1).min())


def is_padded(tokens: torch.Tensor) -> bool:
    """Whether a batch holds any PAD: computed where the tokens are, so call it on the host copy."""
    return bool((tokens == PAD).any())


class NucleicTransformer(nn.Module):
    """Tokens [B, L] (PAD-padded at the end) -> logits [B, n_targets]."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.Embedding(N_TOKENS, config.ninp)
        self.pos_encoder = PositionalEncoding(config.ninp, config.dropout, config.max_len)
        self.k_mer_aggregate = KmerAggregate(config.kmers, config.ninp, config.conv_stride)
        self.layers = nn.ModuleList(
            EncoderLayer(config.ninp, config.nhead, config.nhid, config.dropout, config.attention,
                         config.attention_dropout)
            for _ in range(config.nlayers)
        )
        self.pool = GeM()
        self.spectrum = KmerSpectrum(config.kmer_features) if config.kmer_features else None
        features = config.ninp + (self.spectrum.size if self.spectrum is not None else 0)
        self.classifier = nn.Linear(features, config.n_targets)

    def encoder_parameters(self):
        """What pretraining learns: the embedding, k-mer convolutions and encoder layers (not the head)."""
        for part in (self.encoder, self.k_mer_aggregate, self.layers):
            yield from part.parameters()

    def encode(self, tokens: torch.Tensor, return_attention: bool = False, padded: bool | None = None):
        """Per-position outputs [B, L', E] (every conv_stride-th k-mer window of every k, concatenated;
        zero where a window touches PAD) and valid [B, L']; with return_attention also weights
        [B, nlayers, L', L'].

        `padded`: whether the batch holds PAD (`is_padded` of the host copy). Callers that know it (train,
        predict) pass it and have checked every sequence against the largest k-mer; None (a direct call)
        checks here, at the cost of a host sync.
        """
        kmax = max(self.config.kmers)
        if tokens.dim() != 2 or not kmax <= tokens.size(1) <= self.config.max_len:
            raise ValueError(f"Expected tokens [batch, length] with {kmax} <= length <= "
                             f"{self.config.max_len}, got shape {tuple(tokens.shape)}.")
        pad = tokens == PAD
        if padded is None:
            shortest = _shortest(pad)
            if shortest < kmax:
                raise ValueError(
                    f"A sequence has {shortest} non-PAD tokens, shorter than the largest k-mer ({kmax})."
                )
            padded = shortest < tokens.size(1)
        x = self.pos_encoder(self.encoder(tokens))
        x, valid = self.k_mer_aggregate(x, pad)
        if padded:  # else every position is valid and masks are skipped
            x = x * valid.unsqueeze(-1)
        weights = []
        for layer in self.layers:
            x, w = layer(x, valid if padded else None, return_attention)
            weights.append(w)
        if padded:
            x = x * valid.unsqueeze(-1)
        return (x, valid, torch.stack(weights, dim=1)) if return_attention else (x, valid)

    def forward(self, tokens: torch.Tensor, return_attention: bool = False, padded: bool | None = None):
        """Logits [B, n_targets]; with return_attention also weights [B, nlayers, L', L'] (head-averaged);
        `padded` as in `encode`."""
        x, valid, *weights = self.encode(tokens, return_attention, padded)
        pooled = self.pool(x, valid)
        if self.spectrum is not None:
            pooled = torch.cat([pooled, self.spectrum(tokens)], dim=1)
        logits = self.classifier(pooled)
        return (logits, weights[0]) if return_attention else logits
