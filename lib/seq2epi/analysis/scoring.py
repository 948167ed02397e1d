"""Score sequences the lab has not measured with a record's model: FASTA, CSV or BED regions (data.readers)
into a table of probabilities and calls per mark, with metrics when the input is labelled. Variants are
scored by analysis.variant_effect.

The model comes as a record's predictor (Record.predictor: its best checkpoint with the marks, window, stride,
`rc_average`, validation-chosen thresholds and temperatures of its spec; probabilities are calibrated when 03
fitted temperatures, and the thresholds carried onto the calibrated scale, so the calls are the record's own).
Inputs are read record by record and scored in batches across records, so memory stays bounded on a multi-GB
FASTA.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from seq2epi.data.readers import Entry, few, read_sequences
from seq2epi.data.sequence import PAD, N, encode
from seq2epi.data.tiling import sequence_windows
from seq2epi.lab import metrics
from seq2epi.lab.io import table_writer
from seq2epi.lab.progress import meter
from seq2epi.model import predict

Predictor = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (tokens [n, L], lengths [n]) -> probs


@dataclass
class _Pending:
    entry: Entry
    length: int
    n_fraction: float
    starts: np.ndarray
    width: int  # of its windows: the window, or the sequence when shorter
    scores: np.ndarray  # [windows, marks], NaN until scored
    todo: int = 0


def score_sequences(predictor: Predictor, entries: Iterable[Entry], marks: list[str], thresholds, window: int,
                    stride: int, min_length: int = 1, max_n_fraction: float = 0.5, chunk: int = 2048,
                    per_window: bool = False) -> Iterator[tuple[pd.DataFrame, pd.DataFrame | None]]:
    """Tables of scored sequences, in input order, one per batch of about `chunk` windows across sequences.

    Rows: id, length, n_fraction, windows (scored), [label], then per mark its probability (max over the
    windows), `{mark}_mean` and `{mark}_call` (probability >= threshold). Windows more than `max_n_fraction`
    N are not scored; a sequence with no window left, or shorter than `min_length`, scores NaN (empty call).
    With per_window, also the windows: id, start, end and each mark's probability.
    """
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=float), (len(marks),))
    queue: list[tuple[_Pending, np.ndarray, np.ndarray]] = []  # (sequence, its window rows, their tokens)
    pending: list[_Pending] = []
    queued = 0
    for entry in entries:
        tokens = encode(entry.sequence)
        starts = sequence_windows(len(tokens), window, stride) if len(tokens) >= min_length else \
            np.zeros(0, np.int64)
        item = _Pending(entry, len(tokens), float((tokens == N).mean()), starts, min(len(tokens), window),
                        np.full((len(starts), len(marks)), np.nan, np.float32))
        pending.append(item)
        view = tokens[None] if len(tokens) <= window else sliding_window_view(tokens, window)
        for i in range(0, len(starts), chunk):
            rows = np.arange(i, min(i + chunk, len(starts)))
            block = view[starts[rows]]
            keep = (block == N).mean(axis=1) <= max_n_fraction
            queue.append((item, rows[keep], block[keep]))
            item.todo += 1
            queued += int(keep.sum())
            if queued >= chunk:
                _flush(predictor, queue, window)
                queue, queued = [], 0
                yield from _done(pending, marks, thresholds, per_window)
    _flush(predictor, queue, window)
    yield from _done(pending, marks, thresholds, per_window, final=True)


def _flush(predictor: Predictor, queue: list, window: int) -> None:
    """Predict every queued window at once and file the probabilities with their sequences."""
    blocks = [block for _, _, block in queue if len(block)]
    if blocks:
        tokens = np.full((sum(len(b) for b in blocks), window), PAD, np.uint8)
        lengths, at = np.empty(len(tokens), np.int64), 0
        for block in blocks:
            tokens[at : at + len(block), : block.shape[1]] = block
            lengths[at : at + len(block)] = block.shape[1]
            at += len(block)
        probs, at = predictor(tokens, lengths), 0
        for item, rows, block in queue:
            item.scores[rows] = probs[at : at + len(block)]
            at += len(block)
    for item, _, _ in queue:
        item.todo -= 1


def _done(pending: list[_Pending], marks: list[str], thresholds: np.ndarray, per_window: bool,
          final: bool = False) -> Iterator[tuple[pd.DataFrame, pd.DataFrame | None]]:
    """The table of the sequences at the front of `pending` that are fully scored (all of them when final),
    removed from it."""
    n = 0
    while n < len(pending) and pending[n].todo == 0 and (final or n < len(pending) - 1):
        n += 1
    if not n:
        return
    done, pending[:] = pending[:n], pending[n:]
    rows = []
    for item in done:
        scored = ~np.isnan(item.scores[:, 0]) if len(item.scores) else np.zeros(0, bool)
        row = {"id": item.entry.id, "length": item.length, "n_fraction": round(item.n_fraction, 4),
               "windows": int(scored.sum())}
        if item.entry.label is not None:
            row["label"] = item.entry.label
        best = item.scores[scored].max(axis=0) if scored.any() else np.full(len(marks), np.nan)
        mean = item.scores[scored].mean(axis=0) if scored.any() else np.full(len(marks), np.nan)
        for t, mark in enumerate(marks):
            row[mark], row[f"{mark}_mean"] = best[t], mean[t]
            row[f"{mark}_call"] = pd.NA if np.isnan(best[t]) else int(best[t] >= thresholds[t])
        rows.append(row)
    table = pd.DataFrame(rows)
    for mark in marks:
        table[f"{mark}_call"] = table[f"{mark}_call"].astype("Int8")
    windows = None
    if per_window:
        parts = []
        for item in done:
            frame = pd.DataFrame({"id": item.entry.id, "start": item.starts, "end": item.starts + item.width})
            frame[marks] = item.scores
            parts.append(frame)
        windows = pd.concat(parts, ignore_index=True)
    yield table, windows


def labelled_metrics(labels, probs, thresholds, marks: list[str], n_boot: int = 1000, seed: int = 0) -> dict:
    """Per mark: binary metrics of the labels against its probabilities at its threshold, with bootstrap 95 %
    intervals (ci95); sequences left unscored are left out."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float).reshape(len(labels), -1)
    out = {}
    for t, mark in enumerate(marks):
        known = ~np.isnan(probs[:, t])
        y, p = labels[known], probs[known, t]
        if len(np.unique(y)) < 2:
            raise ValueError(f"the {int(known.sum())} scored sequences all carry label {y[:1]}; metrics "
                             "need both 0 and 1.")
        out[mark] = metrics.binary_metrics(y, p, float(thresholds[t])) | {
            "n": int(known.sum()), "ci95": metrics.bootstrap_ci(y, p, float(thresholds[t]), n_boot, seed)}
    return out


def predict_file(predictor: predict.Predictor, source, out, fasta=None, per_window=None,
                 max_n_fraction: float = 0.5, chunk: int = 2048, progress: bool = True) -> dict:
    """Score every sequence of `source` (read_sequences) with a record's predictor into the TSV `out` (and
    each window into `per_window`). Returns the counts, and for labelled input the metrics per mark
    (labelled_metrics), or under no_metrics why there are none (one class)."""
    entries = read_sequences(source, fasta)
    bar = meter(None, "sequences", enabled=progress, unit="seq")
    labels, probs, unscored, n, n_unscored = [], [], [], 0, 0
    scored = score_sequences(predictor, entries, predictor.marks, predictor.call_thresholds(),
                             predictor.window, predictor.stride, predictor.min_length, max_n_fraction, chunk,
                             per_window is not None)
    windows = table_writer(per_window) if per_window else contextlib.nullcontext()
    with table_writer(out) as write, windows as write_windows:
        for rows, frames in scored:
            write(rows)
            if write_windows is not None:
                write_windows(frames)
            n += len(rows)
            bar.update(len(rows))
            empty = rows.loc[rows["windows"] == 0, "id"]
            n_unscored += len(empty)
            unscored += empty.tolist()[: 5 - len(unscored)]
            if "label" in rows:
                labels.append(rows["label"].to_numpy())
                probs.append(rows[predictor.marks].to_numpy(float))
    bar.close()
    result = {"sequences": n, "unscored": n_unscored}
    if n_unscored:
        warnings.warn(f"{source}: {n_unscored} sequence(s) have no window to score (more than "
                      f"{max_n_fraction:.0%} N, or shorter than the model's {predictor.min_length} bp "
                      f"k-mer): {few(unscored)}; their probabilities and calls are left empty.",
                      stacklevel=2)
    if labels:
        labels, probs = np.concatenate(labels), np.concatenate(probs)
        classes = np.unique(labels[~np.isnan(probs[:, 0])])
        if len(classes) == 2:
            result["metrics"] = labelled_metrics(labels, probs, predictor.thresholds, predictor.marks)
        else:
            result["no_metrics"] = (f"{source}: no metrics, as the labelled sequences scored all carry label "
                                    f"{', '.join(map(str, classes)) or '(none scored)'}; metrics need both "
                                    "0 and 1.")
    return result


def predict_summary(result: dict) -> str:
    """How many sequences predict_file scored, and how many it could not."""
    n, unscored = result["sequences"], result["unscored"]
    if not unscored:
        return f"{n} sequences scored"
    return f"{n - unscored} of {n} sequences scored ({unscored} had no window to score and are left empty)"
