"""Score the transformer and the baselines on the test split, each with its threshold chosen on validation,
on all test windows and on those that overlap no training window; stack the transformer with the k-mer
regression on validation; read both strands; calibrate the transformer's probabilities on validation."""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from seq2epi.analysis import baselines, tracks
from seq2epi.data import datasets, genomewide, intervals, sequence
from seq2epi.data.genes import tss_spans
from seq2epi.lab import metrics, metrics_file
from seq2epi.lab.io import atomic_path
from seq2epi.model import calibrate, predict, train

_KEYS = ("auroc", "auprc", "mcc", "acc")


def _labelled(part: tuple, target: int) -> tuple:
    tokens, lengths, labels = part
    labels = labels.reshape(len(labels), -1)[:, target]
    rows = ~np.isnan(labels)
    return tokens[rows], lengths[rows], labels[rows].astype(int), rows


def _column(probs: dict, target: int, val_rows: np.ndarray, test_rows: np.ndarray) -> tuple:
    """(val, test) scores of one target from probabilities [n] or [n, targets], labelled rows only."""
    return tuple(probs[name].reshape(len(probs[name]), -1)[rows, target]
                 for name, rows in (("val", val_rows), ("test", test_rows)))


def _at(y, score, threshold: float, n_boot: int, seed: int) -> dict:
    result = metrics.binary_metrics(y, score, threshold)
    result["ci95"] = metrics.bootstrap_ci(y, score, threshold, n_boot, seed)
    result["n"] = int(np.size(y))
    return result


def _test_metrics(y_val, val_score, y_test, test_score, criterion: str, n_boot: int, seed: int,
                  overlap_free: np.ndarray | None = None) -> dict:
    """The protocol: the threshold chosen on validation, test metrics at it with bootstrap 95 % intervals;
    with `overlap_free` (a mask of the test rows), the same at the same threshold on those rows alone (only
    their count when they lack a class)."""
    threshold = metrics.choose_threshold(y_val, val_score, criterion)
    result = _at(y_test, test_score, threshold, n_boot, seed)
    if overlap_free is not None:
        y, score = np.asarray(y_test)[overlap_free], np.asarray(test_score)[overlap_free]
        both = 0 < y.sum() < len(y)
        result["overlap_free"] = _at(y, score, threshold, n_boot, seed) if both else {"n": int(len(y))}
    return result


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Stack:
    """A logistic regression on the standardised logits of several models' probabilities [n, models], fitted
    on validation: how much of each model to trust, learned where the test split is not looked at (the
    standardising keeps a model with timid logits from being out-weighed by the penalty alone)."""

    def fit(self, probs, labels):
        self.model = make_pipeline(StandardScaler(), LogisticRegression()).fit(_logit(probs), labels)
        return self

    def score(self, probs) -> np.ndarray:
        return self.model.predict_proba(_logit(probs))[:, 1]

    def weights(self, names) -> dict:
        """The fitted coefficient of each model's standardised logit, and the intercept."""
        regression = self.model[-1]
        coef = dict(zip(names, regression.coef_[0].tolist(), strict=True))
        return coef | {"intercept": float(regression.intercept_[0])}


def evaluate_target(parts: dict, probs: dict, target: int = 0, criterion: str = "mcc", n_boot: int = 1000,
                    seed: int = 0, overlap_free: np.ndarray | None = None) -> tuple[dict, dict]:
    """Test metrics (with bootstrap intervals) of the transformer, both baselines and their stack for one
    target.

    `parts` maps train/val/test to (tokens, lengths, labels); `probs` maps val/test to the transformer's
    probabilities ([n] or [n, targets]). Rows unlabelled (NaN) for the target are left out. The stack is a
    Stack of the transformer and the k-mer regression fitted on validation, its threshold chosen there too.
    `overlap_free`, a mask of the test rows (windows overlapping no training window), adds each model's
    metrics on those rows under "overlap_free". Returns the metrics per model and the test (labels, scores)
    per model for the curves.
    """
    train, val, test = (_labelled(parts[name], target) for name in ("train", "val", "test"))
    gc = baselines.GCContent().fit(*train[:3])
    kmer, _ = baselines.select_kmer_logistic(train[:3], val[:3], seed=seed)
    transformer = _column(probs, target, val[3], test[3])
    kmer_scores = (kmer.score(*val[:2]), kmer.score(*test[:2]))
    pairs = [np.stack(pair, 1) for pair in zip(transformer, kmer_scores, strict=True)]
    stack = Stack().fit(pairs[0], val[2])
    scores = {"transformer": transformer,
              "gc_content": (gc.score(*val[:2]), gc.score(*test[:2])),
              "kmer_logistic": kmer_scores,
              "stack": (stack.score(pairs[0]), stack.score(pairs[1]))}
    free = None if overlap_free is None else np.asarray(overlap_free, bool)[test[3]]
    results, curves = {}, {}
    for name, (val_score, test_score) in scores.items():
        results[name] = _test_metrics(val[2], val_score, test[2], test_score, criterion, n_boot, seed, free)
        curves[name] = (test[2], test_score)
    C = float(kmer.model[-1].C)  # k and C chosen on validation; at the grid's edge, the best may lie beyond
    results["kmer_logistic"].update(k_max=kmer.k_max, C=C, C_at_edge=baselines.at_grid_edge(C))
    results["stack"]["weights"] = stack.weights(("transformer", "kmer_logistic"))
    return results, curves


def strand_probs(model, parts: dict, **predict_args) -> dict:
    """Val and test probabilities read on the forward strand alone and averaged with the reverse
    complement's: {"forward": {"val": p, "test": p}, "rc_average": {...}}; predict_args go to
    predict.predict (rc_average=True there gives the second reading)."""
    readings = {"forward": {}, "rc_average": {}}
    for name in ("val", "test"):
        tokens, lengths = parts[name][:2]
        forward = predict.predict(model, tokens, lengths, **predict_args)
        reverse = sequence.reverse_complement(tokens, lengths)
        reverse = predict.predict(model, reverse, lengths, **predict_args)
        readings["forward"][name], readings["rc_average"][name] = forward, (forward + reverse) / 2
    return readings


def score_strands(parts: dict, readings: dict, target: int = 0, criterion: str = "mcc", n_boot: int = 1000,
                  seed: int = 0, overlap_free: np.ndarray | None = None) -> dict:
    """The transformer's test metrics under each reading of strand_probs, by evaluate_target's protocol."""
    val, test = (_labelled(parts[name], target) for name in ("val", "test"))
    free = None if overlap_free is None else np.asarray(overlap_free, bool)[test[3]]
    results = {}
    for reading, probs in readings.items():
        val_score, test_score = _column(probs, target, val[3], test[3])
        results[reading] = _test_metrics(val[2], val_score, test[2], test_score, criterion, n_boot, seed,
                                         free)
    return results


def _cell(m: dict, key: str) -> str:
    if key not in m:
        return ""
    low, high = m["ci95"][key]
    return f"{m[key]:.3f} [{low:.3f}, {high:.3f}]"


def summary_table(results: dict) -> pd.DataFrame:
    """One row per (mark, model): AUROC, AUPRC, MCC, ACC with their 95 % intervals, and the threshold."""
    rows = []
    for mark, per_model in results.items():
        for name, m in per_model.items():
            row = {"mark": mark, "model": name, "threshold": m["threshold"]}
            row.update({key: _cell(m, key) for key in _KEYS})
            rows.append(row)
    return pd.DataFrame(rows)


def side_by_side(results: dict, keys=("auroc", "mcc"), what: str = "model") -> pd.DataFrame:
    """One row per (mark, model): each metric [95 % CI] on all test windows beside the same on the test
    windows that overlap no training window, with both counts; `results` as summary_table's (or
    score_strands' per mark, what="reading")."""
    rows = []
    for mark, per_model in results.items():
        for name, m in per_model.items():
            free = m.get("overlap_free", {})
            row = {"mark": mark, what: name, "n": m["n"], "n overlap-free": free.get("n")}
            for key in keys:
                row[key], row[f"{key} overlap-free"] = _cell(m, key), _cell(free, key)
            rows.append(row)
    return pd.DataFrame(rows)


def mean_predictions(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """An ensemble's predictions: the members' scores averaged (frames of 03_evaluate's predictions.tsv.gz,
    keyed by record); every member must hold the same val/test rows, labels and marks (one split)."""
    (first_name, first), *_ = frames.items()
    keys = [c for c in first.columns if not c.startswith("score_")]
    scores = [c for c in first.columns if c.startswith("score_")]
    for name, frame in frames.items():
        if list(frame.columns) != list(first.columns) or not frame[keys].equals(first[keys]):
            raise ValueError(f"{name}: its predictions hold other rows, labels or marks than {first_name}'s; "
                             "an ensemble needs records of one dataset and split")
    mean = first[keys].copy()
    mean[scores] = np.mean([frame[scores].to_numpy() for frame in frames.values()], axis=0)
    return mean


def score_predictions(frame: pd.DataFrame, criterion: str = "mcc", n_boot: int = 1000, seed: int = 0) -> dict:
    """Per mark of a predictions frame: the threshold chosen on its val rows, test metrics with bootstrap
    intervals, and the validation AUROC."""
    results = {}
    for column in (c for c in frame.columns if c.startswith("label_")):
        mark = column.removeprefix("label_")
        labelled = frame[frame[column].notna()]
        val, test = (labelled[labelled["split"] == name] for name in ("val", "test"))
        y_val, y_test = val[column].astype(int), test[column].astype(int)
        val_score, test_score = val[f"score_{mark}"], test[f"score_{mark}"]
        results[mark] = _test_metrics(y_val, val_score, y_test, test_score, criterion, n_boot, seed)
        results[mark]["val_auroc"] = metrics.binary_metrics(y_val, val_score)["auroc"]
    return results


def _bins_inside(track: pd.DataFrame, spans: pd.DataFrame) -> dict:
    """The fraction of the track's bins overlapping `spans`, and the track's AUROC for them."""
    inside = intervals.overlaps(track, spans)
    both = 0 < inside.sum() < inside.size
    return {"fraction": float(inside.mean()),
            "auroc": float(roc_auc_score(inside, track["score"])) if both else float("nan")}


def score_track(track: pd.DataFrame, chrom_sizes: dict[str, int], mark: str,
                peaks: pd.DataFrame | None = None, labelled: pd.DataFrame | None = None,
                held_out: tuple[list, list] | None = None, genes: pd.DataFrame | None = None,
                tss_flanks: tuple[int, int] = (1000, 1000)) -> dict:
    """Metrics of a genome track (chrom,start,end,score): with peaks, the fraction of bins overlapping a peak
    and the track's AUROC for them (all bins: agreement, not a held-out metric); with genes (chrom, start,
    end, strand), the same for bins within `tss_flanks` (upstream, downstream) of a TSS; with labelled windows
    (chrom,start,end,[mark,split,]label), each window scored by the mean of its bins, binary metrics per
    split. held_out=(val, test) regions first regroup the windows by a genome-mode record's own split."""
    results = {}
    if peaks is not None:
        results["peak_bins"] = _bins_inside(track, peaks)
    if genes is not None and len(genes):
        results["tss_bins"] = _bins_inside(track, tss_spans(genes, *tss_flanks))
    if labelled is not None:
        labelled = labelled[labelled["chrom"].isin(chrom_sizes)]
        if "mark" in labelled:
            labelled = labelled[labelled["mark"] == mark]
        labelled = labelled.assign(score=intervals.window_scores(track, labelled)).dropna(subset=["score"])
        if held_out is not None:
            labelled["split"] = intervals.split_by_region(labelled, *held_out, require_present=False)
        groups = labelled.groupby("split") if "split" in labelled else [("all", labelled)]
        for split, part in groups:
            results[f"labelled_{split}"] = metrics.binary_metrics(part["label"], part["score"], 0.5)
    return results


def score_labelled_track(tracks: dict[str, pd.DataFrame], labelled, blocks: pd.DataFrame, split: str = "test",
                         centre_bin: int = 200) -> dict:
    """Each target's genome track scored against the genome-wide labels on the bins of one split's blocks
    (genomewide.blocks): AUROC and AUPRC of the bin scores for the label at each bin's centre (its central
    `centre_bin` bp, as training read it), with the counts; unlabelled bins are left out."""
    results = {}
    held = blocks[blocks["split"] == split]
    for t, (target, track) in enumerate(tracks.items()):
        inside = intervals.overlaps(track, held) if len(held) else np.zeros(len(track), bool)
        part = track[inside]
        centres = ((part["start"] + part["end"]) // 2).to_numpy()
        y = np.concatenate([labelled.at(chrom, centres[(part["chrom"] == chrom).to_numpy()], centre_bin)[:, t]
                            for chrom in part["chrom"].unique()]) if len(part) else np.empty(0)
        score = np.concatenate([part["score"].to_numpy()[(part["chrom"] == chrom).to_numpy()]
                                for chrom in part["chrom"].unique()]) if len(part) else np.empty(0)
        known = ~np.isnan(y)
        y, score = y[known], score[known]
        both = 0 < y.sum() < len(y)
        results[target] = {"n": int(len(y)), "positives": int(y.sum()),
                           "auroc": float(roc_auc_score(y, score)) if both else float("nan"),
                           "auprc": float(average_precision_score(y, score)) if both else float("nan")}
    return results


def _quality(y, p, n_bins: int) -> dict:
    return {"ece": metrics.ece(y, p, n_bins), "brier": metrics.brier(y, p)}


def calibrate_marks(labels: dict, probs: dict, marks: list[str], n_bins: int = 10) -> tuple[np.ndarray, dict]:
    """Temperatures fitted on the val split, one per mark, and each mark's test ECE and Brier score before
    and after scaling; `labels` and `probs` map val/test to [n] or [n, marks] arrays (NaN: unlabelled)."""
    y = {name: np.asarray(labels[name], dtype=float) for name in ("val", "test")}
    y = {name: v.reshape(len(v), -1) for name, v in y.items()}
    p = {name: np.asarray(probs[name]).reshape(len(y[name]), -1) for name in ("val", "test")}
    temperature = calibrate.fit_temperature(p["val"], y["val"])
    after = calibrate.apply_temperature(p["test"], temperature)
    report = {}
    for t, mark in enumerate(marks):
        known = ~np.isnan(y["test"][:, t])
        y_test = y["test"][known, t]
        report[mark] = {"temperature": float(temperature[t]), "n_bins": n_bins,
                        "before": _quality(y_test, p["test"][known, t], n_bins),
                        "after": _quality(y_test, after[known, t], n_bins)}
    return temperature, report


SPLITS = ("train", "val", "test")


def split_parts(dataset: dict) -> dict:
    """A loaded dataset's train, val and test rows as (tokens, lengths, labels)."""
    return {name: tuple(dataset[key][dataset["split"] == name] for key in ("tokens", "lengths", "labels"))
            for name in SPLITS}


def overlap_free_rows(windows: pd.DataFrame, split: np.ndarray) -> np.ndarray | None:
    """The test rows sharing no 31-bp stretch with a training window (01's `overlaps_train` column, csv
    mode); None when 01 did not mark them."""
    if "overlaps_train" not in windows:
        return None
    return ~windows["overlaps_train"].to_numpy(bool)[np.asarray(split) == "test"]


def evaluate_marks(parts: dict, probs: dict, readings: dict, marks: list[str], criterion: str = "mcc",
                   n_boot: int = 1000, seed: int = 0, overlap_free: np.ndarray | None = None
                   ) -> tuple[dict, dict, dict]:
    """Per mark: evaluate_target on `probs` (the record's reading) and score_strands on both `readings`;
    returns the results, the curves and the strand results, each keyed by mark."""
    results, curves, strands = {}, {}, {}
    for t, mark in enumerate(marks):
        results[mark], curves[mark] = evaluate_target(parts, probs, t, criterion, n_boot, seed, overlap_free)
        strands[mark] = score_strands(parts, readings, t, criterion, n_boot, seed, overlap_free)
    return results, curves, strands


def write_predictions(path, split: np.ndarray, parts: dict, probs: dict, marks: list[str]) -> pd.DataFrame:
    """Every val and test row's label and score per mark, as a TSV (05_compare's ensembles of records)."""
    scored = []
    for name in ("val", "test"):
        frame = pd.DataFrame({"split": name, "row": np.flatnonzero(np.asarray(split) == name)})
        labels, scores = parts[name][2].reshape(len(frame), -1), probs[name].reshape(len(frame), -1)
        for t, mark in enumerate(marks):
            frame[f"label_{mark}"], frame[f"score_{mark}"] = labels[:, t], scores[:, t]
        scored.append(frame)
    table = pd.concat(scored)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return table


def calibrate_checkpoint(checkpoint, results: dict, parts: dict, probs: dict, marks: list[str],
                         n_bins: int = 10, rc_average: bool = False) -> tuple[np.ndarray, dict]:
    """One temperature per mark fitted on validation (calibrate_marks), stored with the validation-chosen
    thresholds in the checkpoint's spec and, calibrated, in calibration.json beside it; returns
    calibrate_marks' temperatures and report."""
    labels = {name: parts[name][2] for name in ("val", "test")}
    temperature, report = calibrate_marks(labels, probs, marks, n_bins)
    thresholds = np.array([[results[mark]["transformer"]["threshold"] for mark in marks]])
    train.update_spec(checkpoint, thresholds=thresholds[0].tolist(), temperature=temperature.tolist())
    calibrated = calibrate.apply_temperature(thresholds, temperature)[0].tolist()  # the same calls
    calibrate.save(Path(checkpoint).parent / calibrate.FILENAME, marks, temperature, fitted_on="val",
                   rc_average=rc_average, thresholds=calibrated)
    return temperature, report


def write_metrics(path, results: dict, strands: dict, calibration: dict, parts: dict, mark: str,
                  best_epoch: int, criterion: str, precision: str, rc_average: bool,
                  overlap_free: np.ndarray | None = None) -> dict:
    """03's metrics.json: the headline mark's metrics (`mark`, else the first) at the top level, every mark's
    under `marks`, and how they were obtained; checked against the schema and written atomically
    (metrics_file.write_metrics), returned."""
    headline = results[mark] if mark in results else next(iter(results.values()))
    summary = {**headline, "marks": results, "best_epoch": int(best_epoch),
               "n_train": int(len(parts["train"][2])), "n_test": int(len(parts["test"][2])),
               "threshold_criterion": criterion, "precision": precision, "calibration": calibration,
               "rc_average": rc_average, "strand": strands,
               "n_test_overlapping_train": None if overlap_free is None else int((~overlap_free).sum())}
    return metrics_file.write_metrics(path, summary)


def baseline_notes(results: dict) -> list[str]:
    """One line per mark: the k-mer regression's chosen k and C, and the stack's weights."""
    notes = []
    for mark, models in results.items():
        kmer, stack = models["kmer_logistic"], models["stack"]
        edge = " (at the grid's edge: the best may lie beyond)" if kmer["C_at_edge"] else ""
        weights = ", ".join(f"{k} {v:.2f}" for k, v in stack["weights"].items())
        notes.append(f"{mark}: k-mer LR on 1..{kmer['k_max']}-mers, C {kmer['C']:g}{edge}; stack: {weights}")
    return notes


def genomewide_tracks(every: pd.DataFrame, chrom_sizes: dict[str, int], artifacts=Path("artifacts")
                      ) -> tuple[dict[str, pd.DataFrame], dict]:
    """A genome-wide record's track per target (predict.target_tracks of `every`), each written as
    artifacts/track_<target>.bw and scored on the test block's bins (score_labelled_track)."""
    artifacts = Path(artifacts)
    dataset = datasets.load_dataset(artifacts / "dataset.npz")
    by_target = predict.target_tracks(every, dataset["marks"])
    for name, part in by_target.items():
        tracks.write_bigwig(part, chrom_sizes, str(artifacts / f"track_{name}.bw"))
    _, labelled, blocks = genomewide.load_genome(artifacts / "genome.npz")
    return by_target, score_labelled_track(by_target, labelled, blocks, "test", dataset["centre_bin"])
