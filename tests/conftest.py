"""Shared fixtures: the devices to run on, a seeded toy model, motif data, a fake complete record, the real
data folder."""

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from seq2epi.data.datasets import WindowDataset, load_dataset, save_dataset
from seq2epi.data.sequence import PAD
from seq2epi.lab import records
from seq2epi.model.transformer import ModelConfig, NucleicTransformer

SHARED = Path(os.environ.get("SEQ2EPI_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TOY = dict(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(7,), dropout=0.1)
MOTIF = np.array([0, 1, 2, 3, 3, 2], dtype=np.uint8)  # ACGTTG
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def make_toy_model(**kw) -> NucleicTransformer:
    """A seeded toy Nucleic Transformer; keyword arguments override TOY's ModelConfig fields."""
    torch.manual_seed(0)
    return NucleicTransformer(ModelConfig(**{**TOY, **kw}))


def make_motif_data(n: int, seed: int, length: int = 40, rc_augment: bool = False) -> WindowDataset:
    """Random windows of 30..length bp; label 1 when MOTIF was planted (every other window)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 4, (n, length)).astype(np.uint8)
    lengths = rng.integers(30, length + 1, n)
    labels = (np.arange(n) % 2).astype(np.float32)
    for i in np.flatnonzero(labels):
        at = rng.integers(0, lengths[i] - len(MOTIF) + 1)
        tokens[i, at : at + len(MOTIF)] = MOTIF
    tokens[np.arange(length) >= lengths[:, None]] = PAD
    return WindowDataset(tokens, lengths, labels, rc_augment=rc_augment, seed=seed)


RECORD_MARKS = ["H3K4me3", "H3K9ac"]
RECORD_WINDOW, RECORD_STRIDE = 20, 5


def model_metrics(auroc: float = 0.9, mcc: float = 0.6, threshold: float = 0.5, **extra) -> dict:
    """One model's test metrics as analysis/evaluate writes them into metrics.json."""
    return {"auroc": auroc, "auprc": 0.8, "mcc": mcc, "acc": 0.85, "sens": 0.8, "spec": 0.9,
            "threshold": threshold, "tp": 8, "fp": 1, "tn": 9, "fn": 2,
            "ci95": {"auroc": [auroc - 0.02, auroc + 0.02], "mcc": [mcc - 0.1, mcc + 0.1]}, **extra}


def classification_metrics(marks: dict, **top) -> dict:
    """A classification record's metrics.json: `marks` ({mark: {model: metrics}}), the first mark's models
    at the top level (the baselines filled in where not given) and `top` added."""
    baselines = {"gc_content": model_metrics(0.6, 0.2), "kmer_logistic": model_metrics(0.7, 0.3)}
    return {**baselines, **next(iter(marks.values())), "marks": marks, "best_epoch": 1, "n_test": 10,
            "threshold_criterion": "mcc", **top}


def gene_metrics(spearman: dict) -> dict:
    """A per-gene record's metrics.json: the transformer's test Spearman per mark ({mark: rho})."""
    def correlation(rho: float) -> dict:
        return {"spearman": rho, "pearson": rho, "n": 10, "spearman_ci": [rho - 0.1, rho + 0.1],
                "pearson_ci": [rho - 0.1, rho + 0.1]}

    return {"genes": {mark: {"transformer": correlation(rho)} for mark, rho in spearman.items()},
            "best_epoch": 1, "n_train": 30, "n_val": 10, "n_test": 10, "precision": "float32"}


def make_record(folder: Path, marks=RECORD_MARKS, thresholds=(0.4, 0.6), window=RECORD_WINDOW,
                stride=RECORD_STRIDE, state=None, spec: bool = True, **params) -> Path:
    """A record folder as 01-03 leave it: parameters.yaml (`params` added), artifacts/dataset.npz (six
    windows of `window` bp), metrics.json with the thresholds and a seeded toy best.pt (k-mer 5), whose
    inference spec holds the thresholds too; spec=False writes a checkpoint of before specs."""
    model = make_toy_model(kmers=(5,), n_targets=len(marks))
    (folder / records.CHECKPOINT.parent).mkdir(parents=True)
    params = {"experiment": "toy", "input": "genome", "mark": marks[0], "marks": list(marks),
              "window": window, "kmers": [5], "predict_stride": stride, "rc_average": False} | params
    (folder / "parameters.yaml").write_text(yaml.safe_dump(params))
    rng = np.random.default_rng(0)
    save_dataset(folder / records.DATASET, rng.integers(0, 4, (6, window)), [window] * 6,
                 np.tile([[1.0, 0.0], [0.0, 1.0]], (3, 1))[:, : len(marks)], ["train"] * 4 + ["val", "test"])
    per_mark = {m: {"transformer": model_metrics(threshold=t)}
                for m, t in zip(marks, thresholds, strict=True)}
    (folder / "metrics.json").write_text(json.dumps(classification_metrics(per_mark)))
    checkpoint = {"model": state or model.state_dict(), "model_config": asdict(model.config), "epoch": 1}
    if spec:
        found = records.inference_spec(params, load_dataset(folder / records.DATASET))
        checkpoint["spec"] = found | {"thresholds": list(thresholds)}
    torch.save(checkpoint, folder / records.CHECKPOINT)
    return folder


@pytest.fixture
def record(tmp_path) -> Path:
    """A fake complete record, executed/2026-01-01_toy under tmp_path (make_record)."""
    return make_record(tmp_path / "executed" / "2026-01-01_toy")


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each test that takes it runs on the CPU, and on CUDA where present."""
    return request.param


@pytest.fixture
def toy_model():
    """make_toy_model: call it with ModelConfig overrides."""
    return make_toy_model


@pytest.fixture
def motif_data():
    """make_motif_data: call it with (n, seed[, length, rc_augment])."""
    return make_motif_data


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $SEQ2EPI_DATA); the test is skipped where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared real data absent ({SHARED.name})")
    return SHARED
