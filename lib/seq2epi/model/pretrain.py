"""Masked-span pretraining of the Nucleic Transformer's encoder on unlabelled plant DNA.

A corpus of windows is drawn once, from FASTA files (N-rich windows, excluded regions and held-out chromosomes
left out; soft-masked repeats kept and down-weighted in the loss) or cut from training sequences
(self-pretraining). Each epoch masks fresh spans of bases with N; the encoder's output at k-mer position j
predicts the base at the centre of that k-mer (j + k // 2) wherever that base was masked. The classifier's
embedding, k-mer convolutions and encoder layers are the ones pretrained; `train.init_from` then starts a
classifier from them with a new head.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from seq2epi.data.datasets import random_split, read_labeled_csv
from seq2epi.data.intervals import held_out_region
from seq2epi.data.sequence import PAD, N, encode, iter_fasta
from seq2epi.lab.io import atomic_path
from seq2epi.lab.progress import bar, log
from seq2epi.model.transformer import NucleicTransformer, is_padded

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_acc"]
KIND = "pretrained encoder"


@dataclass
class PretrainConfig:
    epochs: int
    batch_size: int
    lr_scale: float
    warmup: int
    mask_fraction: float  # of each window's bases, masked in spans
    mask_span: int  # bases per masked span
    repeat_weight: float  # loss weight of soft-masked (lower-case) bases
    seed: int
    device: str = "cpu"


@dataclass
class Corpus:
    """Windows for pretraining: tokens [n, L] (PAD-padded), lengths [n], soft [n, L] (soft-masked bases)."""

    tokens: np.ndarray
    lengths: np.ndarray
    soft: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, rows: np.ndarray) -> Corpus:
        return Corpus(self.tokens[rows], self.lengths[rows], self.soft[rows])


# ---- the corpus ----

def _blocked(exclude: pd.DataFrame | None, chrom: str, size: int, margin: int) -> np.ndarray:
    """Bool [size]: bases inside an excluded interval of `chrom`, widened by `margin` on each side."""
    blocked = np.zeros(size, bool)
    if exclude is not None:
        for start, end in exclude.loc[exclude["chrom"] == chrom, ["start", "end"]].itertuples(index=False):
            blocked[max(0, int(start) - margin) : min(size, int(end) + margin)] = True
    return blocked


def sample_corpus(fastas: list[str | os.PathLike], window: int, n: int, seed: int,
                  exclude: pd.DataFrame | None = None, margin: int = 0, skip_chroms: tuple[str, ...] = (),
                  max_n_fraction: float = 0.1) -> Corpus:
    """`n` windows drawn uniformly over the bases of the FASTA files (plain, gzip or bgzip).

    Left out: chromosomes named in `skip_chroms` (held out of the classifier's training), windows touching an
    `exclude` interval (chrom, start, end) or within `margin` bp of one, and windows over `max_n_fraction` N.
    Files are read one chromosome at a time, so memory is bounded by the largest chromosome.
    """
    if window < 1 or n < 1:
        raise ValueError(f"need window >= 1 and n >= 1, got window={window}, n={n}.")
    sizes = [(str(path), name, len(seq)) for path in fastas for name, seq in iter_fasta(path)
             if name not in skip_chroms and len(seq) >= window]
    if not sizes:
        raise ValueError(f"no chromosome of {[str(f) for f in fastas]} is at least {window} bp once "
                         f"{list(skip_chroms)} are held out.")
    rng = np.random.default_rng(seed)
    weights = np.array([size - window + 1 for _, _, size in sizes], float)
    draws = rng.multinomial(4 * n, weights / weights.sum())  # 4x: room for the windows rejected below
    parts = []
    for path in dict.fromkeys(p for p, _, _ in sizes):
        for name, seq in iter_fasta(path):
            k = next((i for i, (p, c, _) in enumerate(sizes) if p == path and c == name), None)
            if k is None or not draws[k]:
                continue
            tokens, soft = encode(seq), np.frombuffer(seq.encode("ascii", "replace"), np.uint8) >= ord("a")
            starts = np.sort(rng.integers(0, len(seq) - window + 1, draws[k]))
            rows = starts[:, None] + np.arange(window)
            bad = _blocked(exclude, name, len(seq), margin)[rows].any(1)
            bad |= (tokens[rows] == N).mean(1) > max_n_fraction
            keep = rows[~bad]
            parts.append((tokens[keep], soft[keep], rng.random(len(keep))))
    tokens, soft, order = (np.concatenate(a) for a in zip(*parts, strict=True))
    if len(tokens) < n:
        raise ValueError(f"only {len(tokens)} of {n} windows of {window} bp passed the N and exclusion "
                         f"filters in {[str(f) for f in fastas]}; ask for fewer windows.")
    chosen = np.sort(np.argsort(order)[:n])
    return Corpus(tokens[chosen], np.full(n, window, np.int32), soft[chosen])


def cut_corpus(seqs: list[str], window: int, seed: int) -> Corpus:
    """One window per sequence at a seeded offset (self-pretraining on training sequences); shorter
    sequences are kept whole and PAD-padded."""
    rng = np.random.default_rng(seed)
    tokens = np.full((len(seqs), window), PAD, np.uint8)
    soft = np.zeros((len(seqs), window), bool)
    lengths = np.zeros(len(seqs), np.int32)
    for i, seq in enumerate(seqs):
        at = int(rng.integers(0, max(len(seq) - window, 0) + 1))
        piece = seq[at : at + window]
        tokens[i, : len(piece)], lengths[i] = encode(piece), len(piece)
        soft[i, : len(piece)] = np.frombuffer(piece.encode("ascii", "replace"), np.uint8) >= ord("a")
    return Corpus(tokens, lengths, soft)


def corpus_from(fastas: list[Path], csvs: list[Path], window: int, n: int, seed: int,
                exclude: pd.DataFrame | None = None, margin: int = 0, held_out: list[str] = (),
                max_n_fraction: float = 0.1, test_files: list[Path] = ()) -> Corpus:
    """The corpus of an experiment: `n` windows of the FASTA files (sample_corpus) and one window of each
    sequence of the CSV files (cut_corpus); `held_out` chromosomes or regions (chrom:start-end), e.g. the
    classifier's validation and test regions, are left out of the FASTA windows. A CSV among the
    experiment's `test_files` is refused: pretraining never sees the test split."""
    tests = {Path(f).resolve() for f in test_files}
    for path in csvs:
        if Path(path).resolve() in tests:
            raise ValueError(f"pretrain_csv names {path}, the experiment's test file; pretrain on training "
                             f"sequences only.")
    regions = [held_out_region(r) for r in held_out]
    whole = tuple(c for c, s, e in regions if s == 0 and e == np.inf)
    parts = [exclude] if exclude is not None else []
    parts.append(pd.DataFrame([(c, s, min(e, 2**62)) for c, s, e in regions if c not in whole],
                              columns=["chrom", "start", "end"]))
    exclude = pd.concat(parts, ignore_index=True)
    corpora = []
    if fastas:
        corpora.append(sample_corpus(fastas, window, n, seed, exclude, margin, whole, max_n_fraction))
    for path in csvs:
        corpora.append(cut_corpus(read_labeled_csv(path)["sequence"].tolist(), window, seed))
    if not corpora:
        raise ValueError("pretraining needs sequence: give pretrain_fasta or pretrain_csv.")
    return Corpus(*(np.concatenate(a) for a in zip(*((c.tokens, c.lengths, c.soft) for c in corpora),
                                                     strict=True)))


def split_corpus(corpus: Corpus, val_fraction: float, seed: int) -> tuple[Corpus, Corpus]:
    """(train, validation) windows, a seeded `val_fraction` of them for validation."""
    val = random_split(len(corpus), val_fraction, seed)
    return corpus.subset(np.flatnonzero(~val)), corpus.subset(np.flatnonzero(val))


# ---- masking and the objective ----

def mask_spans(lengths: np.ndarray, width: int, fraction: float, span: int,
               rng: np.random.Generator) -> np.ndarray:
    """Bool [n, width]: spans of `span` bases starting at random positions, about `fraction` of each row's
    bases in all (never past its length)."""
    if not 0 < fraction < 1 or span < 1:
        raise ValueError(f"need 0 < mask_fraction < 1 and mask_span >= 1, got {fraction} and {span}.")
    lengths = np.asarray(lengths)
    n_spans = np.maximum(1, np.round(fraction * lengths / span)).astype(int)
    mask = np.zeros((len(lengths), width), bool)
    for i, (length, count) in enumerate(zip(lengths, n_spans, strict=True)):
        starts = rng.integers(0, max(length - span, 0) + 1, count)
        mask[i, (starts[:, None] + np.arange(span)).ravel().clip(max=length - 1)] = True
    return mask


def centres(kmers: tuple[int, ...], width: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """For each encoder position (every stride-th k-mer window of every k, concatenated): the base at its
    k-mer's centre, and where its k-mer ends."""
    starts = [np.arange(0, width - k + 1, stride) for k in kmers]
    return (np.concatenate([s + k // 2 for s, k in zip(starts, kmers, strict=True)]),
            np.concatenate([s + k for s, k in zip(starts, kmers, strict=True)]))


class MaskedLM(nn.Module):
    """The classifier's encoder with a head predicting A, C, G, T at every encoder position."""

    def __init__(self, model: NucleicTransformer):
        super().__init__()
        self.model = model
        self.head = nn.Linear(model.config.ninp, 4)

    def forward(self, tokens: torch.Tensor, padded: bool | None = None) -> torch.Tensor:
        """Logits [B, L', 4] for tokens [B, L]; `padded` as in NucleicTransformer.encode."""
        x, _ = self.model.encode(tokens, padded=padded)
        return self.head(x)


def masked_batch(corpus: Corpus, rows: np.ndarray, cfg: PretrainConfig, rng: np.random.Generator,
                 kmers: tuple[int, ...], stride: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(masked tokens [B, L], targets [B, L'] (-1: not scored), loss weights [B, L']) for corpus rows;
    `stride`: the model's conv_stride."""
    tokens, lengths, soft = corpus.tokens[rows], corpus.lengths[rows], corpus.soft[rows]
    width = int(lengths.max())
    tokens, soft = tokens[:, :width], soft[:, :width]
    mask = mask_spans(lengths, width, cfg.mask_fraction, cfg.mask_span, rng)
    at, end = centres(kmers, width, stride)
    target = tokens[:, at].astype(np.int64)
    scored = mask[:, at] & (target < N) & (end <= lengths[:, None])
    weight = np.where(soft[:, at], cfg.repeat_weight, 1.0) * scored
    masked = np.where(mask, N, tokens).astype(np.int64)
    return (torch.from_numpy(masked), torch.from_numpy(np.where(scored, target, -1)),
            torch.from_numpy(weight.astype(np.float32)))


def _loss_and_hits(lm: MaskedLM, masked, target, weight, device) -> tuple[torch.Tensor, float, int]:
    """(weighted mean loss, correct predictions, scored positions) of one batch."""
    logits = lm(masked.to(device), padded=is_padded(masked))
    target, weight = target.to(device), weight.to(device)
    losses = F.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    loss = (losses * weight).sum() / weight.sum().clamp(min=1e-8)
    scored = target >= 0
    hits = (logits.argmax(-1) == target) & scored
    return loss, int(hits.sum()), int(scored.sum())


def pretrain(model: NucleicTransformer, train: Corpus, val: Corpus, cfg: PretrainConfig,
             checkpoint_dir: str | os.PathLike, resume: bool = False,
             history_path: str | os.PathLike | None = None, progress: bool = True) -> pd.DataFrame:
    """Pretrain `model`'s encoder in place; one history row per epoch (masked-token loss and accuracy),
    logged as a line and rewritten to `history_path` (TSV) as it grows; a batch bar on the terminal; last.pt
    and best.pt (lowest validation loss) in checkpoint_dir, loadable by train.load_checkpoint.

    Batches and masks depend only on (seed, epoch, batch), so a resumed run ends as an uninterrupted one.
    """
    from seq2epi.model.train import (  # the classifier's schedule and saving
        TrainConfig,
        lr_at,
        save_checkpoint,
    )

    device = torch.device(cfg.device)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    lm = MaskedLM(model).to(device)
    opt = torch.optim.Adam(lm.parameters(), lr=1.0, betas=(0.9, 0.999), eps=1e-8)
    schedule = TrainConfig(schedule="noam", lr_scale=cfg.lr_scale, warmup=cfg.warmup)
    step, start, history = 0, 0, []
    last = checkpoint_dir / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        lm.head.load_state_dict(ck["head"])
        opt.load_state_dict(ck["optimizer"])
        step, start, history = ck["step"], ck["epoch"], ck["history"]
    best = min((r["val_loss"] for r in history), default=np.inf)
    kmers = model.config.kmers
    shortest = int(min(train.lengths.min(), val.lengths.min()))
    if shortest < max(kmers):
        raise ValueError(f"a pretraining window holds {shortest} bases, fewer than the largest k-mer "
                         f"({max(kmers)}); leave shorter sequences out or use smaller kmers.")
    for epoch in range(start + 1, cfg.epochs + 1):
        torch.manual_seed(int(np.random.SeedSequence([cfg.seed, epoch]).generate_state(1)[0]))
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train))
        lm.train()
        total = count = 0.0
        began = time.perf_counter()
        batches = range(0, len(train), cfg.batch_size)
        for b, i in enumerate(bar(batches, f"pretrain epoch {epoch}/{cfg.epochs}", enabled=progress)):
            step += 1
            for group in opt.param_groups:
                group["lr"] = lr_at(step, schedule, model.config.ninp)
            batch = masked_batch(train, order[i : i + cfg.batch_size], cfg,
                                 np.random.default_rng([cfg.seed, epoch, b]), kmers, model.config.conv_stride)
            loss, _, _ = _loss_and_hits(lm, *batch, device)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
            opt.step()
            total, count = total + loss.item() * len(batch[0]), count + len(batch[0])
        val_loss, val_acc = evaluate_lm(lm, val, cfg, device)
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val_loss,
                        "val_acc": val_acc})
        ck = {"model": model.state_dict(), "head": lm.head.state_dict(), "optimizer": opt.state_dict(),
              "step": step, "epoch": epoch, "history": history, "model_config": asdict(model.config),
              "pretrain_config": asdict(cfg), "kind": KIND}
        save_checkpoint(ck, last)
        if val_loss < best:
            best = val_loss
            save_checkpoint(ck, checkpoint_dir / "best.pt")
        row = history[-1]
        log(f"epoch {epoch:>{len(str(cfg.epochs))}}/{cfg.epochs}  train loss {row['train_loss']:.4f}  "
            f"val loss {val_loss:.4f}  val masked-token accuracy {val_acc:.4f}  "
            f"{time.perf_counter() - began:.0f} s")
        if history_path is not None:
            with atomic_path(history_path) as tmp:
                pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(tmp, sep="\t", index=False)
    return pd.DataFrame(history, columns=HISTORY_COLUMNS)



@torch.no_grad()
def evaluate_lm(lm: MaskedLM, corpus: Corpus, cfg: PretrainConfig, device) -> tuple[float, float]:
    """(weighted masked-token loss, accuracy over masked non-N bases) with masks fixed by the seed."""
    lm.eval()
    loss_sum = weight_sum = hits = scored = 0.0
    for b, i in enumerate(range(0, len(corpus), cfg.batch_size)):
        rows = np.arange(i, min(i + cfg.batch_size, len(corpus)))
        masked, target, weight = masked_batch(corpus, rows, cfg, np.random.default_rng([cfg.seed, 0, b]),
                                              lm.model.config.kmers, lm.model.config.conv_stride)
        loss, h, s = _loss_and_hits(lm, masked, target, weight, device)
        w = float(weight.sum())
        loss_sum, weight_sum, hits, scored = loss_sum + loss.item() * w, weight_sum + w, hits + h, scored + s
    return loss_sum / max(weight_sum, 1e-8), hits / max(scored, 1)
