"""Every notebook executed through the runner on `smoke` parameters (tiny simulated genome and model)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from seq2epi import cli
from seq2epi.analysis import maps
from seq2epi.lab import records

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def new_workbook(root: Path) -> Path:
    for folder in ("notebooks", "parameters"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "executed").mkdir()
    return root


@pytest.fixture(scope="module")
def workbook(tmp_path_factory):
    return new_workbook(tmp_path_factory.mktemp("workbook"))


def run(workbook, monkeypatch, *args) -> int:
    monkeypatch.chdir(workbook)
    return cli.main(list(args))


def newest_record(workbook) -> Path:
    folders = (p for p in (workbook / "executed").iterdir() if p.is_dir())
    return max(folders, key=lambda p: p.stat().st_ctime_ns)


@pytest.fixture(scope="module")
def smoke_record(workbook):
    with pytest.MonkeyPatch.context() as mp:
        assert run(workbook, mp, "run", "smoke", "-q") == 0
    return newest_record(workbook)


def test_smoke_run_writes_a_complete_record(smoke_record, workbook):
    for stage in ("01_data_prep", "02_train", "03_evaluate", "04_predict_genome"):
        assert (smoke_record / f"{stage}.ipynb").exists() and (smoke_record / f"{stage}.html").exists()
    history = pd.read_csv(smoke_record / "history.tsv", sep="\t")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "val_auc", "val_acc", "val_sens",
                                     "val_spec", "val_mcc", "seconds", "windows_per_s"]
    assert len(history) == 2
    metrics = json.loads((smoke_record / "metrics.json").read_text())
    assert {"transformer", "gc_content", "kmer_logistic"} <= set(metrics)
    for figure in ("val_auc", "loss", "val_acc", "roc_pr", "confusion", "attention", "attribution_logos",
                   "track", "variety_map", "genome_overview"):
        assert (smoke_record / "figures" / f"{figure}.png").exists(), figure
    assert "ci95" in metrics["transformer"] and (smoke_record / "top_kmers.tsv").exists()
    assert set(metrics["calibration"]) == {"H3K4me3"} and (smoke_record / "figures/reliability.png").exists()
    for written in ("artifacts/track.bw", "artifacts/map.h5", maps.CHANGED, "variable_regions.tsv"):
        assert (smoke_record / written).exists(), written
    index = (workbook / "executed" / "INDEX.md").read_text()
    assert f"[{smoke_record.name}]({smoke_record.name}/)" in index and "| complete |" in index
    spec = records.Record.find(smoke_record).spec()  # 02 stored it, 03 added thresholds and temperatures
    threshold = metrics["marks"]["H3K4me3"]["transformer"]["threshold"]
    assert spec["marks"] == ["H3K4me3"] and spec["thresholds"] == [threshold]
    assert len(spec["temperature"]) == 1
    params = yaml.safe_load((smoke_record / "parameters.yaml").read_text())
    assert spec["window"] == params["window"] and spec["parameters"] == params
    assert records.Record.find(smoke_record).predictor().window == params["window"]


def test_pretraining_stage_hands_its_encoder_to_training(tmp_path, monkeypatch):
    workbook = new_workbook(tmp_path)  # its own: the smoke record stays the newest of the shared workbook
    pretrain = ["-p", f"data_dir={REPO / 'tests' / 'data'}", "-p", "pretrain_fasta=[pretrain.fa]",
                "-p", "pretrain_window=50", "-p", "pretrain_windows=64", "-p", "pretrain_epochs=2",
                "-p", "conv_stride=2", "-p", "pretrain_exclude_regions=[chrB]"]
    assert run(workbook, monkeypatch, "run", "smoke", "--stages", "00,01,02", "-q", *pretrain) == 0
    record = newest_record(workbook)
    assert (record / "00_pretrain.html").exists() and (record / "figures" / "pretrain.png").exists()
    pretrained = torch.load(record / "artifacts" / "pretrain" / "best.pt", weights_only=True)
    assert pretrained["model_config"]["conv_stride"] == 2  # the encoder the classifier will have
    assert len(pd.read_csv(record / "pretrain_history.tsv", sep="\t")) == 2
    train = json.loads((record / "02_train.ipynb").read_text())
    said = "".join("".join(o.get("text", "")) for c in train["cells"] for o in c.get("outputs", []))
    assert "starting from the weights of artifacts/pretrain/best.pt" in said


def test_a_record_is_light_portable_and_clean(smoke_record, workbook):
    for notebook in smoke_record.glob("*.ipynb"):
        assert str(workbook.resolve()) not in notebook.read_text(), notebook.name
    html = (smoke_record / "02_train.html").read_text()
    assert '<link rel="stylesheet" href="../nbconvert-' in html and 'src="figures/loss.png"' in html
    assert len(html) < 100_000
    assert yaml.safe_load((smoke_record / "parameters.yaml").read_text())["data_dir"] is None
    assert not list(smoke_record.glob(".tmp-*")) and not list(smoke_record.glob("*.tmp"))
    assert not list((smoke_record / "figures").glob("0*-*.png"))  # every figure shown is a saved one, once


def test_compare_makes_a_record_of_its_own(smoke_record, workbook, monkeypatch):
    assert run(workbook, monkeypatch, "compare", "smoke", smoke_record.name, "--by", "kmers", "-q") == 0
    compare = newest_record(workbook)
    assert compare.name.endswith("compare_kmers")
    assert yaml.safe_load((compare / "parameters.yaml").read_text())["records"] == [smoke_record.name] * 2
    table = pd.read_csv(compare / "comparison.tsv", sep="\t")
    assert len(table) == 2 and (compare / "figures" / "compare_val_auc.png").exists()
    assert not (compare / "ensemble.tsv").exists()


def test_compare_scores_an_ensemble_of_records(smoke_record, workbook, monkeypatch):
    assert (smoke_record / "predictions.tsv.gz").exists()
    twin = smoke_record.with_name(smoke_record.name + "_twin")
    shutil.copytree(smoke_record, twin)
    args = ["compare", smoke_record.name, twin.name, "--by", "seed", "--ensemble", "-q"]
    assert run(workbook, monkeypatch, *args) == 0
    table = pd.read_csv(newest_record(workbook) / "ensemble.tsv", sep="\t")
    assert list(table["model"]) == [smoke_record.name, twin.name, "ensemble (mean)"]
    assert table["auroc"].nunique() == 1  # the mean of a record and its copy is that record
    curve = pd.read_csv(newest_record(workbook) / "test_metrics.tsv", sep="\t")  # `by` is a number
    assert {"smoke", "smoke stack", "k-mer LR", "GC content"} <= set(curve["curve"])
    assert (newest_record(workbook) / "figures" / "test_auroc_by_seed.png").exists()
    shutil.rmtree(twin)


def test_resume_ends_with_the_same_metrics_as_an_uninterrupted_run(smoke_record, workbook, monkeypatch):
    # "Interrupted" after epoch 1 of 2: a record with a checkpoint and no metrics yet.
    assert run(workbook, monkeypatch, "run", "smoke", "-q", "--stages", "01,02", "-p", "epochs=1") == 0
    interrupted = newest_record(workbook)
    assert not (interrupted / "metrics.json").exists()
    assert run(workbook, monkeypatch, "run", "smoke", "-q", "-p", "resume=true") == 0
    assert newest_record(workbook) == interrupted
    resumed = json.loads((interrupted / "metrics.json").read_text())
    uninterrupted = json.loads((smoke_record / "metrics.json").read_text())
    assert resumed["transformer"] == uninterrupted["transformer"]


def test_training_as_a_torchrun_job_of_two_processes(workbook, monkeypatch):
    assert run(workbook, monkeypatch, "run", "smoke", "-q", "--stages", "01,02", "-p", "nproc=2") == 0
    record = newest_record(workbook)
    history = pd.read_csv(record / "history.tsv", sep="\t")
    assert list(history["epoch"]) == [1, 2] and (record / "artifacts" / "checkpoints" / "best.pt").exists()
    assert "2 processes (torchrun, DistributedDataParallel)" in (record / "02_train.ipynb").read_text()


def test_a_failing_cell_exits_non_zero_naming_the_notebook_and_the_error(workbook, monkeypatch, capsys):
    assert run(workbook, monkeypatch, "run", "smoke", "-q", "--stages", "01", "-p", "input=bogus") == 1
    err = capsys.readouterr().err
    assert "01_data_prep.ipynb" in err
    assert "input must be csv, genome, genomewide, genes or simulate, not 'bogus'" in err
    assert "| failed |" in (workbook / "executed" / "INDEX.md").read_text()


def test_unknown_parameter_exits_with_a_one_line_error(workbook, monkeypatch, capsys):
    assert run(workbook, monkeypatch, "run", "smoke", "-p", "nlayer=3") == 2
    assert "unknown parameter 'nlayer'" in capsys.readouterr().err


# --- 03's stack, strand readings and overlap bookkeeping (issue 12)

def test_the_record_scores_the_stack_and_both_strand_readings(smoke_record):
    metrics = json.loads((smoke_record / "metrics.json").read_text())
    weights = metrics["marks"]["H3K4me3"]["stack"]["weights"]
    assert set(weights) == {"transformer", "kmer_logistic", "intercept"}
    assert set(metrics["strand"]["H3K4me3"]) == {"forward", "rc_average"} and metrics["rc_average"] is False
    assert metrics["strand"]["H3K4me3"]["forward"]["auroc"] == metrics["transformer"]["auroc"]
    assert metrics["n_test_overlapping_train"] is None  # genome mode: held-out chromosomes, not marked by 01
    assert isinstance(metrics["kmer_logistic"]["C_at_edge"], bool)


# --- genome-wide labels and per-gene values on the real Arabidopsis chr1 (issue 19), at a toy size

TOY = ["-p", "ninp=16", "-p", "nhead=2", "-p", "nhid=32", "-p", "nlayers=1", "-p", "epochs=1",
       "-p", "bootstrap_n=20"]


def test_a_genomewide_record_learns_every_target_and_writes_a_track_per_target(workbook, monkeypatch,
                                                                                shared_data):
    small = ["-p", "windows_per_epoch=128", "-p", "eval_stride=100000", "-p", "baseline_windows=200",
             "-p", 'predict_regions=["NC_003070.9:20000000-20200000"]', "-p", "predict_stride=5000",
             "-p", "plot_region=NC_003070.9:20000000-20200000", "-p", "attribution_n=1",
             "-p", "kmer_sequences=2", "-p", "modisco_n=0"]
    monkeypatch.setenv("SEQ2EPI_DATA", str(shared_data))
    assert run(workbook, monkeypatch, "run", "arabidopsis_chr1", "-q", *TOY, *small) == 0
    record = newest_record(workbook)
    metrics = json.loads((record / "metrics.json").read_text())
    targets = ["active", "polycomb", "heterochromatin", "genebody", "dhs_leaf"]
    assert list(metrics["marks"]) == targets
    for target in targets:
        assert {"transformer", "kmer_logistic", "gc_content"} <= set(metrics["marks"][target])
        assert (record / "artifacts" / f"track_{target}.bw").exists()
    track = json.loads((record / "genome_metrics.json").read_text())["targets"]
    assert set(track) == {*targets, "genes"} and track["active"]["n"] > 0
    assert {"H3K4me1", "H3K4me2", "H3K4me3"} == set(track["genes"])
    assert (record / "figures" / "track_targets.png").exists() and (record / "genes_track.tsv.gz").exists()
    history = pd.read_csv(record / "history.tsv", sep="\t")
    assert history["windows_per_s"].iloc[0] > 0


def test_a_per_gene_record_is_scored_by_spearman_beside_a_kmer_ridge(workbook, monkeypatch, shared_data):
    monkeypatch.setenv("SEQ2EPI_DATA", str(shared_data))
    assert run(workbook, monkeypatch, "run", "arabidopsis_chr1_genes", "-q", *TOY) == 0
    record = newest_record(workbook)
    assert not (record / "03_evaluate.ipynb").exists() and not (record / "04_predict_genome.ipynb").exists()
    history = pd.read_csv(record / "history.tsv", sep="\t")
    assert list(history.columns[:5]) == ["epoch", "train_loss", "val_loss", "val_spearman", "val_pearson"]
    genes = json.loads((record / "metrics.json").read_text())["genes"]
    assert set(genes) == {"H3K4me1", "H3K4me2", "H3K4me3"}
    assert set(genes["H3K4me3"]) == {"transformer", "kmer_ridge", "gc_content"}
    assert genes["H3K4me3"]["kmer_ridge"]["spearman"] > 0.3  # the k-mer ridge reads the promoters
    assert (record / "figures" / "genes_scatter.png").exists()
    assert "ρ" in (workbook / "executed" / "INDEX.md").read_text()
