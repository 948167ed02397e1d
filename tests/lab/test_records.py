import datetime
import json
import re
import threading

import numpy as np
import pytest
import yaml
from conftest import classification_metrics, gene_metrics, model_metrics
from conftest import make_record as make_full_record

import seq2epi
from seq2epi.lab import records


def make_record(executed, name, **params):
    folder = executed / name
    folder.mkdir(parents=True)
    (folder / "parameters.yaml").write_text(yaml.safe_dump(params))
    return folder


def finished(folder, auroc=0.91):
    for stage in ("01_data_prep", "02_train", "03_evaluate"):
        (folder / f"{stage}.ipynb").write_text("{}")
    (folder / "history.tsv").write_text("epoch\tval_auc\n1\t0.9\n2\t0.93\n")
    marks = {"H3K4me3": {"transformer": model_metrics(auroc, 0.7)}}
    (folder / "metrics.json").write_text(json.dumps(classification_metrics(marks)))
    return folder


def index_rows(executed):
    lines = records.write_index(executed).read_text().splitlines()
    return [line for line in lines if line.startswith("| 20")]


def test_two_writers_never_share_a_temporary_file(tmp_path):
    finished(make_record(tmp_path, "2021-05-03_a", experiment="a", input="csv"))
    errors = []

    def write():
        try:
            for _ in range(20):
                records.write_index(tmp_path)
        except OSError as err:
            errors.append(err)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(index_rows(tmp_path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2021-05-03_a", "INDEX.md"]


def test_records_are_never_overwritten(tmp_path):
    day = datetime.date(2021, 5, 3)
    first = records.new_record_dir(tmp_path, "train1", day)
    second = records.new_record_dir(tmp_path, "train1", day)
    assert (first.name, second.name) == ("2021-05-03_train1", "2021-05-03_train1_2")


def test_find_takes_a_record_name_or_the_newest_record_of_an_experiment(tmp_path):
    for name in ("2021-05-03_a", "2021-05-04_a", "2021-05-04_a_9", "2021-05-04_a_13", "2021-05-04_ab"):
        make_record(tmp_path, name, experiment=name[11:].split("_")[0])
    assert records.Record.find("a", tmp_path).name == "2021-05-04_a_13"
    assert records.Record.find("2021-05-03_a", tmp_path).name == "2021-05-03_a"
    assert records.Record.find(tmp_path / "2021-05-04_ab", tmp_path).params == {"experiment": "ab"}
    with pytest.raises(FileNotFoundError, match=f"no record named 'c' and no record of experiment 'c' in "
                                                f"{tmp_path}"):
        records.Record.find("c", tmp_path)
    with pytest.raises(ValueError, match=r"'../2021-05-03_a' is not a record or experiment name"):
        records.Record.find("../2021-05-03_a", tmp_path / "2021-05-04_a")


def test_a_record_knows_its_layout(tmp_path):
    record = records.read_record(finished(make_record(tmp_path, "2021-05-03_a", experiment="a")))
    (record.path / "02_train.html").write_text("")
    assert [p.name for p in record.notebooks] == ["01_data_prep.ipynb", "02_train.ipynb", "03_evaluate.ipynb"]
    assert [p.name for p in record.html] == ["02_train.html"]
    assert record.checkpoint == record.path / "artifacts" / "checkpoints" / "best.pt"
    assert (record.figures, record.artifacts) == (record.path / "figures", record.path / "artifacts")
    assert record.metrics["marks"]["H3K4me3"]["transformer"]["mcc"] == 0.7 and len(record.history) == 2
    assert record.params == records.read_parameters(record.parameters_path.parent)


def dataset(lengths, split):
    n = len(lengths)
    return {"tokens": np.zeros((n, max(lengths)), np.uint8), "lengths": np.array(lengths, np.int32),
            "labels": np.zeros(n, np.float32), "split": np.array(split)}


def test_inference_spec_says_how_the_model_is_used():
    whole = dataset([30, 24, 12], ["val", "train", "train"])
    params = {"input": "csv", "mark": "H3K4me3", "kmers": [7], "rc_average": True, "predict_stride": 25,
              "crop_length": 0, "data_dir": datetime.date(2024, 1, 1)}
    spec = records.inference_spec(params, whole)
    assert spec["marks"] == ["H3K4me3"] and spec["window"] == 24 and spec["fixed_length"] is False
    assert (spec["kmers"], spec["predict_stride"], spec["rc_average"]) == ([7], 25, True)
    assert spec["parameters"]["data_dir"] == "2024-01-01" and spec["version"] == seq2epi.__version__
    assert spec["thresholds"] is None and spec["temperature"] is None
    assert records.inference_spec(params | {"crop_length": 16}, whole)["window"] == 16
    targets = records.inference_spec({"input": "genomewide", "mark": "a"}, whole | {"marks": ["a", "b", "c"]})
    assert targets["marks"] == ["a", "b", "c"]  # 01's targets (a label_map's), not the headline mark
    genome = records.inference_spec({"input": "genome", "marks": ["a", "b"], "window": 200}, None)
    assert (genome["window"], genome["marks"], genome["data_sha256"]) == (200, ["a", "b"], None)


def test_an_old_checkpoint_gets_the_same_spec_from_its_record(tmp_path):
    new = records.Record.find(make_full_record(tmp_path / "new")).spec()
    old = records.Record.find(make_full_record(tmp_path / "old", spec=False)).spec()
    assert old == new and new["thresholds"] == [0.4, 0.6] and len(new["data_sha256"]) == 64


def test_the_data_fingerprint_changes_with_any_array():
    data = dataset([30, 24, 12], ["val", "train", "train"])
    same = records.fingerprint(dataset([30, 24, 12], ["val", "train", "train"]))
    assert records.fingerprint(data) == same and len(same) == 64
    for name in records.DATASET_ARRAYS:
        changed = dict(data)
        changed[name] = np.array(["val", "train", "val"]) if name == "split" else data[name].copy() + 1
        assert records.fingerprint(changed) != same, name


def test_index_lists_records_with_their_metrics(tmp_path):
    finished(make_record(tmp_path, "2021-05-03_train1", experiment="train1", input="csv",
                         train_csv="a/train.csv", mark="H3K4me3", ninp=512, note="reduced"))
    [row] = index_rows(tmp_path)
    assert row.startswith("| 2021-05-03 | train1 | [2021-05-03_train1](2021-05-03_train1/) | a/train.csv | "
                          "H3K4me3 | 512 |")
    assert row.endswith("| 0.9300 | 0.9100 | 0.7000 | complete, 04 skipped | reduced |")


def test_index_shows_a_regression_by_its_spearman_and_a_genomewide_record_by_its_labels(tmp_path):
    genes = make_record(tmp_path, "2021-05-03_genes", experiment="genes", input="genes", mark="K4",
                        gene_table="a/genes.tsv")
    finished(genes)
    (genes / "history.tsv").write_text("epoch\tval_spearman\n1\t0.41\n2\t0.52\n")
    (genes / "metrics.json").write_text(json.dumps(gene_metrics({"K1": 0.3, "K4": 0.55})))
    finished(make_record(tmp_path, "2021-05-02_chr1", experiment="chr1", input="genomewide", mark="active",
                         segmentation_bed="a/states.bed"))
    regression, genomewide = index_rows(tmp_path)
    assert "| a/genes.tsv | K4 |" in regression and "| ρ 0.5200 | ρ 0.5500 (K4) |  |" in regression
    assert "| a/states.bed | active |" in genomewide


def test_index_sorts_by_date_then_suffix_as_numbers(tmp_path):
    for name in ("2021-05-03_a", "2021-05-03_a_2", "2021-05-03_a_9", "2021-05-03_a_13", "2021-05-04_a"):
        make_record(tmp_path, name, experiment="a")
    make_record(tmp_path, "2021-05-03_pop_1000", experiment="pop_1000")
    names = [row.split("[")[1].split("]")[0] for row in index_rows(tmp_path)]
    assert names == ["2021-05-04_a", "2021-05-03_pop_1000", "2021-05-03_a_13", "2021-05-03_a_9",
                     "2021-05-03_a_2", "2021-05-03_a"]


def test_index_shows_a_cut_of_the_data(tmp_path):
    make_record(tmp_path, "2021-05-03_a", experiment="a", input="csv", train_csv="t.csv", max_sequences=2000,
                max_test_sequences=500)
    (tmp_path / "2021-05-03_a" / "01_data_prep.ipynb").write_text("{}")
    make_record(tmp_path, "2021-05-03_b", experiment="b", input="csv", train_csv="t.csv", max_sequences=0)
    (tmp_path / "2021-05-03_b" / "01_data_prep.ipynb").write_text("{}")
    rows = index_rows(tmp_path)
    assert "| t.csv (cut: max_sequences 2000, max_test_sequences 500) |" in rows[1]
    assert "| t.csv |" in rows[0]


@pytest.mark.parametrize("mark, status", [("FAILED", "failed"), ("INTERRUPTED", "interrupted"),
                                          (None, "partial")])
def test_index_says_why_a_record_did_not_finish(tmp_path, mark, status):
    folder = make_record(tmp_path, "2021-05-03_a", experiment="a", input="simulate")
    (folder / "01_data_prep.ipynb").write_text("{}")
    if mark:
        (folder / mark).write_text("why\n")
    assert f"| {status} |" in index_rows(tmp_path)[0]


def test_read_record_gives_parameters_history_metrics_and_mark(tmp_path):
    folder = finished(make_record(tmp_path, "2021-05-03_m", experiment="m", marks=["H3K4me3", "H3K9ac"]))
    record = records.read_record(folder)
    assert record.name == "2021-05-03_m" and record.mark == "H3K4me3, H3K9ac"
    assert list(record.history["val_auc"]) == [0.9, 0.93] and record.metrics["transformer"]["auroc"] == 0.91
    empty = records.read_record(make_record(tmp_path, "2021-05-03_e", experiment="e", mark="H3K27me3"))
    assert (empty.history, empty.metrics, empty.mark) == (None, None, "H3K27me3")


def test_a_pretraining_record_is_indexed_as_pretrained(tmp_path):
    folder = make_record(tmp_path, "2021-05-03_p", experiment="p", pretrain_fasta=["a.fa"])
    (folder / "00_pretrain.html").write_text("")
    assert records.record_status(records.read_record(folder)) == "pretrained"


def test_a_scoring_job_is_indexed_as_scored_with_its_input(tmp_path):
    folder = make_record(tmp_path, "2021-05-03_s", experiment="s", score_record="a", score_vcf="c.vcf")
    (folder / "06_score.html").write_text("")
    row = index_rows(tmp_path)[0]
    assert "| c.vcf |" in row and "| scored |" in row


def metric(auroc):
    return model_metrics(auroc, auroc - 0.2)


def with_metrics(folder, auroc, kmer_auroc):
    marks = {"H3K4me3": {"transformer": metric(auroc), "kmer_logistic": metric(kmer_auroc),
                         "stack": metric(auroc + 0.01)}}
    (folder / "metrics.json").write_text(json.dumps(classification_metrics(marks, n_train=1800)))
    return records.read_record(folder)


def test_learning_curve_names_each_curve_and_keeps_a_baseline_once_per_size(tmp_path):
    runs = [with_metrics(make_record(tmp_path, f"2026-12-02_{exp}_{size}", experiment=exp, mark="H3K4me3",
                               train_size=size), auroc, 0.8)
            for exp, auroc in (("scratch", 0.85), ("pretrained", 0.9)) for size in (250, 0)]
    curve = records.learning_curve(runs, "train_size")
    assert sorted(set(curve["curve"])) == ["k-mer LR", "pretrained", "pretrained stack", "scratch",
                                            "scratch stack"]
    assert len(curve) == 10 and list(curve.query("curve == 'k-mer LR'")["train_size"]) == [250, 1800]
    first = curve.iloc[0]
    assert (first["auroc"], first["auroc_low"], first["auroc_high"]) == (0.85, 0.83, 0.87)


def test_a_note_or_record_name_with_bars_spaces_or_newlines_keeps_its_row_and_link(tmp_path):
    finished(make_record(tmp_path, "2021-05-03_my run (2)", experiment="my run", input="csv",
                         note="a | b\nsecond line\\", mark="H3K4me3|x"))
    [row] = index_rows(tmp_path)
    cells = re.split(r"(?<![^\\]\\)\|", row)[1:-1]  # a bar not escaped by one backslash ends a cell
    assert len(cells) == len(records.INDEX_COLUMNS) and cells[-1] == " a \\| b second line\\\\ "
    assert "| H3K4me3\\|x |" in row
    assert "[2021-05-03_my run (2)](2021-05-03_my%20run%20%282%29/)" in row


def test_index_cell_folds_line_breaks_and_escapes_bars():
    assert records.index_cell("x|y\r\n  z\t") == "x\\|y z"
    assert records.index_link("a]b") == "[a\\]b](a%5Db/)"


def test_index_waits_for_another_writer_s_lock(tmp_path):
    import fcntl
    import os

    finished(make_record(tmp_path, "2021-05-03_a", experiment="a", input="csv"))
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    writer = threading.Thread(target=records.write_index, args=(tmp_path,))
    writer.start()
    writer.join(0.5)
    assert writer.is_alive() and not (tmp_path / "INDEX.md").exists()
    os.close(fd)
    writer.join(5)
    assert not writer.is_alive() and len(index_rows(tmp_path)) == 1


def trained(executed, name, aucs, **params):
    folder = make_record(executed, name, experiment=name[11:], **params)
    rows = "".join(f"{e}\t1.0\t{auc}\t0.8\t0.5\n" for e, auc in enumerate(aucs, 1))
    (folder / "history.tsv").write_text("epoch\tval_loss\tval_auc\tval_acc\tval_mcc\n" + rows)
    return records.read_record(folder)


def test_compare_at_epoch_takes_each_records_best_or_asked_epoch_and_labels_by_the_parameter(tmp_path):
    a = trained(tmp_path, "2026-01-01_k7", [0.7, 0.9, 0.8], mark="H3K4me3", kmers=[7])
    b = trained(tmp_path, "2026-01-01_k13", [0.6, 0.65, 0.95], mark="H3K4me3", kmers=[13])
    (b.path / "metrics.json").write_text(json.dumps(classification_metrics(
        {"H3K4me3": {"transformer": model_metrics(0.91, 0.7)}})))
    runs, table = records.compare_at_epoch([a, records.read_record(b.path)], "kmers")
    assert list(runs) == ["k7 (kmers=[7])", "k13 (kmers=[13])"]
    assert table["epoch"].tolist() == [2, 3] and table["kmers"].tolist() == ["[7]", "[13]"]
    assert table["test_auroc"].isna().tolist() == [True, False]
    assert records.compare_at_epoch([a], "kmers", 1)[1]["val_auc"].tolist() == [0.7]
    with pytest.raises(ValueError, match="2026-01-01_k7/history.tsv has no epoch 9; it has epochs 1-3"):
        records.compare_at_epoch([a], "kmers", 9)
    untrained = records.read_record(make_record(tmp_path, "2026-01-01_x", experiment="x", mark="H3K4me3"))
    with pytest.raises(ValueError, match="record 2026-01-01_x has no history.tsv: it was not trained"):
        records.compare_at_epoch([untrained], "kmers")


def test_model_record_is_the_named_record_beside_this_one_or_this_one(tmp_path):
    here = make_record(tmp_path, "2021-05-03_map", experiment="map")
    other = make_record(tmp_path, "2021-05-02_train", experiment="train")
    assert records.model_record("", here).path == here
    assert records.model_record("train", here).path == other
    with pytest.raises(FileNotFoundError):
        records.model_record("nothing", here)
