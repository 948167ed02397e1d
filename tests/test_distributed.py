"""Two-process DistributedDataParallel training on CPU (gloo), launched through torchrun."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import make_motif_data

from seq2epi.model.train import TrainConfig, _evaluate, _val_metrics, load_checkpoint, make_loader

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import torch.distributed as dist
    sys.path.insert(0, {tests!r})
    from conftest import make_motif_data, make_toy_model
    from seq2epi.model.train import TrainConfig, fit

    model = make_toy_model()
    cfg = TrainConfig(epochs=4, batch_size=16, schedule="constant", lr=1e-2, seed=1, distributed=True)
    train, val = make_motif_data(512, seed=0, rc_augment=True), make_motif_data(251, seed=1, rc_augment=True)
    history = fit(model, train, val, cfg, sys.argv[1], progress=False)
    history.to_json(f"{{sys.argv[1]}}/history{{dist.get_rank()}}.json")
    dist.destroy_process_group()
""")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    script = out / "train_ddp.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script, out]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_every_rank_reports_the_same_history_and_training_learns(ddp_run):
    histories = [json.loads((ddp_run / f"history{rank}.json").read_text()) for rank in (0, 1)]
    assert histories[0] == histories[1]
    assert len(histories[0]["epoch"]) == 4
    val_loss, val_auc = (list(histories[0][k].values()) for k in ("val_loss", "val_auc"))
    assert val_loss[-1] < val_loss[0] - 0.1 and val_auc[-1] > 0.8


def test_validation_covers_the_whole_set(ddp_run):
    model, ck = load_checkpoint(ddp_run / "last.pt")
    val = make_motif_data(251, seed=1, rc_augment=True)  # odd: DistributedSampler pads one rank
    cpu = torch.device("cpu")
    y, logits = _evaluate(model, make_loader(val, TrainConfig(batch_size=64), cpu), cpu)
    single = _val_metrics(y, logits)
    last = ck["history"][-1]
    assert len(y) == 251
    for name in ("val_loss", "val_auc", "val_acc", "val_sens", "val_spec", "val_mcc"):
        assert last[name] == pytest.approx(single[name], abs=1e-5), name
