# ---- predict-region and merge-regions (issue 4: variety maps) ----
import os
import shutil
import signal
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_record

from seq2epi import experiments
from seq2epi.analysis.tracks import MatrixStore, read_part
from seq2epi.cli import main
from seq2epi.data.sequence import Genome
from seq2epi.lab import records
from seq2epi.model.predict import predict, predict_genome
from seq2epi.model.transformer import ModelConfig, NucleicTransformer

DATA = Path(__file__).parent / "data"


@pytest.fixture
def checkpoint(tmp_path):
    """A record whose 3-mer toy model takes 10-bp windows every 5 bp; its best.pt."""
    record = make_record(tmp_path / "executed" / "2026-01-01_toy", marks=["score"], thresholds=(0.5,),
                         window=10, stride=5)
    cfg = ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(3,))
    torch.manual_seed(0)
    spec = torch.load(record / records.CHECKPOINT, weights_only=True)["spec"] | {"kmers": [3]}
    torch.save({"model": NucleicTransformer(cfg).state_dict(), "model_config": asdict(cfg), "spec": spec},
               record / records.CHECKPOINT)
    return record / records.CHECKPOINT


def predict_region(checkpoint, out, *extra):
    return main(["predict-region", "--record", str(checkpoint.parents[2]), "--fasta", str(DATA / "tiny.fa"),
                 "--batch-size", "1", "--device", "cpu", "--out", str(out), *extra])


def test_predict_region_and_merge(checkpoint, tmp_path, capsys):
    parts = [tmp_path / "a.npz", tmp_path / "b.npz"]
    with pytest.warns(UserWarning, match="skipped"):
        assert predict_region(checkpoint, parts[0], "--region", "chr1:0-30", "--vcf", str(DATA / "tiny.vcf"),
                              "--samples", "s2,s1") == 0
    assert "chr1:0-30: " in capsys.readouterr().out
    part = read_part(parts[0])
    assert part["samples"] == ["reference", "s2", "s1"] and part["scores"].shape == (3, 5)
    with pytest.warns(UserWarning, match="skipped"):
        assert predict_region(checkpoint, parts[1], "--region", "chr1:25-50", "--vcf", str(DATA / "tiny.vcf"),
                              "--samples", "s2,s1", "--het", "n") == 0
    assert main(["merge-regions", *map(str, parts), "--out", str(tmp_path / "m.h5")]) == 0
    genome = Genome(DATA / "tiny.fa")
    model = NucleicTransformer(ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(3,)))
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    track = predict_genome(partial(predict, model, batch_size=1), genome, 10, 5, progress=False)
    with MatrixStore(tmp_path / "m.h5") as store:
        scores, bins = store.read("chr1")
        assert store.samples == ["reference", "s2", "s1"] and not np.isnan(scores).any()
    chr1 = track[track["chrom"] == "chr1"]
    assert bins[["start", "end"]].values.tolist() == chr1[["start", "end"]].values.tolist()
    np.testing.assert_array_equal(scores[0], chr1["score"].to_numpy())  # reference row = the genome track


def test_predict_region_bad_input(checkpoint, tmp_path, capsys):
    assert predict_region(checkpoint, tmp_path / "a.h5", "--region", "chr1:0-30") == 2
    assert "must be an .npz file" in capsys.readouterr().err
    assert predict_region(checkpoint, tmp_path / "a.npz", "--region", "chr1:0-30", "--vcf",
                          str(DATA / "tiny.vcf"), "--samples", "s9") == 2
    assert "has no sample(s) ['s9']; it has s1, s2, s3, s4" in capsys.readouterr().err
    assert predict_region(checkpoint, tmp_path / "a.npz", "--region", "chr1:40-60") == 2
    assert "chr1:40-60 is not inside chr1 (0-50)" in capsys.readouterr().err
    assert predict_region(checkpoint, tmp_path / "a.npz", "--region", "chr1:0-30", "--window", "2") == 2
    assert "record 2026-01-01_toy: a window of 2 bp is outside what" in capsys.readouterr().err
    assert not list(tmp_path.glob("a.*"))


# ---- run, compare, list: bad input is one sentence, an interrupted run says so ----

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workbook(tmp_path, monkeypatch):
    for folder in ("notebooks", "parameters"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "executed").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_run_refuses_a_name_outside_parameters(workbook, capsys):
    assert main(["run", "../parameters/smoke"]) == 2
    assert "seq2epi: experiment '../parameters/smoke' is not a parameter file in" in one_line_error(capsys)
    assert not any((workbook / "executed").iterdir())


def test_run_reports_a_yaml_error_in_one_line(workbook, capsys):
    (workbook / "parameters" / "bad.yaml").write_text("epochs: 3\nkmers: [7, 13\n")
    assert main(["run", "bad"]) == 2
    assert f"{workbook / 'parameters' / 'bad.yaml'}, line 3, column 1: " in one_line_error(capsys)
    assert main(["run", "smoke", "-p", "batch_size=0"]) == 2
    assert "'batch_size' = 0 is impossible; expected a number in [1, inf)" in one_line_error(capsys)


def test_run_into_an_unwritable_executed_is_one_sentence(workbook, monkeypatch, capsys):
    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refused)  # as chmod would, were the tests not run as root
    assert main(["run", "smoke"]) == 2
    assert "seq2epi: cannot write " in one_line_error(capsys)


def test_run_stopped_from_the_terminal_says_so(workbook, monkeypatch, capsys):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "execute", stopped)
    assert main(["run", "smoke", "-q"]) == 130
    assert "seq2epi: interrupted" in one_line_error(capsys)
    assert "| interrupted |" in (workbook / "executed" / "INDEX.md").read_text()


def test_run_terminated_by_sigterm_is_marked_interrupted(workbook, monkeypatch, capsys):
    monkeypatch.setattr(experiments, "execute", lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGTERM))
    assert main(["run", "smoke", "-q"]) == 130
    assert "| interrupted |" in (workbook / "executed" / "INDEX.md").read_text()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # main() leaves the handler as it found it


def test_compare_refuses_a_record_outside_executed(workbook, capsys):
    assert main(["compare", "../x", "--by", "kmers"]) == 2
    assert "'../x' is not a record or experiment name" in one_line_error(capsys)


def test_list_names_experiments_and_records(workbook, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "smoke" in out.splitlines()[0] and "# Lab records" in out


def test_index_rebuilds_the_index_from_the_records(workbook, capsys):
    record = workbook / "executed" / "2021-05-03_a b"
    record.mkdir()
    (record / "parameters.yaml").write_text("experiment: a b\nnote: 'x | y'\n")
    assert main(["index"]) == 0
    index = (workbook / "executed" / "INDEX.md").read_text()
    assert "[2021-05-03_a b](2021-05-03_a%20b/)" in index and "| x \\| y |" in index


def test_rerender_links_a_record_s_figures_and_refuses_an_unknown_record(workbook, capsys):
    import base64

    import nbformat

    record = workbook / "executed" / "2021-05-03_a"
    record.mkdir()
    (record / "parameters.yaml").write_text("experiment: a\n")
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
                           "awAAAABJRU5ErkJggg==")  # one pixel
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": base64.b64encode(png).decode()})])])
    nbformat.write(nb, record / "02_train.ipynb")
    assert main(["rerender", "a"]) == 0
    assert capsys.readouterr().out.startswith("2021-05-03_a: ")
    assert 'src="figures/02_train-1.png"' in (record / "02_train.html").read_text()
    assert main(["rerender", "b"]) == 2
    assert "no record of experiment 'b'" in one_line_error(capsys)
