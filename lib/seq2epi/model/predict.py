"""Batched inference, reverse-complement averaging and the genome track."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view

from seq2epi.data import prepare, tiling
from seq2epi.data.sequence import PAD, Genome, N, reverse_complement
from seq2epi.lab.progress import bar, meter
from seq2epi.model import calibrate, train
from seq2epi.model.precision import autocast, resolve_precision
from seq2epi.model.transformer import ModelConfig, NucleicTransformer

if TYPE_CHECKING:
    from seq2epi.lab.records import Record


def predict(
    model: torch.nn.Module,
    tokens: np.ndarray,
    lengths: np.ndarray | None = None,
    batch_size: int | str = 256,
    device: str | torch.device = "cpu",
    rc_average: bool = False,
    progress: bool = False,
    precision: str = "auto",
    raw: bool = False,
) -> np.ndarray:
    """Sigmoid probabilities float32 [n] (one target) or [n, n_targets] for padded uint8 tokens [n, L].

    batch_size 0 or "auto" sizes batches from free GPU memory; precision as in precision.resolve_precision
    (auto: bfloat16 on sm80+ GPUs, float16 on sm70/75, fp32 on the CPU). `raw`: the model's outputs as they
    are (logits; a regression run's predictions), averaged over strands with rc_average.
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
        for i in bar(range(0, n, batch_size), "predict", enabled=progress):
            idx = order[i : i + batch_size]
            lens = lengths[idx]
            batch = tokens[idx, : lens.max()]
            probs = _probs(model, batch, device, dtype, raw)
            if rc_average:
                probs = (probs + _probs(model, reverse_complement(batch, lens), device, dtype, raw)) / 2
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


def _probs(model: torch.nn.Module, batch: np.ndarray, device: torch.device, dtype, raw: bool = False
           ) -> torch.Tensor:
    """Sigmoid probabilities of a host batch on the device (raw: the outputs themselves), float32."""
    padded = bool((batch == PAD).any())  # on the host: no sync in the forward
    x = torch.from_numpy(np.ascontiguousarray(batch))
    if device.type == "cuda":
        x = x.pin_memory()
    with autocast(device, dtype):
        out = model(x.to(device, non_blocking=True).long(), padded=padded).float()
    return out if raw else torch.sigmoid(out)


def check_device(device: str | torch.device) -> None:
    """A CUDA device asked for on a machine without one is one sentence, before any checkpoint is read."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but this machine has no CUDA GPU "
                         "(torch.cuda.is_available() is False): use --device cpu, or auto.")


def _few(names, n: int = 5) -> str:
    names = list(names)
    return ", ".join(map(str, names[:n])) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def load_model(path: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """train.load_checkpoint; a checkpoint of another version of the model gets one clear sentence."""
    check_device(device)
    try:
        return train.load_checkpoint(path, device)
    except (RuntimeError, TypeError, KeyError) as err:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(err, RuntimeError) or "model_config" not in ck:
            raise ValueError(f"checkpoint {path} holds no model config this version reads ({err}); it was "
                             "written by another version of seq2epi.") from None
        expected = set(NucleicTransformer(ModelConfig(**ck["model_config"])).state_dict())
        missing, unexpected = sorted(expected - set(ck["model"])), sorted(set(ck["model"]) - expected)
        detail = (f"it lacks {_few(missing) or 'nothing'} and has {_few(unexpected) or 'nothing'} this "
                  f"version does not know" if missing or unexpected else str(err).splitlines()[-1].strip())
        raise ValueError(f"checkpoint {path} is from another version of the model: {detail}; score it with "
                         "the seq2epi version that trained it, or retrain the record.") from None


@dataclass
class Predictor:
    """A record's model ready to predict, called as predictor(tokens [n, L], lengths [n]) -> probabilities
    [n, marks] (calibrated when the record has temperatures), with what its spec says about using it."""

    model: torch.nn.Module
    marks: list[str]
    window: int
    stride: int
    rc_average: bool
    thresholds: np.ndarray | None  # [marks], on the scale of the probabilities reported; None before 03
    temperature: np.ndarray | None = None  # [marks] when the record holds a calibration
    batch_size: int | str = 256
    device: str = "cpu"
    precision: str = "auto"
    record: str = ""  # the record's name
    target: int | None = None  # the model's output scored (select); None: all of them

    @classmethod
    def of_record(cls, record: Record, device: str = "cpu", batch_size: int | str = 256,
                  window: int | None = None) -> Predictor:
        """Record.predictor: the record's best checkpoint with its spec (see Record.spec)."""
        reason = record.unfinished()
        if reason:
            raise ValueError(f"record {record.path} is of a run that did not finish ({reason}); score with a "
                             "complete record.")
        if not record.checkpoint.is_file():
            raise FileNotFoundError(
                f"record {record.path} has no checkpoint {record.checkpoint.relative_to(record.path)} "
                f"(artifacts stay where the record ran: rerun `seq2epi run "
                f"{record.params.get('experiment', '<experiment>')}` or copy its artifacts/).")
        model, checkpoint = load_model(record.checkpoint, device)
        spec = record.spec(checkpoint)
        marks = [str(m) for m in spec["marks"]]
        if len(marks) != model.config.n_targets:
            raise ValueError(f"record {record.path}: its spec names {len(marks)} mark(s) {marks}, but its "
                             f"checkpoint predicts {model.config.n_targets} target(s).")
        thresholds, temperature = spec.get("thresholds"), spec.get("temperature")
        if thresholds is not None:
            thresholds = np.asarray(thresholds, dtype=float)
        if temperature is not None:
            temperature = np.asarray(temperature, dtype=float)
            if thresholds is not None:
                thresholds = calibrate.apply_temperature(thresholds[None], temperature)[0].astype(float)
        return cls(model, marks, _window(record, model, spec["window"] if window is None else window),
                   int(spec["predict_stride"]), bool(spec["rc_average"]), thresholds, temperature, batch_size,
                   device, spec.get("precision", "auto"), record.name)

    def select(self, mark: str) -> Predictor:
        """This predictor scoring `mark` alone (probabilities [n, 1]), e.g. the mark a population map draws;
        a one-target predictor is itself, whatever its target is called."""
        if len(self.marks) == 1:
            return self
        if mark not in self.marks:
            raise ValueError(f"record {self.record} predicts {self.marks}, not {mark!r}: set mark to one of "
                             "them.")
        t = self.marks.index(mark)
        thresholds, temperature = (None if v is None else v[t : t + 1] for v in (self.thresholds,
                                                                               self.temperature))
        return replace(self, marks=[mark], thresholds=thresholds, temperature=temperature, target=t)

    @property
    def min_length(self) -> int:
        """The shortest sequence the model takes: its largest k-mer."""
        return max(self.model.config.kmers)

    def call_thresholds(self) -> np.ndarray:
        """The thresholds calls are made at; a record 03_evaluate has not scored has none."""
        if self.thresholds is None:
            raise FileNotFoundError(f"record {self.record} has no validation-chosen thresholds: 03_evaluate "
                                    "did not run (no metrics.json), so its calls cannot be made.")
        return self.thresholds

    def __call__(self, tokens: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        probs = predict(self.model, tokens, lengths, self.batch_size, self.device, self.rc_average,
                        precision=self.precision)
        probs = np.asarray(probs).reshape(len(tokens), -1)
        probs = probs if self.target is None else probs[:, self.target : self.target + 1]
        return probs if self.temperature is None else calibrate.apply_temperature(probs, self.temperature)


def _window(record: Record, model: torch.nn.Module, window: int) -> int:
    """The window to predict with, refused when the model cannot take it."""
    shortest, longest = max(model.config.kmers), model.config.max_len
    if not shortest <= int(window) <= longest:
        raise ValueError(f"record {record.name}: a window of {window} bp is outside what its model takes "
                         f"({shortest} bp, its largest k-mer, to {longest} bp, its positional encoding).")
    return int(window)


class GenomeInputs(NamedTuple):
    """What 04_predict_genome reads: the genome, and the genes, peaks and varieties (VCF) beside it."""

    fasta: Path | None
    genes: Path | None
    peaks: Path | None
    vcf: Path | None


def genome_inputs(data: Path, input: str, mark: str, predict_fasta: str = "", genes_gff: str = "",
                  predict_peaks: str = "", vcf: str = "", artifacts: Path = Path("artifacts")
                  ) -> GenomeInputs:
    """The files named by the parameters (relative to `data`); what they leave unset comes, in genome and
    simulate modes, from the reference of the experiment's own data (01's artifacts/samples.tsv), and in
    simulate mode the demo genome's genes and VCF."""
    fasta, genes, peaks, vcf_path = (data / name if name else None
                                     for name in (predict_fasta, genes_gff, predict_peaks, vcf))
    if input in ("simulate", "genome") and fasta is None:
        sheet = prepare.read_sample_sheet(artifacts / "samples.tsv")
        rows = sheet[sheet["mark"] == mark]
        if rows.empty:
            raise ValueError(f"{artifacts / 'samples.tsv'} has no sample of mark {mark!r} (it has "
                             f"{sorted(set(sheet['mark']))}); set predict_fasta or the mark.")
        fasta, peaks = Path(prepare.reference_of(rows.iloc[0])), peaks or Path(rows["peaks"].iat[0])
        if input == "simulate":
            genes = genes or artifacts / "genome" / "genes.gff"
            vcf_path = vcf_path or artifacts / "genome" / "variants.vcf"
    return GenomeInputs(fasta, genes, peaks, vcf_path)


def _empty(*columns: str) -> pd.DataFrame:
    dtypes = {"chrom": object, "start": np.int64, "end": np.int64, "score": np.float32}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in columns})


def target_tracks(every: pd.DataFrame, names: list[str]) -> dict[str, pd.DataFrame]:
    """predict_genome(target=None)'s track as one track (chrom, start, end, score) per named target."""
    bins = every[["chrom", "start", "end"]]
    return {name: bins.assign(score=every[f"score_{t}"]).dropna(subset=["score"]).reset_index(drop=True)
            for t, name in enumerate(names)}


def predict_genome(
    predictor: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    genome: Genome,
    window: int,
    stride: int,
    regions: pd.DataFrame | None = None,
    max_n_fraction: float = 0.5,
    target: int | None = 0,
    progress: bool = True,
    chunk_bytes: int = 2**26,
) -> pd.DataFrame:
    """Track chrom,start,end,score: each window's probability on the `stride`-wide bin centred on the window.

    `predictor(tokens, lengths)` gives probabilities, e.g. functools.partial(predict, model, batch_size=...,
    device=..., rc_average=...). Each region is encoded once and windows are sliced from it in chunks of
    about `chunk_bytes`, so memory stays bounded; windows with more than `max_n_fraction` N are left out of
    the track. With several targets, score is `target`'s; `target=None` keeps them all as score_0, score_1, …
    """
    sizes = genome.chrom_sizes
    todo = tiling.clip_regions(sizes, window, regions)
    chunk = max(1, chunk_bytes // window)
    parts = []
    total = sum(tiling.n_windows(e - s, window, stride) for _, s, e in todo)
    shown = meter(total, "windows", enabled=progress, unit="win")
    for chrom, start, end in todo:
        tokens = genome.tokens(chrom, start, end)
        windows = sliding_window_view(tokens, window)[::stride]
        scored = []
        for i in range(0, len(windows), chunk):
            block = np.ascontiguousarray(windows[i : i + chunk])
            keep = np.flatnonzero((block == N).mean(axis=1) <= max_n_fraction)
            if keep.size:
                scored.append((i + keep, predictor(block[keep], None).reshape(keep.size, -1)))
            shown.update(len(block))
        scores = np.full((len(windows), scored[0][1].shape[1] if scored else 1), np.nan, np.float32)
        for rows, probs in scored:
            scores[rows] = probs
        columns = ({f"score_{t}": scores[:, t] for t in range(scores.shape[1])} if target is None
                   else {"score": scores[:, target]})
        bins = tiling.centred_bins(chrom, tiling.window_starts(start, end, window, stride), window, stride,
                                   sizes[chrom])
        parts.append(bins.assign(**columns)[~np.isnan(scores).all(axis=1)])
    shown.close()
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
