"""02_train's body as a function, and as a torchrun job of two processes (gloo on CPU)."""

import numpy as np
import pytest
import torch
from conftest import make_motif_data

from seq2epi.data import datasets
from seq2epi.model import train_job
from seq2epi.model.train import TrainConfig, load_checkpoint
from seq2epi.model.transformer import ModelConfig

MODEL = ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(7,), dropout=0.1)
CONFIG = TrainConfig(epochs=3, batch_size=16, schedule="constant", lr=1e-2, seed=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A dataset file as 01_data_prep writes it: motif windows split into train / val / test."""
    parts = [make_motif_data(n, seed, rc_augment=True) for n, seed in ((256, 0), (101, 1), (64, 2))]
    split = np.repeat(["train", "val", "test"], [len(p) for p in parts])
    path = tmp_path_factory.mktemp("job") / "dataset.npz"
    tokens, lengths, labels = (np.concatenate([getattr(p, k) for p in parts]) for k in ("tokens", "lengths",
                                                                                         "labels"))
    datasets.save_dataset(path, tokens, lengths, labels, split, mark="motif")
    return path


def test_setup_builds_the_seeded_model_and_the_splits(dataset):
    model, train_ds, val_ds = train_job.setup(dataset, MODEL, CONFIG)
    again, _, _ = train_job.setup(dataset, MODEL, CONFIG)
    assert (len(train_ds), len(val_ds)) == (256, 101) and model.config.n_targets == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                  strict=True))
    with pytest.raises(ValueError, match=r"kmers \[50\] reach beyond the shortest sequence \(30 bp\)"):
        train_job.setup(dataset, ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(50,)), CONFIG)


@pytest.mark.slow
def test_launch_trains_under_torchrun_with_two_processes(dataset, tmp_path):
    history = train_job.launch(2, dataset, MODEL, CONFIG, tmp_path / "checkpoints")
    assert list(history["epoch"]) == [1, 2, 3] and history["val_auc"].iloc[-1] > 0.8
    model, checkpoint = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert checkpoint["train_config"]["distributed"] and model.config.kmers == (7,)


def test_launch_refuses_more_processes_than_gpus(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cuda = TrainConfig(**{**CONFIG.__dict__, "device": "cuda"})
    with pytest.raises(ValueError, match=r"nproc is 2 but 1 GPU\(s\) are visible"):
        train_job.launch(2, dataset, MODEL, cuda, tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints").exists()
