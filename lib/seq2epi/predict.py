"""Batched inference, reverse-complement averaging and genome tiling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view
from tqdm.auto import tqdm

from .precision import autocast, resolve_precision
from .sequence import PAD, Genome, N, reverse_complement


def predict(
    model: torch.nn.Module,
    tokens: np.ndarray,
    lengths: np.ndarray | None = None,
    batch_size: int | str = 256,
    device: str | torch.device = "cpu",
    rc_average: bool = False,
    progress: bool = False,
    precision: str = "auto",
) -> np.ndarray:
    """Sigmoid probabilities float32 [n] (one target) or [n, n_targets] for padded uint8 tokens [n, L].

    batch_size 0 or "auto" sizes batches from free GPU memory; precision as in precision.resolve_precision
    (auto: bfloat16 on sm80+ GPUs, float16 on sm70/75, fp32 on the CPU).
    """
    tokens = np.asarray(tokens, dtype=np.uint8)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be a 2-D [n, L] array, got shape {tokens.shape}.")
    n, width = tokens.shape
    lengths = np.full(n, width, np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (n,):
        raise ValueError(f"lengths must have shape ({n},) to match tokens, got {lengths.shape}.")
    kmax = max(model.config.kmers)
    if n and lengths.min() < kmax:  # checked here, on the host: the model's own check would sync every batch
        i = int(lengths.argmin())
        raise ValueError(f"Sequence {i} has {lengths[i]} bp, shorter than the largest k-mer ({kmax}).")
    device = torch.device(device)
    dtype = resolve_precision(precision, device)
    model = model.to(device).eval()
    batch_size = _resolve_batch_size(model, batch_size, width, device, precision)
    order = np.argsort(lengths, kind="stable")
    parts = []  # probabilities stay on the device until the end: no host sync per batch
    with torch.inference_mode():
        for i in tqdm(range(0, n, batch_size), disable=not progress, desc="predict"):
            idx = order[i : i + batch_size]
            lens = lengths[idx]
            batch = tokens[idx, : lens.max()]
            probs = _probs(model, batch, device, dtype)
            if rc_average:
                probs = (probs + _probs(model, reverse_complement(batch, lens), device, dtype)) / 2
            parts.append(probs)
    if not parts:
        return np.empty(0, np.float32)
    out = np.empty((n, parts[0].shape[1]), np.float32)
    out[order] = torch.cat(parts).cpu().numpy()
    return out[:, 0] if out.shape[1] == 1 else out


def auto_batch_size(
    model: torch.nn.Module,
    length: int,
    device: str | torch.device = "cpu",
    default: int = 256,
    precision: str = "auto",
    fraction: float = 0.8,
    limit: int = 8192,
) -> int:
    """Inference batch size for windows of `length` filling `fraction` of free GPU memory; `default` off CUDA.

    The model must be on the device. The memory of one window is measured on a probe batch with PAD, so the
    masked attention of padded batches is what is sized (this resets CUDA's peak-memory statistics); the
    estimate is then tried, and a probe or a try that runs out of memory is halved and retried.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return default
    model.eval()
    dtype = resolve_precision(precision, device)
    probe = 32
    while True:
        try:
            per_window = max(_peak_bytes(model, probe, length, device, dtype), 1) / probe
            break
        except torch.cuda.OutOfMemoryError:
            if probe == 1:
                raise
            probe //= 2
            torch.cuda.empty_cache()
    free = torch.cuda.mem_get_info(device)[0] + torch.cuda.memory_reserved(device) \
        - torch.cuda.memory_allocated(device)
    batch = int(min(limit, max(probe, fraction * free // per_window)))
    while batch > probe:
        try:
            _peak_bytes(model, batch, length, device, dtype)
            return batch
        except torch.cuda.OutOfMemoryError:
            batch //= 2
            torch.cuda.empty_cache()
    return probe


def _peak_bytes(model: torch.nn.Module, n: int, length: int, device: torch.device, dtype) -> int:
    """Peak CUDA memory of one inference forward on n windows of `length`, each ending in a PAD."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    tokens = torch.zeros(n, length, dtype=torch.long, device=device)
    tokens[:, -1] = PAD
    with torch.inference_mode(), autocast(device, dtype):
        model(tokens, padded=True)
    return torch.cuda.max_memory_allocated(device) - before


def _resolve_batch_size(model, batch_size: int | str, length: int, device: torch.device,
                        precision: str) -> int:
    if batch_size in (0, "auto"):
        return auto_batch_size(model.to(device), length, device, precision=precision)
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, 0 or 'auto', got {batch_size!r}.")
    return int(batch_size)


def _probs(model: torch.nn.Module, batch: np.ndarray, device: torch.device, dtype) -> torch.Tensor:
    padded = bool((batch == PAD).any())  # on the host: no sync in the forward
    x = torch.from_numpy(np.ascontiguousarray(batch))
    if device.type == "cuda":
        x = x.pin_memory()
    with autocast(device, dtype):
        return torch.sigmoid(model(x.to(device, non_blocking=True).long(), padded=padded).float())


def _regions(
    chrom_sizes: dict[str, int], window: int, regions: pd.DataFrame | None
) -> list[tuple[str, int, int]]:
    """Regions clipped to the chromosomes; chromosomes shorter than window are skipped with a warning."""
    if window < 1:
        raise ValueError(f"window must be a positive number of bases, got {window}.")
    if regions is None:
        short = [c for c, size in chrom_sizes.items() if size < window]
        if short:
            warnings.warn(
                f"{len(short)} chromosome(s) shorter than the {window} bp window are not tiled: {short}.",
                stacklevel=3,
            )
        return [(c, 0, int(size)) for c, size in chrom_sizes.items() if size >= window]
    out = []
    for i, (chrom, start, end) in enumerate(regions[["chrom", "start", "end"]].itertuples(index=False)):
        if chrom not in chrom_sizes:
            raise ValueError(
                f"region {i} ({chrom}:{start}-{end}) is on a chromosome not in the genome's "
                f"{list(chrom_sizes)}."
            )
        start, end = max(int(start), 0), min(int(end), int(chrom_sizes[chrom]))
        if end - start < window:
            raise ValueError(
                f"region {i} ({chrom}:{start}-{end}) is {max(end - start, 0)} bp after clipping to the "
                f"chromosome, shorter than the {window} bp window."
            )
        out.append((chrom, start, end))
    return out


def _empty(*columns: str) -> pd.DataFrame:
    dtypes = {"chrom": object, "start": np.int64, "end": np.int64, "score": np.float32}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in columns})


def _starts(start: int, end: int, window: int, stride: int) -> np.ndarray:
    return np.arange(start, end - window + 1, stride, dtype=np.int64)


def tile(
    chrom_sizes: dict[str, int], window: int, stride: int, regions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Windows chrom,start,end of width `window` every `stride` bp, fully inside each chromosome or region."""
    if stride < 1:
        raise ValueError(f"stride must be a positive number of bases, got {stride}.")
    parts = []
    for chrom, start, end in _regions(chrom_sizes, window, regions):
        starts = _starts(start, end, window, stride)
        parts.append(pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + window}))
    return pd.concat(parts, ignore_index=True) if parts else _empty("chrom", "start", "end")


def predict_genome(
    model: torch.nn.Module,
    genome: Genome,
    window: int,
    stride: int,
    regions: pd.DataFrame | None = None,
    batch_size: int | str = 256,
    device: str | torch.device = "cpu",
    rc_average: bool = False,
    max_n_fraction: float = 0.5,
    target: int = 0,
    progress: bool = True,
    precision: str = "auto",
) -> pd.DataFrame:
    """Track chrom,start,end,score: each window's probability on the `stride`-wide bin centred on the window.

    Each region is encoded once and windows are sliced from it in chunks, so memory stays bounded; windows
    with more than `max_n_fraction` N are left out of the track. With several targets, score is `target`.
    batch_size and precision are as in `predict`.
    """
    if stride < 1:
        raise ValueError(f"stride must be a positive number of bases, got {stride}.")
    sizes = genome.chrom_sizes
    todo = _regions(sizes, window, regions)
    device = torch.device(device)
    batch_size = _resolve_batch_size(model, batch_size, window, device, precision)
    chunk = 16 * batch_size
    parts = []
    bar = tqdm(
        total=sum(len(_starts(s, e, window, stride)) for _, s, e in todo),
        disable=not progress,
        desc="windows",
        unit="win",
    )
    for chrom, start, end in todo:
        tokens = genome.tokens(chrom, start, end)
        windows = sliding_window_view(tokens, window)[::stride]
        scores = np.full(len(windows), np.nan, np.float32)
        for i in range(0, len(windows), chunk):
            block = np.ascontiguousarray(windows[i : i + chunk])
            keep = np.flatnonzero((block == N).mean(axis=1) <= max_n_fraction)
            if keep.size:
                probs = predict(model, block[keep], None, batch_size, device, rc_average, precision=precision)
                scores[i + keep] = probs if probs.ndim == 1 else probs[:, target]
            bar.update(len(block))
        centres = _starts(start, end, window, stride) + window // 2
        bin_start = np.clip(centres - stride // 2, 0, sizes[chrom])
        bin_end = np.clip(centres - stride // 2 + stride, 0, sizes[chrom])
        ok = ~np.isnan(scores)
        parts.append(
            pd.DataFrame({"chrom": chrom, "start": bin_start[ok], "end": bin_end[ok], "score": scores[ok]})
        )
    bar.close()
    if not parts:
        return _empty("chrom", "start", "end", "score")
    order = {c: i for i, c in enumerate(sizes)}
    track = pd.concat(parts, ignore_index=True)
    return (
        track.assign(_o=track["chrom"].map(order))
        .sort_values(["_o", "start"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
