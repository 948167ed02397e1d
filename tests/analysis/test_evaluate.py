import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from seq2epi.analysis import baselines, evaluate
from seq2epi.data import sequence
from seq2epi.lab import metrics_file
from seq2epi.model import predict


def planted(n: int, seed: int):
    """Random 40-bp sequences; positives carry TTGACA, and the scores of a perfect model are the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(n)]
    seqs = [s[:10] + "TTGACA" + s[16:] if y else s for s, y in zip(seqs, labels, strict=True)]
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    return tokens, lengths, labels.astype(np.float32)


def test_evaluate_target_scores_the_transformer_beside_the_baselines():
    parts = {"train": planted(300, 0), "val": planted(100, 1), "test": planted(100, 2)}
    probs = {"val": parts["val"][2] * 0.8 + 0.1, "test": parts["test"][2] * 0.8 + 0.1}
    results, curves = evaluate.evaluate_target(parts, probs, n_boot=200)
    assert set(results) == {"transformer", "gc_content", "kmer_logistic", "stack"}
    assert results["transformer"]["auroc"] == 1.0 and results["transformer"]["mcc"] == 1.0
    assert results["transformer"]["ci95"]["auroc"] == (1.0, 1.0)
    assert 0.3 < results["gc_content"]["auroc"] < 0.7
    assert len(curves["kmer_logistic"][0]) == 100
    assert results["kmer_logistic"]["k_max"] in (3, 4, 6) and results["kmer_logistic"]["C"] > 0
    table = evaluate.summary_table({"H3K4me3": results})
    assert table.loc[0, "auroc"] == "1.000 [1.000, 1.000]" and len(table) == 4


def test_unlabelled_rows_of_a_target_are_left_out():
    parts = {"train": planted(300, 0), "val": planted(100, 1), "test": planted(100, 2)}
    two = {name: (t, n, np.stack([y, np.where(np.arange(len(y)) % 2, np.nan, y)], 1))
           for name, (t, n, y) in parts.items()}
    probs = {name: np.stack([two[name][2][:, 0]] * 2, 1) for name in ("val", "test")}
    results, curves = evaluate.evaluate_target(two, probs, target=1, n_boot=100)
    assert len(curves["transformer"][0]) == 50
    assert results["transformer"]["auroc"] == pytest.approx(1.0)


def predictions(seed: int, noise: float):
    """A predictions frame of 03_evaluate: 200 val and 200 test rows, scores = labels + seeded noise."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"split": ["val"] * 200 + ["test"] * 200, "row": np.arange(400),
                          "label_H3K4me3": rng.integers(0, 2, 400).astype(float)})
    frame["score_H3K4me3"] = frame["label_H3K4me3"] + np.random.default_rng(seed).normal(0, noise, 400)
    return frame


def test_an_ensemble_averages_members_and_is_scored_with_a_val_threshold():
    members = {f"seed{s}": predictions(s, 1.0) for s in range(5)}
    mean = evaluate.mean_predictions(members)
    assert np.allclose(mean["score_H3K4me3"], np.mean([m["score_H3K4me3"] for m in members.values()], 0))
    single = evaluate.score_predictions(members["seed0"], n_boot=100)["H3K4me3"]
    ensemble = evaluate.score_predictions(mean, n_boot=100)["H3K4me3"]
    assert ensemble["auroc"] > single["auroc"] + 0.05  # independent noise averages out
    assert {"ci95", "val_auroc", "threshold"} <= set(ensemble)


def test_an_ensemble_refuses_members_of_another_split():
    other = predictions(1, 1.0)
    other.loc[0, "split"] = "test"
    with pytest.raises(ValueError, match="b: its predictions hold other rows, labels or marks than a's"):
        evaluate.mean_predictions({"a": predictions(0, 1.0), "b": other})


def test_score_track_against_peaks_and_labelled_windows():
    starts = np.arange(0, 1000, 100)
    track = pd.DataFrame({"chrom": "c1", "start": starts, "end": starts + 100,
                          "score": np.linspace(0.05, 0.95, 10)})
    peaks = pd.DataFrame({"chrom": ["c1"], "start": [720], "end": [1000]})
    labelled = pd.DataFrame({"chrom": ["c1"] * 5 + ["c9"], "start": [0, 300, 500, 800, 700, 0],
                             "end": [200, 400, 600, 1000, 900, 100], "label": [0, 1, 0, 1, 1, 1],
                             "mark": ["K4", "K4", "K4", "K4", "K27", "K4"]})
    result = evaluate.score_track(track, {"c1": 1000}, "K4", peaks=peaks, labelled=labelled)
    assert result["peak_bins"] == {"fraction": 0.3, "auroc": 1.0}
    assert set(result) == {"peak_bins", "labelled_all"}  # the K27 window and the one on c9 are left out
    assert result["labelled_all"]["auroc"] == 0.75 and result["labelled_all"]["acc"] == 0.5
    held_out = ([], ["c1:500-1000"])
    by_split = evaluate.score_track(track, {"c1": 1000}, "K4", labelled=labelled, held_out=held_out)
    assert sorted(by_split) == ["labelled_test", "labelled_train"]
    assert by_split["labelled_test"]["auroc"] == by_split["labelled_train"]["auroc"] == 1.0
    assert evaluate.score_track(track, {"c1": 1000}, "K4") == {}
    genes = pd.DataFrame({"chrom": ["c1", "c1"], "start": [650, 0], "end": [900, 200], "strand": ["+", "-"]})
    at_tss = evaluate.score_track(track, {"c1": 1000}, "K4", genes=genes, tss_flanks=(100, 100))
    # TSS 650 (+) reaches bins 500-800, TSS 199 (-) bins 100-300: 5 of 10 bins, 11 of 25 pairs ranked above
    assert at_tss == {"tss_bins": {"fraction": 0.5, "auroc": pytest.approx(0.44)}}


def test_calibrate_marks_fits_val_and_reports_test_before_and_after():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (2, 3000, 2))
    y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(float)
    y[:, ::4, 1] = np.nan  # the second mark is unlabelled on a quarter of the windows
    probs = 1 / (1 + np.exp(-z * np.array([4.0, 1.0])))  # mark 1 over-confident, mark 2 calibrated
    labels, probs = {"val": y[0], "test": y[1]}, {"val": probs[0], "test": probs[1]}
    temperature, report = evaluate.calibrate_marks(labels, probs, ["H3K4me3", "H3K9ac"])
    assert temperature[0] == pytest.approx(4.0, rel=0.1) and temperature[1] == pytest.approx(1.0, abs=0.1)
    before, after = report["H3K4me3"]["before"], report["H3K4me3"]["after"]
    assert after["ece"] < before["ece"] / 2 and after["brier"] < before["brier"]
    assert report["H3K9ac"]["after"]["ece"] == pytest.approx(report["H3K9ac"]["before"]["ece"], abs=0.02)


# --- the stack, the test windows that overlap no training window, and both strands (issue 12)

def test_the_stack_weighs_two_models_on_validation_and_beats_either_alone():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (2, 2000))
    signal = lambda noise: 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(0, noise, y.shape))))  # noqa: E731
    probs = np.stack([signal(1.0), signal(1.5), rng.random(y.shape)], -1)  # [split, n, models]
    stack = evaluate.Stack().fit(probs[0], y[0])
    weights = stack.weights(["a", "b", "noise"])
    assert weights["a"] > weights["b"] > 5 * abs(weights["noise"])
    stacked = roc_auc_score(y[1], stack.score(probs[1]))
    assert stacked > max(roc_auc_score(y[1], probs[1, :, m]) for m in range(2)) + 0.01
    timid = 1 / (1 + np.exp(-0.02 * np.log(probs / (1 - probs))))  # model a's logits shrunk 50-fold
    timid[..., 1:] = probs[..., 1:]
    again = evaluate.Stack().fit(timid[0], y[0])
    assert roc_auc_score(y[1], again.score(timid[1])) == pytest.approx(stacked, abs=0.002)


def test_evaluate_target_stacks_the_transformer_with_the_kmer_regression():
    parts = {"train": planted(300, 0), "val": planted(100, 1), "test": planted(100, 2)}
    probs = {"val": parts["val"][2] * 0.8 + 0.1, "test": parts["test"][2] * 0.8 + 0.1}
    results, curves = evaluate.evaluate_target(parts, probs, n_boot=100)
    assert results["stack"]["auroc"] > 0.99 and set(results["stack"]["weights"]) == {
        "transformer", "kmer_logistic", "intercept"}
    assert results["stack"]["weights"]["transformer"] > 0 and len(curves["stack"][1]) == 100
    kmer = results["kmer_logistic"]
    assert kmer["C_at_edge"] == (kmer["C"] in (min(baselines.KMER_CS), max(baselines.KMER_CS)))


def test_overlap_free_metrics_keep_the_validation_threshold_on_the_clean_test_rows():
    parts = {"train": planted(300, 0), "val": planted(100, 1), "test": planted(100, 2)}
    y_test = parts["test"][2]
    overlapping = np.arange(100) < 30
    noise = np.random.default_rng(0).random(100)
    test = np.where(overlapping, noise, y_test * 0.8 + 0.1)  # perfect on the rows that overlap nothing
    probs = {"val": parts["val"][2] * 0.8 + 0.1, "test": test}
    results, _ = evaluate.evaluate_target(parts, probs, n_boot=100, overlap_free=~overlapping)
    transformer = results["transformer"]
    assert transformer["n"] == 100 and transformer["overlap_free"]["n"] == 70
    assert transformer["auroc"] < 0.99 and transformer["overlap_free"]["auroc"] == 1.0
    assert transformer["overlap_free"]["threshold"] == transformer["threshold"]
    assert all("overlap_free" in m for m in results.values())
    table = evaluate.side_by_side({"K4": results})
    assert table.loc[0, "auroc overlap-free"] == "1.000 [1.000, 1.000]"
    assert table.loc[0, "n"] == 100 and table.loc[0, "n overlap-free"] == 70
    one_class = ~overlapping & (y_test == 1)
    results, _ = evaluate.evaluate_target(parts, probs, n_boot=100, overlap_free=one_class)
    assert results["transformer"]["overlap_free"] == {"n": int(one_class.sum())}  # no AUROC without negatives
    assert evaluate.side_by_side({"K4": results}).loc[0, "auroc overlap-free"] == ""
    without, _ = evaluate.evaluate_target(parts, probs, n_boot=100)
    assert "overlap_free" not in without["transformer"]


def test_strand_readings_match_predicts_and_are_scored_side_by_side(toy_model):
    model = toy_model()
    parts = {name: planted(60, seed) for seed, name in enumerate(("train", "val", "test"))}
    readings = evaluate.strand_probs(model, parts, batch_size=16)
    for name in ("val", "test"):
        tokens, lengths, _ = parts[name]
        forward = predict.predict(model, tokens, lengths)
        np.testing.assert_allclose(readings["forward"][name], forward, atol=1e-6)
        both = predict.predict(model, tokens, lengths, rc_average=True)
        np.testing.assert_allclose(readings["rc_average"][name], both, atol=1e-6)
    assert not np.allclose(readings["forward"]["test"], readings["rc_average"]["test"])
    scored = evaluate.score_strands(parts, readings, n_boot=50, overlap_free=np.arange(60) % 3 > 0)
    assert set(scored) == {"forward", "rc_average"} and scored["forward"]["overlap_free"]["n"] == 40
    main, _ = evaluate.evaluate_target(parts, readings["forward"], n_boot=50)
    assert scored["forward"]["auroc"] == main["transformer"]["auroc"]
    table = evaluate.side_by_side({"K4": scored}, what="reading")
    assert table["reading"].tolist() == ["forward", "rc_average"]


def planted_marks():
    """Planted train/val/test parts, and the probabilities of a perfect model for them."""
    parts = {"train": planted(300, 0), "val": planted(100, 1), "test": planted(100, 2)}
    return parts, {name: parts[name][2] * 0.8 + 0.1 for name in ("val", "test")}


def test_split_parts_and_overlap_free_rows_follow_the_dataset_split():
    split = np.array(["train", "test", "val", "test"])
    dataset = {"tokens": np.arange(8).reshape(4, 2), "lengths": np.array([2, 2, 1, 2]),
               "labels": np.array([1.0, 0.0, 1.0, 1.0]), "split": split}
    parts = evaluate.split_parts(dataset)
    assert parts["test"][0].tolist() == [[2, 3], [6, 7]] and parts["val"][1].tolist() == [1]
    windows = pd.DataFrame({"overlaps_train": [False, True, False, False]})
    assert evaluate.overlap_free_rows(windows, split).tolist() == [False, True]
    assert evaluate.overlap_free_rows(windows.drop(columns="overlaps_train"), split) is None


def test_metrics_json_holds_the_headline_mark_every_mark_and_how_they_were_got(tmp_path):
    parts, probs = planted_marks()
    readings = {"forward": probs, "rc_average": probs}
    results, curves, strands = evaluate.evaluate_marks(parts, probs, readings, ["H3K4me3"], n_boot=50)
    assert set(strands["H3K4me3"]) == {"forward", "rc_average"} and set(curves) == {"H3K4me3"}
    overlap_free = np.arange(100) % 4 > 0
    summary = evaluate.write_metrics(tmp_path / "metrics.json", results, strands, {}, parts, "H3K27me3", 3,
                                     "mcc", "fp32", False, overlap_free)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert list(written) == ["transformer", "gc_content", "kmer_logistic", "stack", "marks", "best_epoch",
                             "n_train", "n_test", "threshold_criterion", "precision", "calibration",
                             "rc_average", "strand", "n_test_overlapping_train"]
    assert written["transformer"]["auroc"] == 1.0 == summary["marks"]["H3K4me3"]["transformer"]["auroc"]
    assert (written["n_train"], written["n_test"], written["n_test_overlapping_train"]) == (300, 100, 25)
    assert evaluate.baseline_notes(results)[0].startswith("H3K4me3: k-mer LR on 1..")
    assert summary == written == metrics_file.read_metrics(tmp_path / "metrics.json")
    with pytest.raises(ValueError, match="metrics.json schema: key precision is null, expected a string"):
        evaluate.write_metrics(tmp_path / "metrics.json", results, strands, {}, parts, "H3K4me3", 3, "mcc",
                               None, False, overlap_free)


def test_predictions_keep_every_val_and_test_row_with_its_label_and_score(tmp_path):
    parts, probs = planted_marks()
    split = np.array(["train"] * 300 + ["val"] * 100 + ["test"] * 100)
    evaluate.write_predictions(tmp_path / "p.tsv.gz", split, parts, probs, ["H3K4me3"])
    table = pd.read_csv(tmp_path / "p.tsv.gz", sep="\t")
    assert list(table.columns) == ["split", "row", "label_H3K4me3", "score_H3K4me3"]
    assert table["row"].tolist() == list(range(300, 500))
    assert np.allclose(table["score_H3K4me3"], np.r_[probs["val"], probs["test"]])


def test_calibrate_checkpoint_stores_temperature_and_thresholds_beside_the_model(tmp_path, toy_model):
    import torch

    from seq2epi.model import calibrate, train

    checkpoint = tmp_path / "best.pt"
    train.save_checkpoint({"model": toy_model().state_dict(), "spec": {"window": 40}}, checkpoint)
    parts, probs = planted_marks()
    noisy = {name: np.clip(p + np.random.default_rng(1).normal(0, 0.3, len(p)), 0.01, 0.99)
             for name, p in probs.items()}
    results = {"H3K4me3": {"transformer": {"threshold": 0.5}}}
    temperature, report = evaluate.calibrate_checkpoint(checkpoint, results, parts, noisy, ["H3K4me3"])
    spec = torch.load(checkpoint, weights_only=True)["spec"]
    assert spec["window"] == 40 and spec["thresholds"] == [0.5]
    assert spec["temperature"] == pytest.approx(temperature.tolist())
    saved = json.loads((tmp_path / calibrate.FILENAME).read_text())
    assert saved["fitted_on"] == "val" and saved["thresholds"] == [pytest.approx(0.5)]
    assert set(report["H3K4me3"]) == {"temperature", "n_bins", "before", "after"}
