"""The training loop: Adam, Noam or constant lr, BCE loss, validation each epoch, checkpoint, exact resume."""

import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from seq2epi.datasets import collate_trim
from seq2epi.metrics import binary_metrics
from seq2epi.model import ModelConfig, NucleicTransformer

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc", "val_acc", "val_sens", "val_spec", "val_mcc"]


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    schedule: str = "noam"  # or "constant"
    lr: float = 1e-3  # the constant schedule's lr
    lr_scale: float = 0.1  # the Noam schedule's factor
    warmup: int = 4000
    weight_decay: float = 0.0
    clip_grad: float = 1.0
    seed: int = 0
    num_workers: int = 0
    device: str = "cpu"
    rc_augment: bool = False  # read by whoever builds the training WindowDataset
    amp: bool = False  # bfloat16 autocast


def lr_at(step: int, cfg: TrainConfig, ninp: int) -> float:
    """Learning rate of optimizer step `step` (1-based)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}.")
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "noam":
        return cfg.lr_scale * ninp**-0.5 * min(step**-0.5, step * cfg.warmup**-1.5)
    raise ValueError(f"schedule must be 'noam' or 'constant', got {cfg.schedule!r}.")


def _loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """BCE with logits; NaN labels (an unlabelled mark) are left out."""
    labels = labels.reshape(logits.shape[0], -1).to(logits.dtype)
    known = ~torch.isnan(labels)
    losses = F.binary_cross_entropy_with_logits(logits, labels.nan_to_num(), reduction="none") * known
    return losses.sum() / known.sum().clamp(min=1) if reduction == "mean" else losses.sum()


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@torch.no_grad()
def _evaluate(model: NucleicTransformer, loader: DataLoader,
              device: torch.device) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean loss, labels [n, n_targets], probabilities [n, n_targets]) over a loader."""
    model.eval()
    total, count, ys, ps = 0.0, 0, [], []
    for tokens, labels in loader:
        logits = model(tokens.to(device)).float()
        labels = labels.to(device).reshape(logits.shape[0], -1)
        total += _loss(logits, labels, reduction="sum").item()
        count += int((~torch.isnan(labels)).sum())
        ys.append(labels.cpu().numpy())
        ps.append(torch.sigmoid(logits).cpu().numpy())
    return total / max(count, 1), np.concatenate(ys), np.concatenate(ps)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _val_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """Metrics at threshold 0.5, averaged over targets; NaN labels ignored."""
    rows = [binary_metrics(y[known, t], p[known, t])
            for t in range(y.shape[1]) if (known := ~np.isnan(y[:, t])).any()]
    return {k: _nanmean([r[k] for r in rows]) for k in ("auroc", "acc", "sens", "spec", "mcc")}


def _save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(model: NucleicTransformer, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig,
        checkpoint_dir: str | os.PathLike, resume: bool = False, progress: bool = True) -> pd.DataFrame:
    """Train `model` in place; one history row per epoch; checkpoints in checkpoint_dir (last.pt, best.pt)."""
    device = torch.device(cfg.device)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr_at(1, cfg, model.config.ninp), betas=(0.9, 0.999),
                           eps=1e-8, weight_decay=cfg.weight_decay)
    step, start, history = 0, 0, []
    last = checkpoint_dir / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, start, history = ck["step"], ck["epoch"], ck["history"]
    best_auc = max((r["val_auc"] for r in history if np.isfinite(r["val_auc"])), default=-np.inf)
    loader_kw = dict(batch_size=cfg.batch_size, collate_fn=collate_trim, num_workers=cfg.num_workers,
                     worker_init_fn=_seed_worker, pin_memory=device.type == "cuda")
    val_loader = DataLoader(val_ds, shuffle=False, **loader_kw)
    for epoch in range(start + 1, cfg.epochs + 1):  # epochs count from 1, as in the lab's tables
        torch.manual_seed(int(np.random.SeedSequence([cfg.seed, epoch]).generate_state(1)[0]))
        if hasattr(train_ds, "set_epoch"):
            train_ds.set_epoch(epoch)
        gen = torch.Generator().manual_seed(cfg.seed + epoch)
        loader = DataLoader(train_ds, shuffle=True, generator=gen, **loader_kw)
        model.train()
        total, count = torch.zeros((), device=device), 0
        # tqdm.auto calls iter() on a plain iterable itself, which would start (and waste) a second
        # DataLoader iterator and shift the shuffle generator; hand it the one iterator we use.
        bar = tqdm(iter(loader), total=len(loader), desc=f"epoch {epoch}/{cfg.epochs}",
                   disable=not progress, leave=False)
        for tokens, labels in bar:
            step += 1
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg, model.config.ninp)
            tokens, labels = tokens.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                logits = model(tokens)
            loss = _loss(logits.float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            total += loss.detach() * len(tokens)
            count += len(tokens)
        val_loss, y, p = _evaluate(model, val_loader, device)
        m = _val_metrics(y, p)
        history.append({"epoch": epoch, "train_loss": total.item() / max(count, 1), "val_loss": val_loss,
                        "val_auc": m["auroc"], "val_acc": m["acc"], "val_sens": m["sens"],
                        "val_spec": m["spec"], "val_mcc": m["mcc"]})
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "epoch": epoch,
              "history": history, "model_config": asdict(model.config), "train_config": asdict(cfg)}
        _save(ck, last)
        if m["auroc"] > best_auc:
            best_auc = m["auroc"]
            _save(ck, checkpoint_dir / "best.pt")
    return pd.DataFrame(history, columns=HISTORY_COLUMNS)


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[NucleicTransformer, dict]:
    """Rebuild the model from a checkpoint's stored config; returns (model in eval mode, checkpoint dict)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    ck = torch.load(path, map_location=device, weights_only=True)
    model = NucleicTransformer(ModelConfig(**ck["model_config"]))
    model.load_state_dict(ck["model"])
    return model.to(device).eval(), ck
