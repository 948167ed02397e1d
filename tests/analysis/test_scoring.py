import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import RECORD_MARKS, RECORD_STRIDE, RECORD_WINDOW, make_record, make_toy_model

from seq2epi.analysis import scoring
from seq2epi.data import datasets, readers
from seq2epi.data.sequence import PAD, encode
from seq2epi.lab import records
from seq2epi.model import calibrate, train
from seq2epi.model.predict import predict

DATA = Path(__file__).parents[1] / "data"
MARKS, WINDOW, STRIDE = RECORD_MARKS, RECORD_WINDOW, RECORD_STRIDE


def load(record, **kw):
    """The record's predictor (Record.predictor)."""
    return records.Record.find(record).predictor(**kw)


def gc(tokens, lengths=None):
    """A stand-in predictor: each window's fractions of G and of C over its bases, [n, 2]."""
    lengths = (tokens != PAD).sum(1) if lengths is None else lengths
    return np.stack([(tokens == 2).sum(1) / lengths, (tokens == 1).sum(1) / lengths], 1).astype(np.float32)


def fraction(seq: str, base: str) -> float:
    return seq.upper().count(base) / len(seq)


# ---- scoring sequences ----


def score(entries, chunk=2048, per_window=False, min_length=5):
    parts = list(scoring.score_sequences(gc, entries, ["G", "C"], [0.3, 0.3], WINDOW, STRIDE, min_length,
                                         chunk=chunk, per_window=per_window))
    return (pd.concat([p[0] for p in parts], ignore_index=True),
            pd.concat([p[1] for p in parts], ignore_index=True) if per_window else None)


def test_tiled_sequences_report_max_and_mean_and_short_ones_are_padded():
    with pytest.warns(UserWarning, match="duplicate"):
        entries = list(readers.read_sequences(DATA / "scoring.fa"))
    table, windows = score(entries, per_window=True)
    assert table["id"].tolist() == ["a", "b", "c", "a_2", "short"]
    b = entries[1].sequence
    starts = [0, 5, 10, 15, 20, 25, 30, 35, 40, 41]
    expected = [fraction(b[s : s + WINDOW], "G") for s in starts]
    row = table.iloc[1]
    assert row["windows"] == 10 and row["G"] == pytest.approx(max(expected), abs=1e-6)
    assert row["G_mean"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert row["G_call"] == int(max(expected) >= 0.3)
    assert windows[windows["id"] == "b"]["start"].tolist() == starts
    # a 22 bp sequence is tiled too; the 26 bp one is two windows plus one at its end
    assert table.iloc[0]["windows"] == 3 and windows[windows["id"] == "a"]["end"].tolist() == [20, 25, 26]
    assert table.iloc[3]["C"] == pytest.approx(max(fraction(entries[3].sequence[s : s + 20], "C")
                                                   for s in (0, 2)))


def test_only_n_and_too_short_sequences_score_empty():
    with pytest.warns(UserWarning, match="duplicate"):
        table, _ = score(readers.read_sequences(DATA / "scoring.fa"))
    empty = table[table["id"].isin(["c", "short"])]
    assert (empty["windows"] == 0).all() and empty["G"].isna().all() and empty["G_call"].isna().all()


def test_batches_across_records_do_not_change_scores():
    entries = [readers.Entry(f"s{i}", s) for i, s in enumerate(pd.read_csv(DATA / "scoring.csv")["sequence"])]
    one, _ = score(entries)
    small, _ = score(entries, chunk=3)
    pd.testing.assert_frame_equal(one, small)


def test_a_short_sequence_scores_as_alone_in_a_batch_of_long_ones(record):
    scorer = load(record)
    predictor = load(record, batch_size=4)
    entries = [readers.Entry("long", "ACGTTTGGCCAAGGTTCCAAGGCCGGACGTACGTTTGG"),
               readers.Entry("short", "GGCCAAGGTTCC")]
    table, = (t for t, _ in scoring.score_sequences(predictor, entries, scorer.marks, scorer.thresholds,
                                                     scorer.window, scorer.stride, scorer.min_length))
    alone = predict(scorer.model, encode("GGCCAAGGTTCC")[None])
    assert table.iloc[1][MARKS].to_numpy(float) == pytest.approx(alone[0], abs=1e-5)


# ---- the record ----

def test_a_record_without_spec_reads_it_from_its_files(tmp_path):
    record = make_record(tmp_path / "old", spec=False, input="csv", crop_length=16)
    assert load(record).window == 16  # the crop, not genome mode's window
    params = yaml.safe_load((record / "parameters.yaml").read_text())
    (record / "parameters.yaml").write_text(yaml.safe_dump(params | {"crop_length": 0}))
    (record / records.DATASET).unlink()
    with pytest.raises(FileNotFoundError, match="record old trained on whole csv sequences .crop_length 0.*"
                                                "dataset.npz, which is missing"):
        load(record)
    datasets.save_dataset(record / records.DATASET, np.zeros((3, 30)), [30, 24, 12], [1, 0, 1],
                          ["val", "train", "train"])
    scorer = load(record)
    assert scorer.window == 24 and scorer.thresholds.tolist() == [0.4, 0.6]  # the longest in training


def test_the_checkpoint_spec_wins_over_what_the_record_files_say_now(record):
    params = yaml.safe_load((record / "parameters.yaml").read_text())
    (record / "parameters.yaml").write_text(yaml.safe_dump(params | {"window": 1000, "predict_stride": 7}))
    (record / "metrics.json").unlink()
    torch_spec = records.Record.find(record).spec()
    assert (torch_spec["window"], torch_spec["predict_stride"]) == (WINDOW, STRIDE)
    scorer = load(record)
    assert (scorer.window, scorer.stride) == (WINDOW, STRIDE) and scorer.thresholds.tolist() == [0.4, 0.6]


def test_the_predictor_carries_the_record(record, tmp_path, monkeypatch):
    scorer = load(record)
    assert scorer.marks == MARKS and (scorer.window, scorer.stride) == (WINDOW, STRIDE)
    assert scorer.thresholds.tolist() == [0.4, 0.6] and scorer.temperature is None
    assert not scorer.model.training and scorer.record == "2026-01-01_toy"
    assert scorer(encode("ACGTTTGGCCAAGGTTCCAAGG")[None]).shape == (1, 2)
    for name in ("parameters", "notebooks"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    assert load("toy").record == "2026-01-01_toy"
    newer = make_record(tmp_path / "executed" / "2026-01-02_toy")
    assert load("toy").record == newer.name  # an experiment id means its newest record
    (newer / "FAILED").write_text("03_evaluate.ipynb failed\n")
    with pytest.raises(ValueError, match="2026-01-02_toy is of a run that did not finish"):
        load("toy")
    assert load(record.name).record == record.name  # an older record by its name


def test_a_window_override_is_checked_against_the_model(record):
    assert load(record, window=30).window == 30
    with pytest.raises(ValueError, match=r"record 2026-01-01_toy: a window of 4 bp is outside what its model "
                                         r"takes \(5 bp, its largest k-mer, to 5000 bp"):
        load(record, window=4)
    with pytest.raises(ValueError, match="a window of 5001 bp is outside"):
        load(record, window=5001)


def test_cuda_without_a_gpu_says_so(record, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for, but this machine has no CUDA GPU"):
        load(record, device="cuda")


def test_the_command_with_cuda_on_a_machine_without_it_says_so(record, tmp_path, monkeypatch, capsys):
    from seq2epi.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["predict", str(record), str(DATA / "scoring.fa"), "--out", str(tmp_path / "s.tsv"),
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "version" not in err and len(err.strip().splitlines()) == 1


def test_thresholds_and_temperatures_added_by_03_travel_in_the_checkpoint(record):
    train.update_spec(record / records.CHECKPOINT, thresholds=[0.3, 0.7], temperature=[2.0, 0.5])
    (record / "metrics.json").unlink()
    scorer = load(record)
    assert scorer.temperature.tolist() == [2.0, 0.5]
    moved = calibrate.apply_temperature(np.array([[0.3, 0.7]]), [2.0, 0.5])[0]
    assert scorer.thresholds == pytest.approx(moved)


def test_a_failed_record_one_without_thresholds_or_without_checkpoint_is_refused(record):
    (record / "FAILED").write_text("02_train.ipynb failed: CUDA out of memory\n")
    with pytest.raises(ValueError, match="did not finish .its FAILED file: 02_train.ipynb failed: CUDA"):
        load(record)
    (record / "FAILED").unlink()
    train.update_spec(record / records.CHECKPOINT, thresholds=None)
    (record / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="2026-01-01_toy has no validation-chosen thresholds: "
                                                "03_evaluate did not run"):
        scoring.predict_file(load(record), DATA / "scoring.csv", record / "out.tsv", progress=False)
    assert load(record).thresholds is None and not (record / "out.tsv").exists()  # a map needs none
    (record / records.CHECKPOINT).unlink()
    with pytest.raises(FileNotFoundError, match="has no checkpoint artifacts/checkpoints/best.pt"):
        load(record)


def test_a_checkpoint_of_another_model_version_names_the_missing_keys(tmp_path):
    state = make_toy_model(kmers=(5,), n_targets=2).state_dict()
    del state["pool.p"]
    record = make_record(tmp_path / "r", state=state)
    with pytest.raises(ValueError, match=r"from another version of the model: it lacks pool.p"):
        load(record)


def test_calibrated_record_reports_calibrated_probabilities_with_the_same_calls(record):
    raw = load(record)
    calibrate.save(record / "artifacts" / "checkpoints" / records.CALIBRATION.name, MARKS, [2.0, 0.5])
    scorer = load(record)
    tokens = encode("ACGTTTGGCCAAGGTTCCAAGGCCGG")[None]
    expected = calibrate.apply_temperature(raw(tokens), [2.0, 0.5])
    assert scorer(tokens) == pytest.approx(expected, abs=1e-6)
    moved = calibrate.apply_temperature(raw.thresholds[None], [2.0, 0.5])[0]
    assert scorer.thresholds == pytest.approx(moved)
    calls = scorer(tokens) >= scorer.thresholds
    assert (calls == (raw(tokens) >= raw.thresholds)).all()


def test_predict_file_writes_the_table_and_scores_a_labelled_csv(record, tmp_path):
    scorer = load(record)
    result = scoring.predict_file(scorer, DATA / "scoring.csv", tmp_path / "out.tsv",
                                  per_window=tmp_path / "windows.tsv.gz", progress=False)
    table = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert result["sequences"] == len(table) == 6
    assert list(table.columns[:5]) == ["id", "length", "n_fraction", "windows", "label"]
    calls = (table[MARKS].to_numpy() >= scorer.thresholds).astype(int)
    assert (table[[f"{m}_call" for m in MARKS]].to_numpy() == calls).all()
    assert len(pd.read_csv(tmp_path / "windows.tsv.gz", sep="\t")) == table["windows"].sum()
    metrics = result["metrics"]["H3K4me3"]
    low, high = metrics["ci95"]["auroc"]
    assert metrics["n"] == 6 and low <= metrics["auroc"] <= high


def test_predict_file_warns_of_sequences_it_cannot_score(record, tmp_path):
    (tmp_path / "n.fa").write_text(">ok\nACGTTTGGCCAAGGTTCCAAGG\n>gap\nNNNNNNNNNNNNNNNNNNNNNNNN\n")
    with pytest.warns(UserWarning, match=r"n.fa: 1 sequence\(s\) have no window to score .*: gap"):
        result = scoring.predict_file(load(record), tmp_path / "n.fa", tmp_path / "o.tsv",
                                      progress=False)
    assert result["unscored"] == 1 and not list(tmp_path.glob(".tmp-*"))


# ---- the command ----


def test_cli_predict_and_score_variants(record, tmp_path, capsys):
    from seq2epi.cli import main

    assert main(["predict", str(record), str(DATA / "scoring.csv"), "--out", str(tmp_path / "s.tsv"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "6 sequences" in out and "H3K4me3: AUROC" in out
    shutil.copy(DATA / "tiny.vcf", tmp_path / "t.vcf")
    assert main(["score-variants", str(record), "--vcf", str(tmp_path / "t.vcf"), "--fasta",
                 str(DATA / "tiny.fa"), "--out", str(tmp_path / "v.tsv"), "--quiet"]) == 0
    assert "8 records" in capsys.readouterr().out
    assert main(["predict", str(record), str(DATA / "scoring.bed"), "--out", str(tmp_path / "b.tsv")]) == 2
    assert "give the genome they lie on (--fasta)" in capsys.readouterr().err


@pytest.mark.slow
def test_the_notebook_stage_scores_sequences_and_variants_into_a_record(tmp_path, monkeypatch):
    from seq2epi.cli import main

    repo = Path(__file__).resolve().parents[2]
    for folder in ("notebooks", "parameters"):
        shutil.copytree(repo / folder, tmp_path / folder)
    model = make_record(tmp_path / "executed" / "2026-01-01_toy")
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    (tmp_path / "parameters" / "score_toy.yaml").write_text(yaml.safe_dump(
        {"data_dir": str(data), "score_record": model.name, "score_input": "scoring.csv",
         "score_fasta": "tiny.fa", "score_vcf": "tiny.vcf", "score_tiled": True, "score_logos": 2}))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "score_toy", "--stages", "06", "-q"]) == 0
    record = next(p for p in (tmp_path / "executed").iterdir() if p.name.endswith("score_toy"))
    assert len(pd.read_csv(record / "scores.tsv.gz", sep="\t")) == 6
    variants = pd.read_csv(record / "variants.tsv.gz", sep="\t")
    assert "tiled_diff" in variants and (record / "variants.vcf.gz.tbi").exists()
    for figure in ("score_distributions", "variant_differences", "variant_logos"):
        assert (record / "figures" / f"{figure}.png").exists(), figure


def test_one_class_labels_say_why_there_are_no_metrics(record, tmp_path):
    rows = ["id,sequence,label", "a,ACGTTTGGCCAAGGTTCCAAGG,1", "b,GGCCAAGGTTCCAAGGTTAC,1"]
    (tmp_path / "one.csv").write_text("\n".join(rows) + "\n")
    result = scoring.predict_file(load(record), tmp_path / "one.csv", tmp_path / "o.tsv",
                                  progress=False)
    assert "metrics" not in result
    assert result["no_metrics"].endswith("one.csv: no metrics, as the labelled sequences scored all carry "
                                         "label 1; metrics need both 0 and 1.")


def test_predict_summary_counts_scored_and_unscored():
    assert scoring.predict_summary({"sequences": 9, "unscored": 0}) == "9 sequences scored"
    assert scoring.predict_summary({"sequences": 9, "unscored": 2}) == \
        "7 of 9 sequences scored (2 had no window to score and are left empty)"


def test_cli_names_a_bad_chrom_alias_and_prints_warnings_plainly(record, tmp_path, capsys):
    from seq2epi.cli import main

    args = ["score-variants", str(record), "--vcf", str(DATA / "tiny.vcf"), "--fasta", str(DATA / "tiny.fa"),
            "--out", str(tmp_path / "v.tsv"), "--quiet"]
    assert main(args + ["--chrom-alias", "1:chr1"]) == 2
    assert "seq2epi: chromosome alias '1:chr1' is not VCF=FASTA; expected pairs like 1=chr01,2=chr02." in \
        capsys.readouterr().err
    (tmp_path / "n.fa").write_text(">ok\nACGTTTGGCCAAGGTTCCAAGG\n>gap\nNNNNNNNNNNNNNNNNNNNNNNNN\n")
    with warnings.catch_warnings():  # shown as outside pytest, which records them instead
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: \
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
        assert main(["predict", str(record), str(tmp_path / "n.fa"), "--out", str(tmp_path / "s.tsv"),
                     "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "UserWarning: " in err and ".py:" not in err
    assert "1 of 2 sequences scored (1 had no window to score" in out
