import datetime
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from seq2epi import experiments

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workbook(tmp_path):
    """A copy of the workbook's notebooks and parameters, so that records land in a temporary executed/."""
    for folder in ("notebooks", "parameters"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "executed").mkdir()
    return tmp_path


def test_base_yaml_declares_exactly_the_notebooks_parameters_with_the_same_defaults():
    base = yaml.safe_load((REPO / "parameters" / "base.yaml").read_text())
    declared = {}
    for stage in experiments.STAGES:
        for key, default in experiments.declared_parameters(REPO / "notebooks" / f"{stage}.ipynb").items():
            assert declared.setdefault(key, default) == default, f"{stage} declares {key} differently"
    assert set(base) == set(declared)
    assert {k: v for k, v in base.items()} == declared


def test_templates_are_committed_without_outputs():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in code), path


def test_every_experiment_file_is_valid(monkeypatch):
    monkeypatch.setenv("SEQ2EPI_DATA", "/somewhere/data")
    for path in sorted((REPO / "parameters").glob("*.yaml")):
        if path.stem != "base":
            params = experiments.load_parameters(path.stem, REPO)
            assert params["data_dir"] == "/somewhere/data" and params["experiment"] == path.stem


def test_lab_runs_carry_the_lab_hyperparameters():
    train2 = experiments.load_parameters("0503_train2", REPO)
    assert (train2["ninp"], train2["epochs"], train2["kmers"], train2["nlayers"]) == (256, 15, [13], 6)
    assert experiments.load_parameters("0504_train1", REPO)["kmers"] == [20]
    assert experiments.load_parameters("0503_train1", REPO)["lr_scale"] == 0.1


def test_unknown_key_is_refused_before_anything_runs(workbook):
    (workbook / "parameters" / "bad.yaml").write_text("ninp: 64\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown parameter 'learning_rate'"):
        experiments.run_experiment("bad", workbook)
    assert not any((workbook / "executed").iterdir())


@pytest.mark.parametrize("override, message", [({"ninp": "big"}, "'ninp' = 'big' is a str, expected a int"),
                                               ({"kmers": 13}, "'kmers' = 13 is a int, expected a list"),
                                               ({"rc_augment": 1}, "expected a bool")])
def test_wrong_types_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        experiments.load_parameters("smoke", REPO, override)


def test_an_int_is_accepted_where_a_float_is_expected():
    assert experiments.load_parameters("smoke", REPO, {"lr": 1})["lr"] == 1


def test_data_dir_comes_from_the_parameter_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQ2EPI_DATA", str(tmp_path))
    assert experiments.data_dir(None) == tmp_path
    assert experiments.data_dir("/x/y") == Path("/x/y")
    monkeypatch.delenv("SEQ2EPI_DATA")
    assert experiments.data_dir(None) == Path("data").resolve()


def test_parse_override_reads_yaml_values():
    assert experiments.parse_override("kmers=[7, 13]") == ("kmers", [7, 13])
    assert experiments.parse_override("lr=1e-4") == ("lr", 1e-4)
    with pytest.raises(ValueError, match="key=value"):
        experiments.parse_override("epochs")


def test_records_are_never_overwritten(tmp_path):
    day = datetime.date(2021, 5, 3)
    first = experiments.new_record_dir(tmp_path, "train1", day)
    second = experiments.new_record_dir(tmp_path, "train1", day)
    assert (first.name, second.name) == ("2021-05-03_train1", "2021-05-03_train1_2")


def test_find_record_takes_the_newest_record_of_an_experiment(tmp_path):
    for name in ("2021-05-03_a", "2021-05-04_a", "2021-05-04_ab"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "parameters.yaml").write_text(f"experiment: {name[11:]}\n")
    assert experiments.find_record(tmp_path, "a").name == "2021-05-04_a"
    assert experiments.find_record(tmp_path, "2021-05-03_a").name == "2021-05-03_a"
    with pytest.raises(FileNotFoundError, match="no record of experiment 'c'"):
        experiments.find_record(tmp_path, "c")


def test_index_lists_records_with_their_metrics(tmp_path):
    record = tmp_path / "2021-05-03_train1"
    record.mkdir()
    (record / "parameters.yaml").write_text("experiment: train1\ninput: csv\ntrain_csv: a/train.csv\n"
                                            "mark: H3K4me3\nninp: 512\nnote: reduced\n")
    for stage in ("01_data_prep", "02_train"):
        (record / f"{stage}.ipynb").write_text("{}")
    (record / "history.tsv").write_text("epoch\tval_auc\n1\t0.9\n2\t0.93\n")
    (record / "metrics.json").write_text('{"transformer": {"auroc": 0.91, "mcc": 0.7}}')
    index = experiments.write_index(tmp_path).read_text()
    link = "[2021-05-03_train1](2021-05-03_train1/)"
    assert f"| 2021-05-03 | train1 | {link} | a/train.csv | H3K4me3 | 512 |" in index
    assert "| 0.9300 | 0.9100 | 0.7000 | complete | reduced |" in index
