"""Turn an experiment's inputs (labeled CSV files, or genomes + peaks) into one dataset of windows."""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seq2epi.data import datasets, genes, genomewide, intervals, sequence, variants
from seq2epi.data.labels import build_labels
from seq2epi.lab.io import atomic_path

SAMPLE_COLUMNS = ("variety", "mark", "fasta", "peaks")  # a variety given by its own FASTA
VCF_COLUMNS = ("variety", "mark", "reference", "vcf", "vcf_sample", "peaks")  # reference + a sample of a VCF
PATH_COLUMNS = ("fasta", "peaks", "reference", "vcf")


def _subsample(frame: pd.DataFrame, n: int, seed: int, cuts: list[str], what: str) -> pd.DataFrame:
    """A seeded subsample of at most `n` rows (0: all); a cut is told in `cuts`."""
    if not n or len(frame) <= n:
        return frame
    cuts.append(f"{what}: {n} of {len(frame)} kept")
    return frame.sample(n=n, random_state=seed).sort_index()


def _learning_subset(is_val: np.ndarray, n: int, seed: int, cuts: list[str], what: str) -> np.ndarray:
    """Rows kept: every validation row and `n` training rows, the first `n` of one seeded order, so a smaller
    size is a subset of a larger one (a learning curve's points share their windows)."""
    rows = np.flatnonzero(~is_val)
    if n > len(rows):
        raise ValueError(f"{what}: train_size {n} exceeds the {len(rows)} training windows left after the "
                         f"validation carve-out; use 0 for all of them.")
    cuts.append(f"{what}: {n} of {len(rows)} training windows kept (validation whole)")
    keep = is_val.copy()
    keep[np.random.default_rng([seed, 1]).permutation(rows)[:n]] = True
    return keep


def _check_crop(crop_length: int, min_length: int) -> None:
    if 0 < crop_length < min_length:
        raise ValueError(f"crop_length {crop_length} bp is shorter than the largest k-mer ({min_length} bp).")


def label_balance(labels: np.ndarray, split: np.ndarray, marks: list[str] | None = None) -> pd.DataFrame:
    """Examples, positives and positive fraction per mark and split (NaN labels: unlabelled, left out)."""
    labels = np.asarray(labels, dtype=float).reshape(len(split), -1)
    marks = [str(t) for t in range(labels.shape[1])] if marks is None else list(marks)
    rows = []
    for t, mark in enumerate(marks):
        for name in ("train", "val", "test"):
            y = labels[(split == name) & ~np.isnan(labels[:, t]), t]
            rows.append((mark, name, len(y), int(y.sum()), y.mean() if len(y) else float("nan")))
    return pd.DataFrame(rows, columns=["mark", "split", "n", "positives", "fraction"])


def check_two_classes(balance: pd.DataFrame, sources: dict[str, str]) -> None:
    """Refuse a mark whose training sequences (train + validation, label_balance rows) carry one label only,
    naming its file (`sources`: mark -> file); warn when its validation split alone does (no AUROC to choose
    the best epoch and the threshold on)."""
    fitted = balance[balance["split"].isin(["train", "val"])]
    for mark, rows in fitted.groupby("mark", sort=False):
        n, positives = int(rows["n"].sum()), int(rows["positives"].sum())
        if n and positives in (0, n):
            raise ValueError(f"{sources[mark]}: its {n} training sequence(s) of {mark} are all labelled "
                             f"{int(positives > 0)}; a classifier needs labels 0 and 1 (check the label "
                             "column).")
        val = rows[rows["split"] == "val"].iloc[0]
        if val["n"] and val["positives"] in (0, val["n"]):
            warnings.warn(f"{sources[mark]}: the {val['n']} validation sequence(s) of {mark} all carry label "
                          f"{int(val['positives'] > 0)}, so no AUROC chooses the best epoch and threshold; "
                          "raise val_fraction.", stacklevel=3)


def _warn_imbalance(balance: pd.DataFrame, where: str) -> None:
    """Warn when a mark's test positive fraction differs from its train + val fraction by over 5 points."""
    part = np.where(balance["split"] == "test", "test", "train")
    sums = balance.groupby([balance["mark"], part], sort=False)[["n", "positives"]].sum()
    fraction = (sums["positives"] / sums["n"]).unstack()
    for mark, row in fraction.iterrows():
        if abs(row["test"] - row["train"]) > 0.05:
            warnings.warn(f"{where}: {mark} positives are {row['test']:.1%} of test but "
                          f"{row['train']:.1%} of train; read AUPRC and accuracy against the test base rate",
                          stacklevel=3)


def centre_crop(seqs, crop_length: int) -> list[str]:
    """Sequences longer than `crop_length` cut to their central `crop_length` bases (0 keeps them whole)."""
    if not crop_length:
        return list(seqs)
    return [s if len(s) <= crop_length else s[(len(s) - crop_length) // 2:][:crop_length] for s in seqs]


def sequences_in(windows: pd.DataFrame, fasta: Path) -> set[str]:
    """The reference sequences of windows (chrom, start, end), to keep them out of training."""
    genome = sequence.Genome(fasta)
    spans = zip(windows["chrom"], windows["start"], windows["end"], strict=True)
    return {datasets.normalise(genome.fetch(c, s, e)) for c, s, e in spans}


def _drop_excluded(train: pd.DataFrame, exclude: set[str], where: Path) -> pd.DataFrame:
    held = train["sequence"].isin(exclude)
    if held.any():
        warnings.warn(f"{held.sum()} sequences of {where} are held out of training (exclude)", stacklevel=3)
    return train[~held]


def overlaps_train(train_seqs: list[str], test_seqs: list[str]) -> np.ndarray:
    """Per test sequence: whether it shares a 31-bp stretch (either strand) with a train sequence, directly or
    through other sequences (datasets.overlap_groups)."""
    groups = datasets.overlap_groups(list(train_seqs) + list(test_seqs))
    return np.isin(groups[len(train_seqs):], groups[:len(train_seqs)])


@dataclass(frozen=True)
class Background:
    """Genome windows added to a CSV experiment's training split as negatives: `n` windows of `fasta` off
    every `blocked` interval (blocked_regions), GC-matched to the training positives or uniform."""
    fasta: Path
    n: int
    gc_matched: bool
    blocked: pd.DataFrame
    max_n_fraction: float = 0.1


def blocked_regions(windows: pd.DataFrame | None, margin: int, regions: list[str]) -> pd.DataFrame:
    """Intervals a background stays off: `windows` widened by `margin` bp on each side, and `regions`
    (chromosomes or chrom:start-end)."""
    parts = [pd.DataFrame({"chrom": [c], "start": [s], "end": [int(min(e, 2**62))]})
             for c, s, e in map(intervals.held_out_region, regions)]
    if windows is not None:
        parts.append(windows[["chrom", "start", "end"]].assign(start=lambda w: (w["start"] - margin).clip(0),
                                                                end=lambda w: w["end"] + margin))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["chrom", "start", "end"])


def background_negatives(spec: Background, seqs: list[str], labels: np.ndarray, seed: int
                         ) -> tuple[list[str], pd.DataFrame]:
    """(sequences, windows) of `spec`, each as long as a seeded draw of the lengths of `seqs` (the training
    windows) and, when GC-matched, with the GC histogram of their positives (`labels` 1)."""
    genome = sequence.Genome(spec.fasta)
    target = None
    if spec.gc_matched:
        positives = [sequence.encode(s) for s, y in zip(seqs, labels, strict=True) if y]
        target = sequence.gc_content(*sequence.pad_batch(positives))
    lengths = np.array([len(s) for s in seqs])
    windows = intervals.sample_background(genome, spec.blocked, lengths, spec.n, seed, target,
                                          max_n_fraction=spec.max_n_fraction)
    spans = windows[["chrom", "start", "end"]].itertuples(index=False)
    return [datasets.normalise(genome.fetch(c, s, e)) for c, s, e in spans], windows


def from_csv(train_csv: Path, test_csv: Path, val_fraction: float, seed: int, max_sequences: int = 0,
             crop_length: int = 0, exclude: set[str] = frozenset(), val_split: str = "overlap",
             max_test_sequences: int = 0, min_length: int = 0, train_size: int = 0,
             background: Background | None = None) -> dict:
    """The lab's format: train and test CSV files; validation carved from train by a seeded split
    (datasets.validation_split: whole groups of overlapping sequences, or random rows).

    Sequences are compared as the model reads them (datasets.normalise). Train sequences in `exclude` are held
    out; sequences are centre-cropped to `crop_length` when set; `max_sequences` cuts the training file and
    `max_test_sequences` the test file (0: all; `cuts` tells each cut); `train_size` keeps that many of the
    training windows left after validation is carved (nested subsamples: learning curves); `background` adds
    genome windows to the training split as negatives (validation and test stay the CSV files'; the windows
    are returned as `background`); a sequence shorter than `min_length` (the largest k-mer) is refused.
    Also returns `duplicates` (test sequences also
    in train), `overlapping` (test sequences sharing a 31-mer with a train sequence, duplicates included;
    per window the table's `overlaps_train` column, False for train and val rows) and `balance`
    (label_balance), warning on each.
    """
    _check_crop(crop_length, min_length)
    cuts = []
    train = datasets.read_labeled_csv(train_csv, min_length)
    train = _subsample(train, max_sequences, seed, cuts, f"{train_csv} (max_sequences)")
    train = _drop_excluded(train, exclude, train_csv)
    is_val = datasets.validation_split(list(train["sequence"]), val_fraction, seed, val_split)
    if train_size:
        keep = _learning_subset(is_val, train_size, seed, cuts, f"{train_csv} (train_size)")
        train, is_val = train[keep], is_val[keep]
    test = datasets.read_labeled_csv(test_csv, min_length)
    test = _subsample(test, max_test_sequences, seed, cuts, f"{test_csv} (max_test_sequences)")
    shared = len(set(train["sequence"]) & set(test["sequence"]))
    if shared:
        warnings.warn(f"{shared} sequences of {test_csv} also occur in {train_csv}: train/test leakage",
                      stacklevel=2)
    extra, windows = [], None
    if background is not None:
        fitted = ~is_val
        extra, windows = background_negatives(background, centre_crop(train["sequence"][fitted], crop_length),
                                              train["label"].to_numpy()[fitted], seed)
    train_seqs = list(train["sequence"]) + extra
    test_overlaps = overlaps_train(train_seqs, list(test["sequence"]))
    overlapping = int(test_overlaps.sum())
    if overlapping > shared:
        warnings.warn(f"{overlapping} of {len(test)} sequences of {test_csv} share a 31-bp stretch (either "
                      f"strand) with a sequence of {train_csv}: overlapping windows, partial leakage",
                      stacklevel=2)
    split = np.concatenate([np.where(is_val, "val", "train"), np.full(len(extra), "train"),
                            np.full(len(test), "test")])
    seqs = centre_crop(train_seqs + list(test["sequence"]), crop_length)
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    labels = np.concatenate([train["label"], np.zeros(len(extra)), test["label"]]).astype(np.float32)
    sources = [str(train_csv)] * len(train) + [str(background and background.fasta)] * len(extra)
    table = pd.DataFrame({"source": sources + [str(test_csv)] * len(test),
                          "line": list(train.index) + list(range(len(extra))) + list(test.index),
                          "length": lengths, "label": labels.astype(int), "split": split,
                          "overlaps_train": np.concatenate([np.zeros(len(train_seqs), bool), test_overlaps])})
    balance = label_balance(labels, split, ["label"])
    check_two_classes(balance, {"label": str(train_csv)})
    files = np.r_[0:len(train), len(train_seqs):len(split)]  # the background moves train's rate on purpose
    _warn_imbalance(label_balance(labels[files], split[files], ["label"]), str(test_csv))
    return {"tokens": tokens, "lengths": lengths, "labels": labels, "split": split, "table": table,
            "duplicates": shared, "overlapping": overlapping, "balance": balance, "cuts": cuts,
            "background": windows}


def from_csv_multi(train_csvs: dict[str, Path], test_csvs: dict[str, Path], val_fraction: float, seed: int,
                   max_sequences: int = 0, crop_length: int = 0, exclude: set[str] = frozenset(),
                   val_split: str = "overlap", max_test_sequences: int = 0, min_length: int = 0) -> dict:
    """Several marks' CSV files as one multi-task dataset: labels [n, n_marks], NaN where a sequence is not
    labelled for a mark; identical sequences are merged (all their labels kept), marks in `train_csvs` order.

    A sequence in a test file and a train file stays in test only (a warning gives the count); the other
    arguments, `cuts` and the table's `overlaps_train` column are from_csv's.
    """
    marks = list(train_csvs)
    if set(test_csvs) != set(marks):
        raise ValueError(f"train and test CSV files must name the same marks, got {marks} and "
                         f"{list(test_csvs)}.")
    _check_crop(crop_length, min_length)
    parts, cuts = {}, []
    for part, files, limit, key in (("train", train_csvs, max_sequences, "max_sequences"),
                                    ("test", test_csvs, max_test_sequences, "max_test_sequences")):
        labels: dict[str, dict[int, int]] = {}
        for t, mark in enumerate(marks):
            frame = datasets.read_labeled_csv(files[mark], min_length)
            frame = _subsample(frame, limit, seed, cuts, f"{files[mark]} ({key})")
            if part == "train":
                frame = _drop_excluded(frame, exclude, files[mark])
            for row, seq, label in zip(frame.index, frame["sequence"], frame["label"], strict=True):
                known = labels.setdefault(seq, {})
                if known.get(t, label) != label:
                    raise ValueError(f"{files[mark]} line {row}: the sequence is labelled both 0 and 1 "
                                     f"for {mark}.")
                known[t] = label
        parts[part] = labels
    moved = [seq for seq in parts["train"] if seq in parts["test"]]
    if moved:
        warnings.warn(f"{len(moved)} sequences of the test CSV files also occur in the train CSV files: kept "
                      f"in test only (train/test leakage)", stacklevel=2)
        for seq in moved:
            del parts["train"][seq]
    seqs = centre_crop(list(parts["train"]) + list(parts["test"]), crop_length)
    labels = np.full((len(seqs), len(marks)), np.nan, np.float32)
    for i, known in enumerate([*parts["train"].values(), *parts["test"].values()]):
        labels[i, list(known)] = list(known.values())
    is_val = datasets.validation_split(list(parts["train"]), val_fraction, seed, val_split)
    split = np.concatenate([np.where(is_val, "val", "train"), np.full(len(parts["test"]), "test")])
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    balance = label_balance(labels, split, marks)
    check_two_classes(balance, {mark: str(train_csvs[mark]) for mark in marks})
    _warn_imbalance(balance, "the test CSV files")
    test_overlaps = overlaps_train(list(parts["train"]), list(parts["test"]))
    flags = np.concatenate([np.zeros(len(parts["train"]), bool), test_overlaps])
    table = pd.DataFrame({"length": lengths, "split": split, "n_marks": (~np.isnan(labels)).sum(1),
                          "overlaps_train": flags})
    return {"tokens": tokens, "lengths": lengths, "labels": labels, "split": split, "table": table,
            "marks": marks, "balance": balance, "cuts": cuts}


def _check_row(row: pd.Series, where: str) -> None:
    """A row gives its variety as a FASTA, or as reference + vcf + vcf_sample; never both."""
    if row["fasta"] and row["vcf"]:
        raise ValueError(f"{where}: gives both fasta (the variety's own genome) and vcf; give either a "
                         f"variety FASTA, or the reference FASTA in `reference` with vcf and vcf_sample.")
    if row["vcf"]:
        lacking = [c for c in ("reference", "vcf_sample") if not row[c]]
        if lacking:
            raise ValueError(f"{where}: gives a vcf but no {' or '.join(lacking)}; a VCF variety needs the "
                             f"reference FASTA (`reference`) and its sample name in the VCF (`vcf_sample`).")
    elif not row["fasta"]:
        raise ValueError(f"{where}: gives neither fasta nor vcf; expected a variety FASTA, or reference + "
                         f"vcf + vcf_sample.")


def _sample_table(sheet: pd.DataFrame, base: Path, where: str, row_name: str) -> pd.DataFrame:
    missing = [c for c in ("variety", "mark", "peaks") if c not in sheet.columns]
    missing += [] if {"fasta", "vcf"} & set(sheet.columns) else ["fasta"]
    if missing:
        raise ValueError(f"{where}: sample sheet lacks column(s) {', '.join(missing)}; expected columns "
                         f"{', '.join(SAMPLE_COLUMNS)}, or {', '.join(VCF_COLUMNS)} for varieties given as "
                         f"variants of a VCF")
    sheet = sheet.reindex(columns=list(dict.fromkeys([*sheet.columns, *SAMPLE_COLUMNS, *VCF_COLUMNS])))
    sheet = sheet.fillna("").reset_index(drop=True)
    vcf_samples: dict[str, list[str]] = {}
    for i, row in sheet.iterrows():
        here = f"{where} {row_name} {i + 1} (variety {row['variety']}, mark {row['mark']})"
        _check_row(row, here)
        for column in PATH_COLUMNS:
            if row[column]:
                sheet.loc[i, column] = str((base / row[column]).resolve())
        if row["vcf"]:
            vcf = sheet.loc[i, "vcf"]
            known = vcf_samples.setdefault(vcf, variants.read_samples(vcf))
            if row["vcf_sample"] not in known:
                more = f" ... ({len(known)} in all)" if len(known) > 20 else ""
                raise ValueError(f"{here}: vcf_sample {row['vcf_sample']!r} is not a sample of the VCF "
                                 f"{vcf}, which has {', '.join(known[:20])}{more}.")
    return sheet


def read_sample_sheet(path: Path) -> pd.DataFrame:
    """A TSV of variety, mark, fasta, peaks (or variety, mark, reference, vcf, vcf_sample, peaks: the variety
    as the reference plus a sample's variants); file paths relative to the sheet's folder become absolute."""
    sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#")
    return _sample_table(sheet, Path(path).parent, str(path), "row")


def sample_rows(samples: list[dict], data_dir: Path) -> pd.DataFrame:
    """The `samples` parameter (a sample sheet written in the experiment's YAML) as a sample sheet; file paths
    relative to `data_dir` become absolute."""
    return _sample_table(pd.DataFrame(samples, dtype=str), Path(data_dir), "the samples parameter", "entry")


def reference_of(row) -> str:
    """The reference-coordinate genome of a sample row: its reference FASTA, else its own FASTA."""
    return row["reference"] or row["fasta"]


def _load_vcfs(rows: pd.DataFrame, **load_kw) -> dict[tuple[str, str], variants.Variants]:
    """Each (vcf, reference) of the rows loaded once, for the samples the rows name."""
    loaded = {}
    for (vcf, reference), group in rows[rows["vcf"] != ""].groupby(["vcf", "reference"], sort=False):
        names = list(dict.fromkeys(group["vcf_sample"]))
        loaded[vcf, reference] = variants.Variants.load(vcf, sequence.Genome(reference), samples=names,
                                                        **load_kw)
    return loaded


def split_windows(table: pd.DataFrame, val_chroms: list[str], test_chroms: list[str],
                  val_varieties: list[str] = (), test_varieties: list[str] = ()) -> pd.DataFrame:
    """split (train / val / test) and held_out_by (region, variety, region+variety, or "" in train) per
    window: held out for test when its centre lies in a test region or its variety is a test variety, else
    for validation likewise."""
    known = list(dict.fromkeys(table["variety"]))
    for name, chosen in (("val_varieties", val_varieties), ("test_varieties", test_varieties)):
        unknown = [v for v in chosen if v not in known]
        if unknown:
            raise ValueError(f"{name} {unknown} are not varieties of the sample sheet's rows of this mark "
                             f"({', '.join(known)}).")
    both = sorted(set(val_varieties) & set(test_varieties))
    if both:
        raise ValueError(f"varieties {both} are in both val_varieties and test_varieties.")
    by_region = intervals.split_by_region(table, list(val_chroms), list(test_chroms))
    variety = table["variety"].to_numpy()
    by_variety = np.where(np.isin(variety, list(test_varieties)), "test",
                          np.where(np.isin(variety, list(val_varieties)), "val", "train"))
    split = np.where((by_region == "test") | (by_variety == "test"), "test",
                     np.where((by_region == "val") | (by_variety == "val"), "val", "train"))
    region, held = by_region == split, by_variety == split
    reason = np.where(region & held, "region+variety", np.where(region, "region", "variety"))
    return table.assign(split=split, held_out_by=np.where(split == "train", "", reason))


def from_genome(sample_sheet: Path | pd.DataFrame, mark: str, window: int, negatives_per_positive: float,
                val_chroms: list[str], test_chroms: list[str], seed: int, max_sequences: int = 0,
                max_n_fraction: float = 0.1, background: str = "random",
                exclude_bed: Path | None = None, max_test_sequences: int = 0, min_length: int = 0,
                val_varieties: list[str] = (), test_varieties: list[str] = (), **load_kw) -> dict:
    """Windows centred on the mark's peak summits (label 1) and windows off any peak (label 0), per variety;
    windows with more than `max_n_fraction` N are rejected, and the split (split_windows) holds out the
    chromosomes or chrom:start-end regions of `val_chroms` and `test_chroms` and the varieties of
    `val_varieties` and `test_varieties`.

    `sample_sheet` is a TSV path or a table from read_sample_sheet / sample_rows; peaks files may be BEDs of
    labelled windows (intervals.read_peaks). A variety given as reference + VCF sample has its peaks and
    windows in reference coordinates and its windows' tokens built as the map builds them
    (variants.variety_tokens_at; load_kw: het, missing, chrom_alias for variants.Variants.load); its
    GC-matched background is matched on the reference's GC.

    background "random" draws negatives uniformly off the peaks, "gc_matched" matches the positives' GC
    histogram; windows overlapping `exclude_bed` are neither positives nor negatives (`excluded` counts the
    positives dropped). `max_sequences` cuts the training and validation windows, `max_test_sequences` the
    test windows (0: all; `cuts` tells each cut); a window shorter than `min_length` (the largest k-mer) is
    refused.
    """
    if window < min_length:
        raise ValueError(f"window {window} bp is shorter than the largest k-mer ({min_length} bp).")
    if not (val_chroms or val_varieties) or not (test_chroms or test_varieties):
        raise ValueError("genome mode needs val_chroms or val_varieties, and test_chroms or test_varieties: "
                         "the chromosomes, regions or varieties held out for validation and test")
    if background not in ("random", "gc_matched"):
        raise ValueError(f"background must be 'random' or 'gc_matched', got {background!r}")
    is_table = isinstance(sample_sheet, pd.DataFrame)
    sheet = sample_sheet if is_table else read_sample_sheet(sample_sheet)
    rows = sheet[sheet["mark"] == mark]
    if rows.empty:
        where, marks = "the sample sheet" if is_table else sample_sheet, sorted(set(sheet["mark"]))
        raise ValueError(f"{where} has no sample of mark {mark!r}; its marks are {marks}")
    tables, tokens, excluded = [], [], 0
    loaded = _load_vcfs(rows, **load_kw)
    for n, (_, sample) in enumerate(rows.iterrows()):
        fasta = reference_of(sample)
        genome = sequence.Genome(fasta)
        held_chroms = {intervals.held_out_region(r)[0] for r in [*val_chroms, *test_chroms]}
        unknown = held_chroms - set(genome.chrom_sizes)
        if unknown:
            raise ValueError(f"held-out chromosome(s) {sorted(unknown)} are not in {fasta}; "
                             f"it has {list(genome.chrom_sizes)}")
        peaks = intervals.read_peaks(sample.peaks, genome.chrom_sizes, mark)
        exclude = None if exclude_bed is None else intervals.read_peaks(exclude_bed, genome.chrom_sizes)
        positives = intervals.summit_windows(peaks, window, genome.chrom_sizes).assign(label=1)
        if exclude is not None:
            dropped = intervals.overlaps(positives, exclude)
            excluded += int(dropped.sum())
            positives = positives[~dropped]
        n_negatives = int(round(len(positives) * negatives_per_positive))
        if background == "gc_matched":
            negatives = intervals.gc_matched_background(peaks, genome, window, n_negatives, seed + n,
                                                        max_n_fraction=max_n_fraction, exclude=exclude)
        else:
            blocked = peaks if exclude is None else pd.concat([peaks, exclude], ignore_index=True)
            negatives = intervals.background_windows(blocked, genome.chrom_sizes, window, n_negatives,
                                                     seed + n)
        windows = pd.concat([positives, negatives.assign(label=0)], ignore_index=True)
        windows = windows[["chrom", "start", "end", "label"]].assign(variety=sample.variety)
        if sample.vcf:
            tokens.extend(variants.variety_tokens_at(genome, loaded[sample.vcf, sample.reference],
                                                     sample.vcf_sample, windows, window))
        else:
            spans = zip(windows.chrom, windows.start, windows.end, strict=True)
            tokens.extend(genome.tokens(chrom, start, end) for chrom, start, end in spans)
        tables.append(windows)
    table = pd.concat(tables, ignore_index=True)
    n_rich = np.array([np.mean(t == sequence.N) > max_n_fraction for t in tokens])
    if n_rich.any():
        positives = int(table["label"][n_rich].sum())
        warnings.warn(f"{n_rich.sum()} of {len(table)} windows hold over {max_n_fraction:.0%} N and were "
                      f"rejected ({positives} of them positives)", stacklevel=2)
        table = table[~n_rich].reset_index(drop=True)
        tokens = [t for t, bad in zip(tokens, n_rich, strict=True) if not bad]
    table = split_windows(table, val_chroms, test_chroms, val_varieties, test_varieties)
    seen = (table["held_out_by"] == "variety").sum()
    if seen:
        held = sorted(set(val_varieties) | set(test_varieties))
        warnings.warn(f"{seen} held-out windows of {held} lie outside the held-out regions, where other "
                      f"varieties' training windows sit at the same reference positions: they test a known "
                      f"locus in a new variety (held_out_by: region+variety marks the windows new in both)",
                      stacklevel=2)
    cuts, keep = [], []
    limits = {"train": ("max_sequences", max_sequences), "val": ("max_sequences", max_sequences),
              "test": ("max_test_sequences", max_test_sequences)}
    for name, part in table.groupby("split"):
        key, limit = limits[name]
        keep.append(_subsample(part, limit, seed, cuts, f"{name} windows ({key})").index)
    keep = np.concatenate(keep)
    keep.sort()
    table = table.loc[keep].reset_index(drop=True)
    token_array, lengths = sequence.pad_batch([tokens[i] for i in keep], window)
    table["length"] = lengths
    labels = table["label"].to_numpy(np.float32)
    split = table["split"].to_numpy()
    return {"tokens": token_array, "lengths": lengths, "labels": labels, "split": split, "table": table,
            "excluded": excluded, "balance": label_balance(labels, split, [mark]), "cuts": cuts}


def peak_target_files(peak_targets: dict, data: Path) -> dict[str, tuple[Path, str]]:
    """The `peak_targets` parameter ({target: {bed, name}}, paths relative to data_dir) as labels.build_labels
    takes it: {target: (path, name filter)}."""
    files = {}
    for target, spec in peak_targets.items():
        if not isinstance(spec, dict) or "bed" not in spec or set(spec) - {"bed", "name"}:
            raise ValueError(f"peak_targets {target!r}: expected {{bed: <peaks relative to data_dir>, name: "
                             f"<tissue or ''>}}, got {spec!r}")
        files[target] = (data / spec["bed"], str(spec.get("name") or ""))
    return files


def from_genomewide(fasta: Path, window: int, val_regions: list[str], test_regions: list[str], seed: int,
                    segmentation: Path | None = None, label_map: dict | None = None,
                    label_states: list | None = None, peaks: dict | None = None, label_bin: int = 50,
                    centre_bin: int = 200, eval_stride: int = 1000, baseline_windows: int = 20000,
                    max_n_fraction: float = 0.1, min_length: int = 0, train_genome_bp: int = 0) -> dict:
    """The genome-wide task: targets from a segmentation (`label_map`) and peak sets read at each window's
    central `centre_bin` bp, the labelled genome cut into training, validation and test blocks.

    Validation and test are fixed tilings of their blocks (one window every `eval_stride` bp); the training
    split of the dataset holds `baseline_windows` windows drawn once from the training blocks, for the
    baselines, while the transformer draws fresh ones every epoch from `genome` (genomewide.GenomeWindows).
    `train_genome_bp` keeps about that much of the training blocks (genomewide.training_subset; 0: all).
    """
    if window < min_length:
        raise ValueError(f"window {window} bp is shorter than the largest k-mer ({min_length} bp).")
    if not val_regions or not test_regions:
        raise ValueError("genomewide mode needs val_chroms and test_chroms: the chromosomes or regions "
                         "(chrom:start-end) held out for validation and test")
    tokens = genomewide.chrom_tokens(fasta)
    sizes = {chrom: len(t) for chrom, t in tokens.items()}
    labelled = build_labels(sizes, label_bin, segmentation, label_map, label_states or None, peaks)
    blocks = genomewide.blocks(sizes, labelled, list(val_regions), list(test_regions))
    blocks = genomewide.training_subset(blocks, train_genome_bp, seed)
    parts, tables = [], []
    for name in ("train", "val", "test"):
        if name == "train":
            centres, windows, targets = genomewide.drawn_windows(tokens, labelled, blocks, window, centre_bin,
                                                                 baseline_windows, seed, max_n_fraction)
        else:
            centres, windows, targets = genomewide.fixed_windows(tokens, labelled, blocks, name, window,
                                                                 eval_stride, centre_bin, max_n_fraction)
        parts.append((windows, targets))
        tables.append(centres.assign(split=name, length=window))
    table = pd.concat(tables, ignore_index=True)
    token_array = np.concatenate([w for w, _ in parts])
    label_array = np.concatenate([y for _, y in parts])
    split = table["split"].to_numpy()
    return {"tokens": token_array, "lengths": np.full(len(table), window, np.int32), "labels": label_array,
            "split": split, "table": table, "marks": list(labelled.targets), "cuts": [],
            "balance": label_balance(label_array, split, list(labelled.targets)),
            "genome": (tokens, labelled, blocks)}


def from_genes(fasta: Path, gene_table: Path, marks: list[str], upstream: int, downstream: int,
               val_regions: list[str], test_regions: list[str], min_length: int = 0) -> dict:
    """Per-gene regression: the `upstream` + `downstream` bp around each TSS read on the gene's strand,
    log1p of each mark's value as targets, genes split by the block holding their TSS (a training gene whose
    window reaches a held-out block is dropped, and counted in `cuts`)."""
    if upstream + downstream < min_length:
        raise ValueError(f"tss_upstream + tss_downstream ({upstream + downstream} bp) is shorter than the "
                         f"largest k-mer ({min_length} bp).")
    if not val_regions or not test_regions:
        raise ValueError("genes mode needs val_chroms and test_chroms: the regions whose genes are held out")
    tokens = genomewide.chrom_tokens(fasta)
    table = genes.read_gene_table(gene_table, list(marks), {chrom: len(t) for chrom, t in tokens.items()})
    split = genes.split_genes(table, list(val_regions), list(test_regions), upstream, downstream)
    cuts = []
    dropped = int((split == "drop").sum())
    if dropped:
        cuts.append(f"{dropped} training genes whose TSS window reaches a held-out block")
    keep = split != "drop"
    table = table[keep].reset_index(drop=True).assign(split=split[keep], length=upstream + downstream)
    windows = genes.tss_windows(table, tokens, upstream, downstream)
    targets = genes.gene_targets(table, list(marks))
    return {"tokens": windows, "lengths": np.full(len(table), upstream + downstream, np.int32),
            "labels": targets, "split": table["split"].to_numpy(), "table": table, "marks": list(marks),
            "cuts": cuts}


INPUTS = ("csv", "genome", "genomewide", "genes", "simulate")


def _excluded_sequences(p: dict, data: Path) -> tuple[set[str], pd.DataFrame | None]:
    """The sequences of `exclude_bed` (read from `exclude_fasta`) kept out of training, and its windows."""
    if not p["exclude_bed"]:
        return set(), None
    held_out = intervals.read_labelled_windows(data / p["exclude_bed"])
    exclude = sequences_in(held_out, data / p["exclude_fasta"])
    print(f"{len(exclude)} sequences of {p['exclude_bed']} are kept out of training")
    return exclude, held_out


def _from_csv_parameters(p: dict, data: Path) -> dict:
    exclude, held_out = _excluded_sequences(p, data)
    common = dict(max_sequences=p["max_sequences"], crop_length=p["crop_length"], exclude=exclude,
                  val_split=p["val_split"], max_test_sequences=p["max_test_sequences"],
                  min_length=max(p["kmers"]))
    if p["marks"]:
        return from_csv_multi({m: data / p["train_csv"].format(mark=m) for m in p["marks"]},
                              {m: data / p["test_csv"].format(mark=m) for m in p["marks"]},
                              p["val_fraction"], p["seed"], **common)
    extra = None
    if p["background_n"]:
        extra = Background(data / p["background_fasta"], p["background_n"], p["background"] == "gc_matched",
                           blocked_regions(held_out, p["background_margin"], p["background_exclude"]),
                           p["max_n_fraction"])
    return from_csv(data / p["train_csv"], data / p["test_csv"], p["val_fraction"], p["seed"],
                    train_size=p["train_size"], background=extra, **common)


def _sample_sheet(p: dict, data: Path, artifacts: Path) -> pd.DataFrame:
    """The varieties: the demo's simulated ones, the inline `samples`, or the `sample_sheet` file."""
    if p["input"] == "simulate":
        from seq2epi.data import simulate  # msprime and the demo genome, only when simulating

        return read_sample_sheet(simulate.simulate_demo(
            artifacts / "genome", n_chroms=p["sim_chroms"], chrom_len=p["sim_chrom_len"],
            n_varieties=p["sim_varieties"], seed=p["seed"], sheet="vcf" if p["sim_vcf"] else "fasta"))
    if p["samples"]:
        return sample_rows(p["samples"], data)
    return read_sample_sheet(data / p["sample_sheet"])


def _from_genome_parameters(p: dict, data: Path, artifacts: Path) -> dict:
    sheet = _sample_sheet(p, data, artifacts)
    with atomic_path(artifacts / "samples.tsv") as tmp:  # absolute paths, for 04_predict_genome
        sheet.to_csv(tmp, sep="\t", index=False)
    prepared = from_genome(sheet, p["mark"], p["window"], p["negatives_per_positive"], p["val_chroms"],
                           p["test_chroms"], p["seed"], p["max_sequences"], p["max_n_fraction"],
                           p["background"], data / p["exclude_bed"] if p["exclude_bed"] else None,
                           p["max_test_sequences"], min_length=max(p["kmers"]),
                           val_varieties=p["val_varieties"], test_varieties=p["test_varieties"],
                           het=p["het_policy"], missing=p["missing_policy"], chrom_alias=p["chrom_alias"])
    return {**prepared, "samples": sheet}


def _from_genomewide_parameters(p: dict, data: Path) -> dict:
    return from_genomewide(data / p["genome_fasta"], p["window"], p["val_chroms"], p["test_chroms"],
                           p["seed"], p["segmentation_bed"] and data / p["segmentation_bed"], p["label_map"],
                           p["label_states"], peak_target_files(p["peak_targets"], data), p["label_bin"],
                           p["centre_bin"], p["eval_stride"], p["baseline_windows"], p["max_n_fraction"],
                           min_length=max(p["kmers"]), train_genome_bp=p["train_genome_bp"])


def from_parameters(params: dict, data: Path, artifacts: Path) -> dict:
    """01's dataset from its parameters (parameters.notebook_values), by `input`: the prepared dict of
    from_csv / from_csv_multi / from_genome (with `samples`, the sheet, also written to samples.tsv) /
    from_genomewide / from_genes."""
    p, kind = params, params["input"]
    if (p["train_size"] or p["background_n"]) and (kind != "csv" or p["marks"]):
        raise ValueError("train_size and background_n are for a single-mark training CSV "
                         "(input: csv, no marks).")
    if kind == "csv":
        return _from_csv_parameters(p, data)
    if kind in ("genome", "simulate"):
        return _from_genome_parameters(p, data, artifacts)
    if kind == "genomewide":
        return _from_genomewide_parameters(p, data)
    if kind == "genes":
        return from_genes(data / p["genome_fasta"], data / p["gene_table"], p["gene_marks"],
                          p["tss_upstream"], p["tss_downstream"], p["val_chroms"], p["test_chroms"],
                          min_length=max(p["kmers"]))
    raise ValueError(f"input must be csv, genome, genomewide, genes or simulate, not {kind!r}")


def save_prepared(prepared: dict, params: dict, artifacts: Path) -> None:
    """Write 01's dataset into `artifacts`: dataset.npz and windows.tsv.gz, and genome.npz (genomewide) or
    background.bed (background negatives) when the inputs made them."""
    if prepared.get("genome") is not None:
        genomewide.save_genome(artifacts / "genome.npz", *prepared["genome"])
    if prepared.get("background") is not None:
        with atomic_path(artifacts / "background.bed") as tmp:
            prepared["background"].to_csv(tmp, sep="\t", index=False, header=False)
    extra = {}
    if params["input"] == "genomewide":
        extra = {key: params[key] for key in ("window", "centre_bin", "windows_per_epoch", "max_n_fraction")}
    datasets.save_dataset(artifacts / "dataset.npz", prepared["tokens"], prepared["lengths"],
                          prepared["labels"], prepared["split"], mark=params["mark"],
                          marks=prepared.get("marks", [params["mark"]]), input=params["input"], **extra)
    with atomic_path(artifacts / "windows.tsv.gz") as tmp:
        prepared["table"].to_csv(tmp, sep="\t", index=False)
