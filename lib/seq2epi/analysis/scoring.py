"""Score what the lab has not measured with a record's model: sequences (FASTA, CSV, BED regions) into a table
of probabilities and calls per mark, and VCF variants into ref/alt probabilities and their differences.

The model comes as a record's predictor (Record.predictor: its best checkpoint with the marks, window, stride,
`rc_average`, validation-chosen thresholds and temperatures of its spec; probabilities are calibrated when 03
fitted temperatures, and the thresholds carried onto the calibrated scale, so the calls are the record's own).
Inputs are read record by record and scored in batches across records, so memory stays bounded on a multi-GB
FASTA.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cyvcf2
import numpy as np
import pandas as pd
import pysam
from numpy.lib.stride_tricks import sliding_window_view

from seq2epi.data import tiling
from seq2epi.data.sequence import PAD, Genome, N, encode, open_text
from seq2epi.data.variants import (
    Site,
    Variants,
    check_interval,
    is_symbolic,
    open_vcf,
    sample_windows,
    sites,
    unique_windows,
)
from seq2epi.lab import metrics, records
from seq2epi.lab.progress import meter
from seq2epi.model import predict

Predictor = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (tokens [n, L], lengths [n]) -> probs


def _few(names, n: int = 5) -> str:
    names = list(names)
    return ", ".join(map(str, names[:n])) + (f", ... ({len(names)} in all)" if len(names) > n else "")


# ---- reading sequences ----

class Entry(NamedTuple):
    """One input sequence: its id, bases and label (None when the input has no labels)."""

    id: str
    sequence: str
    label: int | None = None


def read_fasta(path) -> Iterator[Entry]:
    """The records of a FASTA (plain, gzip or bgzip), one at a time; the id is the header's first word."""
    path = Path(path)
    name, parts, header_line = None, [], 0
    with open_text(path, newline="") as f:
        for line_no, line in enumerate(f, 1):
            if line.startswith(">"):
                if name is not None:
                    yield _fasta_entry(path, name, parts, header_line)
                words = line[1:].split(maxsplit=1)
                if not words:
                    raise ValueError(f"FASTA {path} line {line_no}: the '>' header has no name.")
                name, parts, header_line = words[0], [], line_no
            elif line.strip() and not line.startswith(";"):
                if name is None:
                    raise ValueError(f"FASTA {path} line {line_no}: expected a '>' header first.")
                parts.append(line.strip())
    if name is None:
        raise ValueError(f"FASTA {path} has no records ('>' header lines).")
    yield _fasta_entry(path, name, parts, header_line)


def _fasta_entry(path: Path, name: str, parts: list[str], line: int) -> Entry:
    if not parts:
        raise ValueError(f"FASTA {path} record {name!r} (line {line}) has no sequence.")
    return Entry(name, "".join(parts))


def _label(value: str, where: str) -> int:
    if value.strip() not in ("0", "1", "0.0", "1.0"):
        raise ValueError(f"{where}: label must be 0 or 1, got {value!r}.")
    return int(float(value))


def read_csv(path) -> Iterator[Entry]:
    """The rows of the lab's CSV: a `sequence` column, optional `id` and `label` (or `labels`) columns."""
    path = Path(path)
    with open_text(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().lstrip("\ufeff").lower() for h in next(reader, [])]
        if "sequence" not in header:
            raise ValueError(f"CSV {path} line 1: expected a column named sequence (and optionally id, "
                             f"label), got {header}.")
        seq_col = header.index("sequence")
        id_col = header.index("id") if "id" in header else None
        label_col = next((header.index(c) for c in ("label", "labels") if c in header), None)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"CSV {path} line {reader.line_num}"
            if len(row) < len(header):
                raise ValueError(f"{where}: expected {len(header)} columns, got {len(row)}.")
            seq = row[seq_col].strip()
            if not seq:
                raise ValueError(f"{where}: empty sequence.")
            name = row[id_col].strip() if id_col is not None and row[id_col].strip() else \
                f"line{reader.line_num}"
            yield Entry(name, seq, None if label_col is None else _label(row[label_col], where))


def read_bed(path, genome: Genome) -> Iterator[Entry]:
    """The regions of a BED as sequences of the genome: id from a name column (else chrom:start-end), label
    from a `label` column named by a '#chrom' header line."""
    path = Path(path)
    columns = ["chrom", "start", "end", "name"]
    with open_text(path, newline="") as f:
        for line_no, line in enumerate(f, 1):
            if line.startswith("#chrom"):
                columns = line[1:].rstrip("\n").split("\t")
                continue
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            cells = dict(zip(columns, line.rstrip("\n").split("\t"), strict=False))
            where = f"BED {path} line {line_no}"
            try:
                chrom, start, end = cells["chrom"], int(cells["start"]), int(cells["end"])
            except (KeyError, ValueError):
                raise ValueError(f"{where}: expected tab-separated chrom, start, end (integers).") from None
            try:
                check_interval(genome, chrom, start, end)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            label = _label(cells["label"], where) if "label" in cells else None
            yield Entry(cells.get("name") or f"{chrom}:{start}-{end}", genome.fetch(chrom, start, end), label)


def unique_ids(entries: Iterable[Entry], source) -> Iterator[Entry]:
    """The entries with duplicate ids kept but made unique (_2, _3, ...), with one warning at the end."""
    used, count, renamed = set(), {}, []
    for i, entry in enumerate(entries, 1):
        name = entry.id
        if name in used:
            k = count.get(name, 2)
            while f"{name}_{k}" in used:
                k += 1
            count[name] = k
            renamed.append(f"record {i} {name!r} -> {name}_{k}")
            entry = entry._replace(id=f"{name}_{k}")
        used.add(entry.id)
        yield entry
    if renamed:
        warnings.warn(f"{source}: {len(renamed)} duplicate id(s) kept and made unique: {_few(renamed, 3)}.",
                      stacklevel=2)


def read_sequences(path, fasta=None) -> Iterator[Entry]:
    """Sequences from a CSV (.csv), a BED of regions of `fasta` (.bed) or a FASTA (anything else); each may
    be gzip/bgzip (.gz); ids made unique."""
    path = Path(path)
    kind = path.name.lower().removesuffix(".gz").removesuffix(".bgz").rsplit(".", 1)[-1]
    if kind == "bed":
        if fasta is None:
            raise ValueError(f"{path} is a BED of regions: give the genome they lie on (--fasta).")
        entries = read_bed(path, Genome(fasta))
    else:
        entries = read_csv(path) if kind == "csv" else read_fasta(path)
    return unique_ids(entries, path)


# ---- scoring sequences ----

def sequence_windows(length: int, window: int, stride: int) -> np.ndarray:
    """Window starts that score a sequence of `length` bp: one at 0 when it fits the window (padded), else the
    record's tiling (tiling.window_starts) plus one window ending at the last base, so every base is seen."""
    if length <= window:
        return np.zeros(1, np.int64)
    starts = tiling.window_starts(0, length, window, stride)
    return starts if starts[-1] + window == length else np.append(starts, length - window)


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


@contextlib.contextmanager
def _table(path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A writer of a TSV in parts (gzip when named .gz), the file appearing only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with records.atomic_path(path) as tmp, (gzip.open(tmp, "wt") if path.suffix == ".gz" else
                                            open(tmp, "w")) as handle:
        header = [True]

        def write(frame: pd.DataFrame) -> None:
            frame.to_csv(handle, sep="\t", index=False, header=header[0], float_format="%.6g")
            header[0] = False

        yield write


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
    windows = _table(per_window) if per_window else contextlib.nullcontext()
    with _table(out) as write, windows as write_windows:
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
                      f"k-mer): {_few(unscored)}; their probabilities and calls are left empty.",
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


# ---- scoring variants ----

def variant_type(ref: str, alt: str) -> str:
    """SNV, MNV (equal lengths), insertion (ALT longer) or deletion (ALT shorter)."""
    if len(ref) == len(alt):
        return "SNV" if len(ref) == 1 else "MNV"
    return "insertion" if len(alt) > len(ref) else "deletion"


def centred_start(start: int, end: int, window: int) -> int:
    """Start of the `window` bp window centred on the REF span [start, end) (a SNV lands at window // 2)."""
    return start + (end - start - window) // 2


def track_windows(start: int, end: int, window: int, stride: int, size: int) -> tuple[int, int]:
    """(first start, count) of the genome track's windows (starts at multiples of stride, inside the
    chromosome) that hold the whole REF span [start, end)."""
    first = max(0, -(-(end - window) // stride) * stride)
    last = min(start // stride * stride, (size - window) // stride * stride)
    return first, max(0, (last - first) // stride + 1)


def _carriers(variants: list[tuple[str, int, int, str, str]]) -> Variants:
    """Variants in which sample str(i) carries variant i (chrom, start, end, ref, alt) alone."""
    table = pd.DataFrame([(c, s, e, r, [a]) for c, s, e, r, a in variants],
                         columns=["chrom", "start", "end", "ref", "alts"])
    return Variants(Path("<variants>"), [str(i) for i in range(len(variants))], table,
                    np.eye(len(variants), dtype=np.int16))


def _allele_windows(genome: Genome, carriers: Variants, sample: str, chrom: str, first: int, n: int,
                    window: int, stride: int) -> np.ndarray:
    end = first + (n - 1) * stride + window
    return np.stack([sample_windows(genome, None, None, chrom, first, end, window, stride),
                     sample_windows(genome, carriers, sample, chrom, first, end, window, stride)])


def allele_windows(genome: Genome, chrom: str, start: int, end: int, ref: str, alt: str, first: int, n: int,
                   window: int, stride: int) -> np.ndarray:
    """Tokens [2 (reference, alternative), n, window] of the n windows from `first` every `stride` bp, built
    by the variety map's own code for a variety carrying only this variant (variants.variety_windows):
    reference coordinates, an indel changing a window's content, not its position."""
    carriers = _carriers([(chrom, start, end, ref, alt)])
    return _allele_windows(genome, carriers, "0", chrom, first, n, window, stride)


class VariantScore(NamedTuple):
    """One ALT of a site: probabilities [marks] of the reference and alternative windows centred on it, the
    signed difference of the track window where |difference| is largest (tiled), or why it was skipped (and
    why it has no tiled difference)."""

    alt: str
    type: str
    ref: np.ndarray
    alt_prob: np.ndarray
    tiled: np.ndarray
    reason: str = ""
    repeat: bool = False  # a variant already scored (an earlier record holds it too)
    tiled_reason: str = ""


def _skip(genome: Genome, site: Site, alt: str, window: int, max_n_fraction: float) -> str:
    if is_symbolic(alt):
        return "symbolic"
    start = centred_start(site.start, site.end, window)
    if start < 0 or start + window > genome.chrom_sizes[site.chrom]:
        return "off_chromosome"
    if (genome.tokens(site.chrom, start, start + window) == N).mean() > max_n_fraction:
        return "mostly_n"
    return ""


def score_variants(predictor: Predictor, genome: Genome, found: Iterable[Site], n_marks: int, window: int,
                   stride: int, tiled: bool = False, min_length: int = 1, max_n_fraction: float = 0.5,
                   chunk: int = 256) -> Iterator[list[tuple[Site, list[VariantScore]]]]:
    """Each site with a VariantScore per ALT, in batches of `chunk` sites.

    A distinct variant (chrom, start, REF, ALT) is scored once, and distinct windows predicted once. Skipped
    (reason): symbolic alleles, windows running off the chromosome, reference windows more than
    `max_n_fraction` N, alternative windows shorter than `min_length` (a deletion at a chromosome's end).
    """
    done: dict[tuple, tuple] = {}
    nan = np.full(n_marks, np.nan, np.float32)
    batch = []
    for site in found:
        batch.append(site)
        if len(batch) == chunk:
            yield _score_batch(predictor, genome, batch, done, nan, window, stride, tiled, min_length,
                               max_n_fraction)
            batch = []
    if batch:
        yield _score_batch(predictor, genome, batch, done, nan, window, stride, tiled, min_length,
                           max_n_fraction)


def _score_batch(predictor, genome, batch, done, nan, window, stride, tiled, min_length, max_n_fraction):
    todo = {}
    for site in batch:
        for alt in site.alts:
            key = (site.chrom, site.start, site.ref, alt)
            if key in done or key in todo:
                continue
            reason = _skip(genome, site, alt, window, max_n_fraction)
            if reason:
                done[key] = (variant_type(site.ref, alt), nan, nan, nan, reason, False, reason)
            else:
                todo[key] = site.end
    carriers = _carriers([(c, s, e, r, a) for (c, s, r, a), e in todo.items()])  # one batch, one table
    work: dict[tuple, list[np.ndarray]] = {}
    no_track: dict[tuple, str] = {}
    for i, ((chrom, start, ref, alt), end) in enumerate(todo.items()):
        first = centred_start(start, end, window)
        parts = [_allele_windows(genome, carriers, str(i), chrom, first, 1, window, window)]
        if (parts[0][1] != PAD).sum() < min_length:
            done[(chrom, start, ref, alt)] = (variant_type(ref, alt), nan, nan, nan, "alt_too_short", False,
                                              "alt_too_short")
            continue
        first, n = track_windows(start, end, window, stride, genome.chrom_sizes[chrom])
        if tiled and n:
            parts.append(_allele_windows(genome, carriers, str(i), chrom, first, n, window, stride))
        work[(chrom, start, ref, alt)] = parts
        no_track[(chrom, start, ref, alt)] = "" if n or not tiled else _no_track_window(start, end, window)
    if work:
        stack = np.concatenate([p.reshape(-1, window) for parts in work.values() for p in parts])
        uniq, inverse = unique_windows(stack)
        lengths = (uniq != PAD).sum(1)
        probs, at = predictor(uniq, lengths)[inverse], 0
        for (chrom, start, ref, alt), parts in work.items():
            centre = probs[at : at + 2]
            at += 2
            shift = nan
            if len(parts) > 1:
                n = parts[1].shape[1]
                diff = probs[at + n : at + 2 * n] - probs[at : at + n]
                shift = diff[np.abs(diff).argmax(axis=0), np.arange(diff.shape[1])]
                at += 2 * n
            done[(chrom, start, ref, alt)] = (variant_type(ref, alt), centre[0], centre[1], shift, "", False,
                                              no_track[(chrom, start, ref, alt)])
    out = []
    for site in batch:
        scores = []
        for alt in site.alts:
            key = (site.chrom, site.start, site.ref, alt)
            kind, ref, alt_prob, shift, reason, seen, tiled_reason = done[key]
            scores.append(VariantScore(alt, kind, ref, alt_prob, shift, reason, seen, tiled_reason))
            done[key] = (kind, ref, alt_prob, shift, reason, True, tiled_reason)
        out.append((site, scores))
    return out


def _no_track_window(start: int, end: int, window: int) -> str:
    """Why no window of the genome track holds the whole REF span [start, end)."""
    return "ref_longer_than_window" if end - start > window else "no_track_window_holds_ref"


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def variant_rows(scored: list[tuple[Site, list[VariantScore]]], marks: list[str], tiled: bool = False
                 ) -> pd.DataFrame:
    """One row per distinct variant x ALT x mark (repeats left out): chrom, pos (1-based), id, ref, alt, type,
    mark, ref_prob, alt_prob, diff, log_odds_diff, [tiled_diff, tiled_reason (why tiled_diff is empty)],
    reason (why the ALT was not scored)."""
    rows = []
    for site, scores in scored:
        for s in scores:
            if s.repeat:
                continue
            for t, mark in enumerate(marks):
                row = dict(chrom=site.chrom, pos=site.start + 1, id=site.id, ref=site.ref, alt=s.alt,
                           type=s.type, mark=mark, ref_prob=s.ref[t], alt_prob=s.alt_prob[t],
                           diff=s.alt_prob[t] - s.ref[t],
                           log_odds_diff=float(logit(s.alt_prob[t]) - logit(s.ref[t])))
                if tiled:
                    row["tiled_diff"], row["tiled_reason"] = s.tiled[t], s.tiled_reason
                rows.append(row | {"reason": s.reason})
    columns = ["chrom", "pos", "id", "ref", "alt", "type", "mark", "ref_prob", "alt_prob", "diff",
               "log_odds_diff"] + ["tiled_diff", "tiled_reason"] * tiled + ["reason"]
    return pd.DataFrame(rows, columns=columns)


def _info_id(mark: str, what: str) -> str:
    return "S2E_" + "".join(c if c.isalnum() else "_" for c in mark) + f"_{what}"


_INFO = {"REF": "probability of the reference window centred on the variant",
         "ALT": "probability of the alternative window centred on the variant",
         "DIFF": "ALT - REF probability", "LOD": "log-odds difference logit(ALT) - logit(REF)",
         "TILED": "ALT - REF of the genome track window (holding the variant) where it is largest in size"}


def _add_info(vcf: cyvcf2.VCF, predictor: predict.Predictor, tiled: bool) -> None:
    """Declare the INFO fields _annotate writes in the VCF's header."""
    for mark in predictor.marks:
        for what, text in _INFO.items():
            if what != "TILED" or tiled:
                vcf.add_info_to_header({"ID": _info_id(mark, what), "Number": "A", "Type": "Float",
                                        "Description": f"seq2epi {predictor.record} {mark}: {text}"})
    vcf.add_info_to_header({"ID": "S2E_SKIPPED", "Number": "A", "Type": "String",
                            "Description": "seq2epi: why an ALT was not scored"})


def _annotate(record: cyvcf2.Variant, scores: list[VariantScore], marks: list[str], tiled: bool) -> None:
    def text(values) -> str:
        return ",".join("." if np.isnan(v) else f"{v:.4g}" for v in values)

    for t, mark in enumerate(marks):
        values = {"REF": [s.ref[t] for s in scores], "ALT": [s.alt_prob[t] for s in scores],
                  "DIFF": [s.alt_prob[t] - s.ref[t] for s in scores],
                  "LOD": [np.nan if s.reason else logit(s.alt_prob[t]) - logit(s.ref[t]) for s in scores]}
        if tiled:
            values["TILED"] = [s.tiled[t] for s in scores]
        for what, numbers in values.items():
            record.INFO[_info_id(mark, what)] = text(numbers)
    if any(s.reason for s in scores):
        record.INFO["S2E_SKIPPED"] = ",".join(s.reason or "." for s in scores)


def check_out_vcf(out_vcf, vcf_path) -> None:
    """Refuse an annotated-VCF path that is not named as the bgzip it will be, or that is the input."""
    out = Path(out_vcf)
    if not out.name.endswith((".vcf.gz", ".vcf.bgz")):
        raise ValueError(f"out VCF {out}: the annotated VCF is written bgzipped and tabix-indexed, so its "
                         "name must end in .vcf.gz or .vcf.bgz.")
    source = Path(vcf_path)
    if out.resolve() == source.resolve() or out.exists() and source.exists() and out.samefile(source):
        raise ValueError(f"out VCF {out} is the input VCF {vcf_path}; write the annotated VCF to another "
                         "file.")


def score_vcf(predictor: predict.Predictor, vcf_path, fasta, out, region: tuple[str, int, int] | None = None,
              tiled: bool = False, out_vcf=None, chrom_alias: dict[str, str] | None = None,
              max_n_fraction: float = 0.5, chunk: int = 256, progress: bool = True) -> dict:
    """Score every variant of a VCF (over `region`) with a record's predictor into the TSV `out`
    (variant_rows) and, with `out_vcf`, the VCF annotated with INFO fields per mark, bgzipped and
    tabix-indexed. Returns the counts."""
    if out_vcf is not None:
        check_out_vcf(out_vcf, vcf_path)
    genome = Genome(fasta)
    vcf = open_vcf(vcf_path, lazy=False)
    with contextlib.ExitStack() as stack:
        writer = None
        if out_vcf is not None:
            _add_info(vcf, predictor, tiled)
            tmp_vcf = stack.enter_context(records.atomic_path(out_vcf))
            writer = cyvcf2.Writer(str(tmp_vcf), vcf, mode="wz")
        write = stack.enter_context(_table(out))
        bar = stack.enter_context(meter(None, "variants", enabled=progress, unit="site"))
        counts = {"records": 0, "variants": 0, "scored": 0, "repeats": 0}
        write(variant_rows([], predictor.marks, tiled))
        found = sites(vcf_path, genome, region, chrom_alias, vcf)
        for scored in score_variants(predictor, genome, found, len(predictor.marks), predictor.window,
                                     predictor.stride, tiled, predictor.min_length, max_n_fraction, chunk):
            write(variant_rows(scored, predictor.marks, tiled))
            for site, scores in scored:
                counts["records"] += 1
                for s in scores:
                    counts["repeats" if s.repeat else "variants"] += 1
                    if not s.repeat:
                        counts[s.reason or "scored"] = counts.get(s.reason or "scored", 0) + 1
                if writer is not None:
                    _annotate(site.record, scores, predictor.marks, tiled)
                    writer.write_record(site.record)
            bar.update(len(scored))
        if writer is not None:
            writer.close()
            pysam.tabix_index(str(tmp_vcf), preset="vcf", force=True)
            os.replace(f"{tmp_vcf}.tbi", f"{out_vcf}.tbi")
    return counts
