import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from conftest import make_motif_data, make_toy_model

from seq2epi.data.datasets import WindowDataset
from seq2epi.lab.metrics import pearson, spearman
from seq2epi.model import train
from seq2epi.model.train import (
    HISTORY_COLUMNS,
    REGRESSION_COLUMNS,
    TIMING_COLUMNS,
    TrainConfig,
    _loss,
    _val_metrics,
    _world,
    configs_from,
    epoch_line,
    fit,
    history_columns,
    init_from,
    load_checkpoint,
    lr_at,
    selection_column,
    set_threads,
    update_spec,
)
from seq2epi.model.transformer import ModelConfig, NucleicTransformer


def toy_model(attention: str = "fast") -> NucleicTransformer:
    return make_toy_model(attention=attention)


CFG = TrainConfig(epochs=4, batch_size=32, schedule="constant", lr=1e-2, seed=1)


def scores(history: pd.DataFrame) -> pd.DataFrame:
    """A history without its wall-time columns: what an exact resume or rerun reproduces."""
    return history.drop(columns=TIMING_COLUMNS)


SPEC = {"marks": ["motif"], "window": 40, "thresholds": None}  # as records.inference_spec gives it, shorter


@pytest.fixture(scope="module")
def data():
    return make_motif_data(512, seed=0, rc_augment=True), make_motif_data(256, seed=1, rc_augment=True)


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory):
    model, out = toy_model(), tmp_path_factory.mktemp("full")
    return model, fit(model, *data, CFG, out, progress=False, spec=SPEC), out


def test_model_learns_motif(full_run):
    _, history, out = full_run
    assert list(history.columns) == HISTORY_COLUMNS
    assert HISTORY_COLUMNS[:8] == ["epoch", "train_loss", "val_loss", "val_auc", "val_acc", "val_sens",
                                   "val_spec", "val_mcc"]  # the old columns first: old readers still work
    assert list(history.epoch) == [1, 2, 3, 4]
    assert (history.seconds > 0).all() and (history.windows_per_s > 0).all()
    assert (history.windows_per_s > 512 / history.seconds).all()  # 512 windows over the training time only
    assert history.val_auc.iloc[-1] > 0.8
    assert (out / "last.pt").exists() and (out / "best.pt").exists()
    assert not list(out.glob("*.tmp"))


def test_resume_is_exact(full_run, data, tmp_path):
    model, history, _ = full_run
    first = fit(toy_model(), *data, TrainConfig(**{**CFG.__dict__, "epochs": 2}), tmp_path, progress=False)
    assert len(first) == 2
    resumed_model = toy_model()
    resumed = fit(resumed_model, *data, CFG, tmp_path, resume=True, progress=False)
    assert scores(resumed).equals(scores(history))
    for (name, a), b in zip(model.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    again = fit(toy_model(), *data, CFG, tmp_path, resume=True, progress=False)  # nothing left to do
    assert scores(again).equals(scores(history))


def test_reference_attention_learns_alike(full_run, data, tmp_path):
    reference = fit(toy_model("reference"), *data, CFG, tmp_path, progress=False)
    np.testing.assert_allclose(reference.val_auc, full_run[1].val_auc, atol=0.01)


def test_load_checkpoint(full_run, data):
    model, history, out = full_run
    loaded, ck = load_checkpoint(out / "last.pt")
    assert not loaded.training and ck["epoch"] == 4 and ck["train_config"]["seed"] == 1
    assert loaded.config == model.config
    x = torch.stack([data[1][i][0] for i in range(8)])
    torch.testing.assert_close(loaded(x), model.eval()(x))
    best = load_checkpoint(out / "best.pt")[1]
    assert best["history"][-1]["val_auc"] == history.val_auc.max()
    assert ck["spec"] == best["spec"] == SPEC  # every checkpoint carries how its model is used
    with pytest.raises(FileNotFoundError):
        load_checkpoint(out / "missing.pt")


def test_update_spec_adds_to_the_checkpoint_and_keeps_the_rest(full_run, tmp_path):
    _, _, out = full_run
    shutil.copy(out / "best.pt", tmp_path / "best.pt")
    spec = update_spec(tmp_path / "best.pt", thresholds=[0.4], temperature=[1.5])
    model, ck = load_checkpoint(tmp_path / "best.pt")
    assert spec == ck["spec"] == SPEC | {"thresholds": [0.4], "temperature": [1.5]}
    before = load_checkpoint(out / "best.pt")[1]
    assert ck["epoch"] == before["epoch"] and list(tmp_path.iterdir()) == [tmp_path / "best.pt"]
    for name, weights in before["model"].items():
        assert torch.equal(weights, ck["model"][name]), name


def test_init_from_copies_a_checkpoint_of_the_same_architecture(full_run, data):
    _, _, out = full_run
    trained, _ = load_checkpoint(out / "best.pt")
    torch.manual_seed(5)
    fresh = NucleicTransformer(ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(7,), dropout=0.3,
                                           attention_dropout=0.0))
    init_from(fresh, out / "best.pt").eval()
    x = torch.stack([data[1][i][0] for i in range(8)])
    torch.testing.assert_close(fresh(x), trained(x))
    other = NucleicTransformer(ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=2, kmers=(7,)))
    with pytest.raises(ValueError, match=r"best.pt: its model differs .* \{'nlayers': \(1, 2\)\}"):
        init_from(other, out / "best.pt")


def test_init_from_loads_a_checkpoint_of_another_conv_stride(full_run):
    """conv_stride has no weights of its own: a stride-1 checkpoint starts a strided model, every weight."""
    _, _, out = full_run
    trained, _ = load_checkpoint(out / "best.pt")
    strided = init_from(make_toy_model(conv_stride=4), out / "best.pt")
    assert strided.config.conv_stride == 4 and strided.k_mer_aggregate.convs[0].stride == (4,)
    for (name, a), b in zip(trained.state_dict().items(), strided.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_noam_schedule():
    cfg = TrainConfig(schedule="noam", lr_scale=0.1, warmup=4000)
    for step in (1, 100, 4000, 10_000):
        expected = 0.1 * 512**-0.5 * min(step**-0.5, step * 4000**-1.5)
        assert math.isclose(lr_at(step, cfg, 512), expected)
    assert math.isclose(lr_at(4000, cfg, 512), 0.1 / math.sqrt(512 * 4000))
    assert lr_at(2000, cfg, 512) < lr_at(4000, cfg, 512) > lr_at(8000, cfg, 512)
    with pytest.raises(ValueError):
        lr_at(0, cfg, 512)


def test_constant_schedule():
    cfg = TrainConfig(schedule="constant", lr=3e-4)
    assert lr_at(1, cfg, 16) == lr_at(10_000, cfg, 16) == 3e-4
    with pytest.raises(ValueError, match="schedule"):
        lr_at(1, TrainConfig(schedule="cosine"), 16)


def test_loss_masks_unlabelled_marks():
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    labels = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    known = bce(torch.tensor([2.0, 0.5, 3.0]), torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(_loss(logits, labels), known)
    torch.testing.assert_close(_loss(logits[:, :1], labels[:, 0]), bce(logits[:, 0], labels[:, 0]))


def test_regression_losses_mask_nan_labels():
    out = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    labels = torch.tensor([[1.5, float("nan")], [0.0, 4.0]])
    known_out, known_y = torch.tensor([2.0, 0.5, 3.0]), torch.tensor([1.5, 0.0, 4.0])
    torch.testing.assert_close(_loss(out, labels, kind="mse"), ((known_out - known_y) ** 2).mean())
    poisson = (known_out.exp() - known_y * known_out).mean()  # log input, without Stirling's term
    torch.testing.assert_close(_loss(out, labels, kind="poisson"), poisson)
    torch.testing.assert_close(_loss(out, labels, reduction="sum", kind="poisson"), poisson * 3)
    with pytest.raises(ValueError, match="loss must be one of .*'bce', 'mse', 'poisson'.*, got 'l1'"):
        _loss(out, labels, kind="l1")


def test_history_and_selection_columns_by_loss():
    assert history_columns("bce") == HISTORY_COLUMNS and selection_column("bce") == "val_auc"
    for loss in ("mse", "poisson"):
        assert history_columns(loss) == REGRESSION_COLUMNS and selection_column(loss) == "val_spearman"
    assert REGRESSION_COLUMNS[:3] == HISTORY_COLUMNS[:3] and REGRESSION_COLUMNS[-2:] == TIMING_COLUMNS
    with pytest.raises(ValueError, match="loss must be one of"):
        selection_column("hinge")
    row = {"epoch": 3, "train_loss": 0.5, "val_loss": 0.4, "val_spearman": 0.61, "val_pearson": 0.55,
           "seconds": 12.0, "windows_per_s": 250.0}
    line = epoch_line(row, 10, 12.0)
    assert line == ("epoch  3/10  train loss 0.5000  val loss 0.4000  val Spearman 0.6100  "
                    "val Pearson 0.5500  12 s  250 windows/s")


def test_validation_of_a_poisson_run_correlates_the_rate():
    rng = np.random.default_rng(0)
    y = rng.poisson(3.0, (40, 2)).astype(np.float32)
    logits = (np.log1p(y) + rng.normal(0, 0.5, y.shape)).astype(np.float32)
    y[::5, 1] = np.nan
    m = _val_metrics(y, logits, "poisson")
    assert set(m) == {"val_loss", "val_spearman", "val_pearson"}
    expected = np.mean([pearson(y[:, t], np.exp(logits[:, t])) for t in range(2)])
    assert np.isclose(m["val_pearson"], expected) and m["val_pearson"] != np.mean(
        [pearson(y[:, t], logits[:, t]) for t in range(2)])
    assert np.isclose(m["val_spearman"], np.mean([spearman(y[:, t], logits[:, t]) for t in range(2)]))


def regression_data(part: WindowDataset, seed: int) -> WindowDataset:
    """The motif windows with a continuous target: 2 where the motif is, 0 else, plus noise; some NaN."""
    target = 2 * part.labels + np.random.default_rng(seed).normal(0, 0.3, len(part.labels))
    target[::7] = np.nan
    return WindowDataset(part.tokens, part.lengths, target.astype(np.float32))


def test_a_regression_run_learns_keeps_best_on_spearman_and_resumes_exactly(data, tmp_path):
    train_ds, val_ds = regression_data(data[0], 0), regression_data(data[1], 1)
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 3, "loss": "mse"})
    straight = fit(toy_model(), train_ds, val_ds, cfg, tmp_path / "straight", progress=False,
                   history_path=tmp_path / "history.tsv")
    assert list(straight.columns) == REGRESSION_COLUMNS
    assert list(pd.read_csv(tmp_path / "history.tsv", sep="\t").columns) == REGRESSION_COLUMNS
    assert straight.val_spearman.iloc[-1] > 0.5 and straight.val_pearson.iloc[-1] > 0.5
    best = load_checkpoint(tmp_path / "straight" / "best.pt")[1]
    assert best["history"][-1]["val_spearman"] == straight.val_spearman.max()
    fit(toy_model(), train_ds, val_ds, TrainConfig(**{**cfg.__dict__, "epochs": 2}), tmp_path / "resumed",
        progress=False)
    resumed = fit(toy_model(), train_ds, val_ds, cfg, tmp_path / "resumed", resume=True, progress=False)
    assert scores(resumed).equals(scores(straight))


def test_workers_and_progress_bar_do_not_change_results(full_run, data, tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 1, "num_workers": 2})
    history = fit(toy_model(), *data, cfg, tmp_path, progress=True)
    assert scores(history).equals(scores(full_run[1].iloc[:1]))


def test_multi_target_with_unlabelled_marks_and_bf16(data, tmp_path):
    train, val = data
    labels = np.stack([train.labels, 1 - train.labels], axis=1)
    labels[::3, 1] = np.nan
    train2 = WindowDataset(train.tokens, train.lengths, labels)
    val_labels = np.stack([val.labels, 1 - val.labels], axis=1)
    val_labels[::4, 1] = np.nan
    val2 = WindowDataset(val.tokens, val.lengths, val_labels)
    torch.manual_seed(0)
    model = NucleicTransformer(ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(7,), n_targets=2))
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 1, "precision": "bf16"})
    history = fit(model, train2, val2, cfg, tmp_path, progress=False)
    assert history[HISTORY_COLUMNS[1:]].notna().all(axis=None)


def test_history_grows_an_epoch_at_a_time_with_one_line_each(data, tmp_path, monkeypatch, capsys):
    rows_seen, write_history = [], train.write_history

    def write_and_read(history, path, *loss):
        write_history(history, path, *loss)
        rows_seen.append(len(pd.read_csv(path, sep="\t")))

    monkeypatch.setattr(train, "write_history", write_and_read)
    monkeypatch.setenv("SEQ2EPI_PROGRESS", "off")  # as `seq2epi run --quiet`: lines, no bar
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 2})
    history = fit(toy_model(), *data, cfg, tmp_path / "ck", history_path=tmp_path / "history.tsv")
    assert rows_seen == [1, 2]
    written = pd.read_csv(tmp_path / "history.tsv", sep="\t")
    pd.testing.assert_frame_equal(written, history, check_dtype=False)
    assert not list(tmp_path.glob("*.tmp"))
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == "" and len(lines) == 2
    assert lines[1].startswith("epoch 2/2  train loss ") and f"val AUC {history.val_auc[1]:.4f}" in lines[1]


def test_fp16_trains_with_loss_scaling_and_resumes_its_scale(data, tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 1, "precision": "fp16"})
    history = fit(toy_model(), *data, cfg, tmp_path, progress=False)
    assert history[HISTORY_COLUMNS[1:]].notna().all(axis=None)
    scale = load_checkpoint(tmp_path / "last.pt")[1]["scaler"]["scale"]
    assert 0 < scale <= 2.0**16  # the initial scale, halved on overflow
    resumed = fit(toy_model(), *data, TrainConfig(**{**cfg.__dict__, "epochs": 2}), tmp_path, resume=True,
                  progress=False)
    assert len(resumed) == 2


def test_deterministic_resume_is_exact_on_every_device(data, device, tmp_path):
    """Exact on the CPU; on CUDA `deterministic` makes kernels repeatable, checked within 1e-6 (README)."""
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 2, "device": device, "deterministic": True})
    try:
        straight = fit(toy_model(), *data, cfg, tmp_path / "straight", progress=False)
        fit(toy_model(), *data, TrainConfig(**{**cfg.__dict__, "epochs": 1}), tmp_path / "resumed",
            progress=False)
        resumed = fit(toy_model(), *data, cfg, tmp_path / "resumed", resume=True, progress=False)
    finally:
        torch.use_deterministic_algorithms(False)
    assert straight.val_auc.iloc[-1] > 0.7
    if device == "cpu":
        assert scores(resumed).equals(scores(straight))
    else:
        np.testing.assert_allclose(scores(resumed).to_numpy(), scores(straight).to_numpy(), rtol=1e-6,
                                   atol=1e-6)


def test_set_threads_keeps_torchrun_one_thread_per_rank(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert set_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_world_binds_nccl_to_the_local_gpu(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert _world(TrainConfig(device="cuda")) == (1, 2)
    assert _world(TrainConfig(device="cpu")) == (1, 2)
    assert calls == [(("nccl",), {"device_id": torch.device("cuda", 1)}), (("gloo",), {})]


def test_wall_times_are_the_slowest_ranks_so_every_rank_has_one_history(monkeypatch):
    other_rank = torch.tensor([5.0, 1.0], dtype=torch.float64)

    def all_reduce(tensor, op):
        assert op == dist.ReduceOp.MAX
        torch.maximum(tensor, other_rank, out=tensor)

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    assert train._slowest_rank([2.0, 3.0], torch.device("cpu"), world=2) == [5.0, 3.0]
    assert train._slowest_rank([2.0, 3.0], torch.device("cpu"), world=1) == [2.0, 3.0]


def test_frozen_encoder_epochs_train_only_the_head(data, tmp_path):
    model = toy_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 1, "freeze_encoder_epochs": 1})
    fit(model, *data, cfg, tmp_path, progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("classifier.", "pool.")) for k in changed), changed


def test_best_epoch_is_the_selection_columns_best_and_refuses_an_all_nan_history():
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_auc": [0.6, 0.8, 0.7], "val_spearman": [0.1, 0.2, 0.5]})
    assert train.best_epoch(history, "bce")["epoch"] == 2
    assert train.best_epoch(history, "mse")["epoch"] == 3
    with pytest.raises(ValueError, match="no epoch has a finite val_auc"):
        train.best_epoch(history.assign(val_auc=np.nan), "bce")


def test_configs_from_02s_parameters_seed_training_and_cap_the_workers(monkeypatch):
    from seq2epi.lab.parameters import declared_parameters

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    params = declared_parameters(Path(__file__).parents[2] / "notebooks" / "02_train.ipynb")
    model, config = configs_from({**params, "kmers": [7, 13], "nlayers": 2, "num_workers": 8}, "cpu")
    assert model.kmers == (7, 13) and model.nlayers == 2 and model.attention == params["attention"]
    assert (config.seed, config.num_workers, config.device, config.epochs) == (0, 2, "cpu", params["epochs"])
    _, config = configs_from({**params, "seed": 3, "train_seed": 5}, "cpu")
    assert config.seed == 5 and config.loss == params["loss"]
