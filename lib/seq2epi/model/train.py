"""The training loop: Adam, Noam or constant lr, BCE / MSE / Poisson loss, validation, checkpoints, exact
resume, DDP."""

import contextlib
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from seq2epi.data.datasets import collate_trim
from seq2epi.lab.io import atomic_path
from seq2epi.lab.metrics import binary_metrics, pearson, spearman
from seq2epi.lab.progress import bar, log
from seq2epi.model.precision import autocast, grad_scaler, resolve_precision, set_numerics
from seq2epi.model.transformer import ModelConfig, NucleicTransformer, is_padded

TIMING_COLUMNS = ["seconds", "windows_per_s"]  # wall time of the epoch (training + validation), throughput
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc", "val_acc", "val_sens", "val_spec", "val_mcc",
                   *TIMING_COLUMNS]  # a classification (bce) run's history
REGRESSION_COLUMNS = ["epoch", "train_loss", "val_loss", "val_spearman", "val_pearson", *TIMING_COLUMNS]
LOSSES = ("bce", "mse", "poisson")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    schedule: str = "noam"  # or "constant"
    lr: float = 1e-3  # the constant schedule's lr
    lr_scale: float = 0.1  # the Noam schedule's factor
    warmup: int = 200
    weight_decay: float = 0.0
    clip_grad: float = 1.0
    seed: int = 0
    num_workers: int = 0  # a resolved value: 02_train passes base.yaml's num_workers capped at the cores
    device: str = "cpu"  # a resolved value: 02_train turns base.yaml's "auto" into cuda or cpu
    rc_augment: bool = False  # read by train_job.setup, which builds the training WindowDataset (not by fit)
    precision: str = "auto"  # auto (bf16 on sm80+, fp16 + loss scaling on sm70/75, fp32 on CPU) | fp32 | bf16
    tf32: bool = False  # TF32 for fp32 matmuls and convolutions on CUDA (off: true fp32)
    deterministic: bool = False  # deterministic CUDA algorithms: exact resume on a GPU, some speed lost
    compile: bool = False  # torch.compile the model
    freeze_encoder_epochs: int = 0  # the first epochs train only the head (a pretrained encoder stays)
    distributed: bool = False  # DistributedDataParallel; also on when torchrun sets WORLD_SIZE > 1
    loss: str = "bce"  # bce (classes) | mse (on the raw output) | poisson (the output is a log-rate; counts)


MODEL_KEYS = ("ninp", "nhead", "nhid", "nlayers", "kmers", "dropout", "attention_dropout", "attention",
              "kmer_features", "conv_stride")
TRAIN_KEYS = ("epochs", "batch_size", "schedule", "lr", "lr_scale", "warmup", "weight_decay", "clip_grad",
              "rc_augment", "precision", "tf32", "deterministic", "compile", "freeze_encoder_epochs", "loss")


def configs_from(params: dict, device: str) -> tuple[ModelConfig, TrainConfig]:
    """02's model and training configurations from its parameters (parameters.notebook_values) on `device`:
    `train_seed` seeds training when set, else `seed`; `num_workers` is capped at this process's CPUs."""
    model = ModelConfig(**{key: params[key] for key in MODEL_KEYS} | {"kmers": tuple(params["kmers"])})
    seed = params["seed"] if params["train_seed"] is None else params["train_seed"]
    workers = min(params["num_workers"], len(os.sched_getaffinity(0)))
    return model, TrainConfig(**{key: params[key] for key in TRAIN_KEYS}, seed=seed, num_workers=workers,
                              device=device)


def _check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
    return loss


def history_columns(loss: str) -> list[str]:
    """The history's columns for a run with this loss: classification metrics for bce, correlations else."""
    return list(HISTORY_COLUMNS if _check_loss(loss) == "bce" else REGRESSION_COLUMNS)


def selection_column(loss: str) -> str:
    """The validation column best.pt is kept on (higher is better)."""
    return "val_auc" if _check_loss(loss) == "bce" else "val_spearman"


def best_epoch(history: pd.DataFrame, loss: str) -> pd.Series:
    """The history row of the best epoch on selection_column(loss); one sentence when no epoch has a
    finite value (a validation split of one class has no AUC)."""
    chosen = selection_column(loss)
    if not np.isfinite(history[chosen].to_numpy(float)).any():
        raise ValueError(f"no epoch has a finite {chosen}: the validation split cannot rank its windows (one "
                         "class, or constant targets), so no epoch can be chosen; check 01's split counts.")
    return history.loc[history[chosen].idxmax()]


def lr_at(step: int, cfg: TrainConfig, ninp: int) -> float:
    """Learning rate of optimizer step `step` (1-based)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}.")
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "noam":
        return cfg.lr_scale * ninp**-0.5 * min(step**-0.5, step * cfg.warmup**-1.5)
    raise ValueError(f"schedule must be 'noam' or 'constant', got {cfg.schedule!r}.")


def set_threads() -> int:
    """Torch threads = OMP_NUM_THREADS when set (torchrun sets 1 per rank), else the cores this process may
    run on; one inter-op thread; returns the thread count."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores = int(os.environ.get("OMP_NUM_THREADS") or cores)
    torch.set_num_threads(cores)
    with contextlib.suppress(RuntimeError):  # inter-op threads can be set only before they start
        torch.set_num_interop_threads(1)
    return cores


def make_optimizer(model: NucleicTransformer, cfg: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam (betas .9/.999, eps 1e-8), fused on CUDA."""
    return torch.optim.Adam(model.parameters(), lr=lr_at(1, cfg, model.config.ninp), betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=cfg.weight_decay, fused=device.type == "cuda")


def train_step(net: nn.Module, opt: torch.optim.Optimizer, tokens: torch.Tensor, labels: torch.Tensor,
               lr: float, cfg: TrainConfig, device: torch.device,
               scaler: torch.amp.GradScaler | None = None, frozen: tuple[nn.Parameter, ...] = ()
               ) -> torch.Tensor:
    """One optimizer step at learning rate `lr` on a host batch in cfg.precision; returns the device loss.

    float16 needs `scaler` (precision.grad_scaler); every sequence must be at least the largest k-mer long.
    `frozen` parameters lose their gradients before the step, so the optimizer leaves them as they are.
    """
    for group in opt.param_groups:
        group["lr"] = lr
    dtype = resolve_precision(cfg.precision, device)
    scaler = scaler or grad_scaler(device, None)
    padded = is_padded(tokens)  # on the host: no sync in the forward
    tokens, labels = tokens.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    with autocast(device, dtype):
        logits = net(tokens, padded=padded)
    loss = _loss(logits.float(), labels, kind=cfg.loss)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    for param in frozen:
        param.grad = None
    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad)
    scaler.step(opt)
    scaler.update()
    return loss


def _loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean", kind: str = "bce"
          ) -> torch.Tensor:
    """BCE with logits, MSE on the raw output, or Poisson NLL of the output as a log-rate; NaN labels (an
    unlabelled mark or gene) are left out."""
    labels = labels.reshape(logits.shape[0], -1).to(logits.dtype)
    known = ~torch.isnan(labels)
    losses = _LOSS_FUNCTIONS[_check_loss(kind)](logits, labels.nan_to_num()) * known
    return losses.sum() / known.sum().clamp(min=1) if reduction == "mean" else losses.sum()


_LOSS_FUNCTIONS = {
    "bce": lambda out, y: F.binary_cross_entropy_with_logits(out, y, reduction="none"),
    "mse": lambda out, y: F.mse_loss(out, y, reduction="none"),
    "poisson": lambda out, y: F.poisson_nll_loss(out, y, log_input=True, full=False, reduction="none"),
}


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and random from the worker's torch seed; one torch thread per worker."""
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(ds: Dataset, cfg: TrainConfig, device: torch.device, persistent: bool = False,
                **kw) -> DataLoader:
    """Batches trimmed of all-PAD columns; cfg's workers (one thread each), pinned memory on CUDA."""
    return DataLoader(ds, batch_size=cfg.batch_size, collate_fn=collate_trim, num_workers=cfg.num_workers,
                      worker_init_fn=_seed_worker, pin_memory=device.type == "cuda",
                      persistent_workers=persistent and cfg.num_workers > 0, **kw)


def _world(cfg: TrainConfig) -> tuple[int, int]:
    """(rank, world size); starts the process group (nccl on CUDA, gloo on CPU) when distributed."""
    if not (cfg.distributed or int(os.environ.get("WORLD_SIZE", "1")) > 1):
        return 0, 1
    if not dist.is_initialized():
        if cfg.device.startswith("cuda"):  # device_id: NCCL binds its communicator to this rank's GPU
            local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl", device_id=local)
        else:
            dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


@torch.no_grad()
def _evaluate(net: nn.Module, loader: DataLoader, device: torch.device,
              dtype: torch.dtype | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits), each float32 [n, n_targets], over a loader; autocast to dtype (None: fp32)."""
    net.eval()
    ys, logits = [], []
    for tokens, labels in loader:
        with autocast(device, dtype):
            out = net(tokens.to(device, non_blocking=True), padded=is_padded(tokens)).float()
        logits.append(out)
        ys.append(labels.reshape(out.shape[0], -1))
    return torch.cat(ys).float().numpy(), torch.cat(logits).cpu().numpy()


def _gather(index: np.ndarray, y: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's (labels, logits) in dataset order, DistributedSampler's padding duplicates dropped."""
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (index, y, logits))
    index, y, logits = (np.concatenate(a) for a in zip(*parts, strict=True))
    _, first = np.unique(index, return_index=True)
    return y[first], logits[first]


def _slowest_rank(seconds: list[float], device: torch.device, world: int) -> list[float]:
    """Each wall time as the slowest rank's, so that every rank records the same history."""
    times = torch.tensor(seconds, dtype=torch.float64, device=device)
    if world > 1:
        dist.all_reduce(times, op=dist.ReduceOp.MAX)
    return times.tolist()


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _val_metrics(y: np.ndarray, logits: np.ndarray, loss: str = "bce") -> dict:
    """The history's validation columns (val_loss and metrics), averaged over targets; NaN labels ignored.

    bce: metrics at threshold 0.5. mse and poisson: Spearman and Pearson of the prediction (the output, or
    exp of the log-rate for poisson).
    """
    y_t, logits_t = torch.from_numpy(y), torch.from_numpy(logits)
    count = int((~torch.isnan(y_t)).sum())
    val_loss = _loss(logits_t, y_t, reduction="sum", kind=loss).item() / max(count, 1)
    if loss != "bce":
        p = np.exp(logits) if loss == "poisson" else logits
        return {"val_loss": val_loss,
                "val_spearman": _nanmean([spearman(y[:, t], p[:, t]) for t in range(y.shape[1])]),
                "val_pearson": _nanmean([pearson(y[:, t], p[:, t]) for t in range(y.shape[1])])}
    p = torch.sigmoid(logits_t).numpy()
    rows = [binary_metrics(y[known, t], p[known, t])
            for t in range(y.shape[1]) if (known := ~np.isnan(y[:, t])).any()]
    metrics = {f"val_{k}": _nanmean([r[k] for r in rows]) for k in ("acc", "sens", "spec", "mcc")}
    return {"val_loss": val_loss, "val_auc": _nanmean([r["auroc"] for r in rows]), **metrics}


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> None:
    """torch.save, atomically: a run killed while saving keeps its previous checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def write_history(history: list[dict], path: str | os.PathLike, loss: str = "bce") -> None:
    """The per-epoch history as a TSV with the columns of `loss`, rewritten atomically (a reader never sees
    half a file)."""
    with atomic_path(path) as tmp:
        pd.DataFrame(history, columns=history_columns(loss)).to_csv(tmp, sep="\t", index=False)


def epoch_line(row: dict, epochs: int, seconds: float) -> str:
    """One epoch's line for the record and the terminal (AUC and MCC, or Spearman and Pearson)."""
    scores = (f"val Spearman {row['val_spearman']:.4f}  val Pearson {row['val_pearson']:.4f}"
              if "val_spearman" in row else f"val AUC {row['val_auc']:.4f}  val MCC {row['val_mcc']:.4f}")
    speed = f"  {row['windows_per_s']:.0f} windows/s" if "windows_per_s" in row else ""
    return (f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  train loss {row['train_loss']:.4f}  "
            f"val loss {row['val_loss']:.4f}  {scores}  {seconds:.0f} s{speed}")


def fit(model: NucleicTransformer, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig,
        checkpoint_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
        history_path: str | os.PathLike | None = None, spec: dict | None = None) -> pd.DataFrame:
    """Train `model` in place; one history row per epoch (history_columns(cfg.loss)); checkpoints in
    checkpoint_dir (last.pt, and best.pt at the best selection_column(cfg.loss)), each holding `spec`.

    With `progress`, each epoch shows a batch bar on the terminal and logs one line (seq2epi.lab.progress);
    with `history_path`, the history TSV is rewritten after every epoch, so it grows as training runs;
    `spec` (records.inference_spec) is stored in every checkpoint, so the model carries how it is used.
    Distributed (torchrun): every rank trains on its share, validation covers the whole validation set, every
    rank returns the same history and only rank 0 writes checkpoints and history and shows progress.
    """
    set_numerics(cfg.tf32, cfg.deterministic)
    rank, world = _world(cfg)
    device = torch.device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if cfg.num_workers:
        set_threads()
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    opt = make_optimizer(model, cfg, device)
    dtype = resolve_precision(cfg.precision, device)
    scaler = grad_scaler(device, dtype)
    step, start, history = 0, 0, []
    last = checkpoint_dir / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        step, start, history = ck["step"], ck["epoch"], ck["history"]
    select = selection_column(cfg.loss)
    best_score = max((r[select] for r in history if np.isfinite(r[select])), default=-np.inf)
    net = model
    if world > 1:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                      broadcast_buffers=False)
    if cfg.compile:
        net = torch.compile(net)
    train_sampler = DistributedSampler(train_ds, world, rank, seed=cfg.seed) if world > 1 else None
    val_sampler = DistributedSampler(val_ds, world, rank, shuffle=False) if world > 1 else None
    val_index = np.fromiter(val_sampler, np.int64) if val_sampler else np.arange(len(val_ds))
    # validation has no randomness, so its workers can persist; the training loader is rebuilt every epoch
    # because set_epoch (augmentation) must reach fresh workers and the shuffle must restart from its seed.
    val_loader = make_loader(val_ds, cfg, device, persistent=True, sampler=val_sampler)
    for epoch in range(start + 1, cfg.epochs + 1):  # epochs count from 1, as in the lab's tables
        began = time.perf_counter()
        seed = [cfg.seed, epoch] + ([rank] if world > 1 else [])
        torch.manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        if hasattr(train_ds, "set_epoch"):
            train_ds.set_epoch(epoch)
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(cfg.seed + epoch)
        loader = make_loader(train_ds, cfg, device, sampler=train_sampler, shuffle=train_sampler is None,
                         generator=gen)
        net.train()
        total, count = torch.zeros((), device=device), 0
        # tqdm calls iter() on a plain iterable itself, which would start (and waste) a second DataLoader
        # iterator and shift the shuffle generator; hand it the one iterator we use.
        batches = bar(iter(loader), f"epoch {epoch}/{cfg.epochs}", len(loader), progress and rank == 0)
        frozen = tuple(model.encoder_parameters()) if epoch <= cfg.freeze_encoder_epochs else ()
        for tokens, labels in batches:
            step += 1
            lr = lr_at(step, cfg, model.config.ninp)
            loss = train_step(net, opt, tokens, labels, lr, cfg, device, scaler, frozen)
            total += loss.detach() * len(tokens)
            count += len(tokens)
        sums = torch.stack([total, torch.tensor(float(count), device=device)])
        trained = time.perf_counter() - began
        y, logits = _evaluate(net, val_loader, device, dtype)
        if world > 1:
            dist.all_reduce(sums)
            y, logits = _gather(val_index, y, logits)
        m = _val_metrics(y, logits, cfg.loss)
        trained, seconds = _slowest_rank([trained, time.perf_counter() - began], device, world)
        history.append({"epoch": epoch, "train_loss": (sums[0] / sums[1].clamp(min=1)).item(), **m,
                        "seconds": seconds, "windows_per_s": sums[1].item() / trained})
        if rank == 0:
            ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                  "step": step, "epoch": epoch,
                  "history": history, "model_config": asdict(model.config), "train_config": asdict(cfg),
                  "spec": spec}
            save_checkpoint(ck, last)
            if m[select] > best_score:
                save_checkpoint(ck, checkpoint_dir / "best.pt")
            if history_path is not None:
                write_history(history, history_path, cfg.loss)
            if progress:
                log(epoch_line(history[-1], cfg.epochs, time.perf_counter() - began))
        best_score = max(best_score, m[select])
    if world > 1:
        dist.barrier()  # rank 0's checkpoints are on disk before any rank returns
    return pd.DataFrame(history, columns=history_columns(cfg.loss))


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[NucleicTransformer, dict]:
    """Rebuild the model from a checkpoint's stored config; returns (model in eval mode, checkpoint dict)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    ck = torch.load(path, map_location=device, weights_only=True)
    model = NucleicTransformer(ModelConfig(**ck["model_config"]))
    model.load_state_dict(ck["model"])
    return model.to(device).eval(), ck


def update_spec(path: str | os.PathLike, **fields) -> dict:
    """Set `fields` (e.g. thresholds, temperature) in a checkpoint's spec, rewriting it atomically; returns
    the spec."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    ck["spec"] = {**(ck.get("spec") or {}), **fields}
    save_checkpoint(ck, path)
    return ck["spec"]


def init_from(model: NucleicTransformer, path: str | os.PathLike) -> NucleicTransformer:
    """Copy a checkpoint's weights into `model` before training (fine-tuning); the architecture must match.

    A pretrained encoder (00_pretrain) gives everything but the head (classifier and k-mer spectrum), which
    stays new, so the number of targets and the k-mer features may differ.
    """
    source, ck = load_checkpoint(path)
    encoder_only = ck.get("kind") == "pretrained encoder"
    mine, theirs = asdict(model.config), asdict(source.config)
    free = {"dropout", "attention_dropout", "attention", "conv_stride"}  # no weights of their own
    free |= {"n_targets", "kmer_features"} if encoder_only else set()
    differ = {k: (theirs[k], mine[k]) for k in mine if k not in free and theirs[k] != mine[k]}
    if differ:
        raise ValueError(f"{path}: its model differs from this experiment's in {differ} (checkpoint, "
                         "experiment); starting from its weights needs the same architecture.")
    weights = source.state_dict()
    if encoder_only:
        weights = {k: v for k, v in weights.items() if not k.startswith(("classifier.", "spectrum."))}
    model.load_state_dict(weights, strict=not encoder_only)
    return model
