"""Shared fixtures: the devices to run on, a seeded toy model, motif data, the real data folder."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2epi.datasets import WindowDataset
from seq2epi.model import ModelConfig, NucleicTransformer
from seq2epi.sequence import PAD

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
