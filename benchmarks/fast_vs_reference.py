"""Accuracy of the reference and fast paths: a tiny model, one seed, a synthetic motif task, validation AUROC.

    python benchmarks/fast_vs_reference.py --out benchmarks/fast_vs_reference.json
"""

import argparse
import json
import tempfile

import numpy as np
import torch

from seq2epi.data.datasets import WindowDataset
from seq2epi.data.sequence import PAD
from seq2epi.lab.io import atomic_path
from seq2epi.model.train import TrainConfig, fit
from seq2epi.model.transformer import ModelConfig, NucleicTransformer

MOTIF = np.array([0, 1, 2, 3, 3, 2], dtype=np.uint8)  # ACGTTG
PATHS = {"reference": ("reference", "fp32"), "fast": ("fast", "fp32"), "fast+bf16": ("fast", "bf16")}


def motif_data(n: int, length: int, seed: int) -> WindowDataset:
    """Random windows of varied length; half carry MOTIF somewhere (label 1)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 4, (n, length)).astype(np.uint8)
    lengths = rng.integers(length * 3 // 4, length + 1, n)
    labels = (np.arange(n) % 2).astype(np.float32)
    for i in np.flatnonzero(labels):
        at = rng.integers(0, lengths[i] - len(MOTIF) + 1)
        tokens[i, at : at + len(MOTIF)] = MOTIF
    tokens[np.arange(length) >= lengths[:, None]] = PAD
    return WindowDataset(tokens, lengths, labels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="JSON results path")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--epochs", type=int, default=4)
    args = p.parse_args()
    train, val = motif_data(1024, 80, seed=0), motif_data(512, 80, seed=1)
    cfg = dict(epochs=args.epochs, batch_size=32, schedule="constant", lr=3e-3, seed=1, device=args.device)
    result = {"device": args.device, "torch": torch.__version__, "train_config": cfg, "val_auc": {}}
    for name, (attention, precision) in PATHS.items():
        torch.manual_seed(0)
        model = NucleicTransformer(ModelConfig(ninp=32, nhead=4, nhid=64, nlayers=2, kmers=(7,),
                                               attention=attention))
        with tempfile.TemporaryDirectory() as tmp:
            history = fit(model, train, val, TrainConfig(**cfg, precision=precision), tmp, progress=False)
        result["val_auc"][name] = history.val_auc.tolist()
        print(f"{name:10s} val AUROC by epoch: " + " ".join(f"{v:.4f}" for v in history.val_auc), flush=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
