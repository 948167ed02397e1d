import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import classification_metrics, gene_metrics, model_metrics

from seq2epi.lab.metrics_file import read_metrics, schema_problem, write_metrics

EXECUTED = Path(__file__).resolve().parents[2] / "executed"


def one_sentence(message: str) -> bool:
    return message.endswith(".") and not re.search(r"\.\s+[A-Z]", message)


def classification() -> dict:
    stack = model_metrics(0.93, weights={"intercept": 0.1, "transformer": 1.2, "kmer_logistic": 0.4})
    calibration = {"temperature": 1.3, "n_bins": 10, "before": {"ece": 0.1, "brier": 0.2},
                   "after": {"ece": 0.05, "brier": 0.19}}
    marks = {"H3K4me3": {"transformer": model_metrics(overlap_free={"n": 3}), "stack": stack}}
    return classification_metrics(marks, n_train=40, calibration={"H3K4me3": calibration})


def test_a_good_file_of_each_kind_is_written_and_read_back(tmp_path):
    for name, metrics in (("classes.json", classification()), ("genes.json", gene_metrics({"K4": 0.5}))):
        assert write_metrics(tmp_path / name, metrics) == metrics == read_metrics(tmp_path / name)


def test_numpy_numbers_are_written_as_plain_numbers(tmp_path):
    metrics = classification() | {"best_epoch": np.int64(3), "n_test": np.int32(10)}
    metrics["transformer"] = metrics["transformer"] | {"auroc": np.float32(0.5)}
    write_metrics(tmp_path / "m.json", metrics)
    written = json.loads((tmp_path / "m.json").read_text())
    assert written["best_epoch"] == 3 and isinstance(written["best_epoch"], int)
    assert written["transformer"]["auroc"] == 0.5


def test_a_missing_required_key_is_named_in_one_sentence(tmp_path):
    metrics = json.loads(json.dumps(classification()))  # the headline's models apart from the mark's
    del metrics["marks"]["H3K4me3"]["transformer"]["threshold"]
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="required key marks.H3K4me3.transformer.threshold is missing") \
            as error:
        read_metrics(tmp_path / "metrics.json")
    assert str(tmp_path / "metrics.json") in str(error.value) and one_sentence(str(error.value))
    genes = gene_metrics({"K4": 0.5})
    del genes["n_val"]
    assert schema_problem(genes) == "required key n_val is missing"


def test_a_wrong_type_is_named_in_one_sentence_and_nothing_is_written(tmp_path):
    metrics = classification() | {"best_epoch": "3"}
    with pytest.raises(ValueError, match="classification metrics.json schema: key best_epoch is a string, "
                                         "expected an integer") as error:
        write_metrics(tmp_path / "metrics.json", metrics)
    assert one_sentence(str(error.value)) and not list(tmp_path.iterdir())
    flag = classification() | {"rc_average": 1}
    assert schema_problem(flag) == "key rc_average is an integer, expected a bool"
    interval = gene_metrics({"K4": 0.5})
    interval["genes"]["K4"]["transformer"]["pearson_ci"] = [0.1]
    assert schema_problem(interval) == ("key genes.K4.transformer.pearson_ci is a list, expected a "
                                        "[low, high] pair of numbers")
    assert schema_problem(classification() | {"n_test": True}) == "key n_test is a bool, expected an integer"


def test_an_undeclared_key_and_a_file_that_is_not_json_are_refused(tmp_path):
    assert schema_problem(classification() | {"n_tset": 3}) == "key n_tset is not declared"
    assert schema_problem([1, 2]) == "the top level is a list, expected an object"
    (tmp_path / "metrics.json").write_text('{"marks": ')
    with pytest.raises(ValueError, match=r"metrics.json is not JSON \(line 1\)"):
        read_metrics(tmp_path / "metrics.json")


def test_older_records_without_the_later_keys_are_read():
    old = classification()
    for key in ("stack", "calibration", "strand", "n_train", "precision", "rc_average",
                "n_test_overlapping_train"):
        old.pop(key, None)
    old["transformer"] = {k: v for k, v in old["transformer"].items() if k not in ("n", "overlap_free")}
    assert schema_problem(old) is None


def test_every_committed_record_follows_the_schema():
    found = sorted(EXECUTED.glob("*/metrics.json"))
    assert found
    for path in found:
        read_metrics(path)
