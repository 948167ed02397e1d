"""Turn an experiment's inputs (labeled CSV files, or genomes + peaks) into one dataset of windows."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from seq2epi import datasets, intervals, sequence

SAMPLE_COLUMNS = ("variety", "mark", "fasta", "peaks")


def _subsample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if not n or len(frame) <= n else frame.sample(n=n, random_state=seed).sort_index()


def from_csv(train_csv: Path, test_csv: Path, val_fraction: float, seed: int, max_sequences: int = 0) -> dict:
    """The lab's format: train and test CSV files; validation carved from train by a seeded split."""
    train = _subsample(datasets.read_labeled_csv(train_csv), max_sequences, seed)
    test = _subsample(datasets.read_labeled_csv(test_csv), max_sequences, seed)
    shared = len(set(train["sequence"]) & set(test["sequence"]))
    if shared:
        warnings.warn(f"{shared} sequences of {test_csv} also occur in {train_csv}: train/test leakage",
                      stacklevel=2)
    is_val = datasets.random_split(len(train), val_fraction, seed)
    split = np.concatenate([np.where(is_val, "val", "train"), np.full(len(test), "test")])
    seqs = list(train["sequence"]) + list(test["sequence"])
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    labels = np.concatenate([train["label"], test["label"]]).astype(np.float32)
    table = pd.DataFrame({"source": [str(train_csv)] * len(train) + [str(test_csv)] * len(test),
                          "row": list(train.index) + list(test.index), "length": lengths,
                          "label": labels.astype(int), "split": split})
    return {"tokens": tokens, "lengths": lengths, "labels": labels, "split": split, "table": table}


def read_sample_sheet(path: Path) -> pd.DataFrame:
    """A TSV of variety, mark, fasta, peaks; file paths relative to the sheet's folder become absolute."""
    sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#")
    missing = [c for c in SAMPLE_COLUMNS if c not in sheet.columns]
    if missing:
        raise ValueError(f"{path}: sample sheet lacks column(s) {', '.join(missing)}; expected a TSV with "
                         f"columns {', '.join(SAMPLE_COLUMNS)}")
    for column in ("fasta", "peaks"):
        sheet[column] = [str((Path(path).parent / p).resolve()) for p in sheet[column]]
    return sheet


def from_genome(sample_sheet: Path, mark: str, window: int, negatives_per_positive: float,
                val_chroms: list[str], test_chroms: list[str], seed: int, max_sequences: int = 0,
                max_n_fraction: float = 0.1) -> dict:
    """Windows centred on the mark's peak summits (label 1) and windows off any peak (label 0), per variety;
    windows with more than `max_n_fraction` N are rejected, and the split holds out whole chromosomes."""
    if not val_chroms or not test_chroms:
        raise ValueError("genome mode needs val_chroms and test_chroms: the chromosomes held out for "
                         "validation and test")
    sheet = read_sample_sheet(sample_sheet)
    rows = sheet[sheet["mark"] == mark]
    if rows.empty:
        marks = sorted(set(sheet["mark"]))
        raise ValueError(f"{sample_sheet} has no sample of mark {mark!r}; its marks are {marks}")
    tables, tokens = [], []
    for n, sample in enumerate(rows.itertuples()):
        genome = sequence.Genome(sample.fasta)
        unknown = set(val_chroms + test_chroms) - set(genome.chrom_sizes)
        if unknown:
            raise ValueError(f"held-out chromosome(s) {sorted(unknown)} are not in {sample.fasta}; "
                             f"it has {list(genome.chrom_sizes)}")
        peaks = intervals.read_peaks(sample.peaks, genome.chrom_sizes)
        positives = intervals.summit_windows(peaks, window, genome.chrom_sizes).assign(label=1)
        n_negatives = int(round(len(positives) * negatives_per_positive))
        negatives = intervals.background_windows(peaks, genome.chrom_sizes, window, n_negatives, seed + n)
        windows = pd.concat([positives, negatives.assign(label=0)], ignore_index=True)
        windows = windows[["chrom", "start", "end", "label"]].assign(variety=sample.variety)
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
    table["split"] = intervals.split_by_chromosome(table, list(val_chroms), list(test_chroms))
    keep = np.concatenate([_subsample(part, max_sequences, seed).index for _, part in table.groupby("split")])
    keep.sort()
    table = table.loc[keep].reset_index(drop=True)
    token_array, lengths = sequence.pad_batch([tokens[i] for i in keep], window)
    table["length"] = lengths
    return {"tokens": token_array, "lengths": lengths, "labels": table["label"].to_numpy(np.float32),
            "split": table["split"].to_numpy(), "table": table}
