"""Per-gene regression inputs: a gene table with measured marks, strand-aware TSS windows, log1p targets
and a block split that keeps held-out sequence out of training windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seq2epi.data.genomewide import held_out_regions, token_slices
from seq2epi.data.intervals import _chrom_list
from seq2epi.data.sequence import reverse_complement

_COORDINATES = ["gene_id", "chrom", "start", "end", "strand"]


def _first_bad(path: Path, table: pd.DataFrame, bad: pd.Series) -> tuple[str, pd.Series]:
    """("<file> line <n>", row) of the first row where `bad` holds."""
    row = table[bad.to_numpy()].iloc[0]
    return f"{path} line {row['line']}", row


def _check_genes(path: Path, table: pd.DataFrame, marks: list[str], chrom_sizes: dict[str, int]) -> None:
    """Refuse the first row with a bad coordinate, strand, mark value or chromosome, naming its line."""
    for column in ("start", "end"):
        bad = table[column].isna() | (table[column] % 1 != 0)
        if bad.any():
            where, row = _first_bad(path, table, bad)
            raise ValueError(f"{where}: {column} must be an integer, got {row['raw_' + column]!r}.")
    bad = ~(table["start"] >= 0) | ~(table["start"] < table["end"])
    if bad.any():
        where, row = _first_bad(path, table, bad)
        raise ValueError(f"{where}: expected 0 <= start < end, got start={row['start']:.0f} "
                         f"end={row['end']:.0f}.")
    bad = ~table["strand"].isin(["+", "-"])
    if bad.any():
        where, row = _first_bad(path, table, bad)
        raise ValueError(f"{where}: strand must be + or -, got {row['strand']!r}.")
    for mark in marks:
        bad = table[mark].isna() | (table[mark] < 0)
        if bad.any():
            where, row = _first_bad(path, table, bad)
            raise ValueError(f"{where}: {mark} must be a non-negative number, got {row['raw_' + mark]!r}.")
    size = table["chrom"].map(chrom_sizes)
    if size.isna().any():
        where, row = _first_bad(path, table, size.isna())
        raise ValueError(f"{where}: chromosome {row['chrom']!r} is not in the genome (which has "
                         f"{_chrom_list(chrom_sizes)}).")
    past = table["end"] > size
    if past.any():
        where, row = _first_bad(path, table, past)
        raise ValueError(f"{where}: gene {row['gene_id']} ends at {row['end']:.0f}, past the end of "
                         f"{row['chrom']} ({chrom_sizes[row['chrom']]} bp).")


def read_gene_table(path: Path, marks: list[str], chrom_sizes: dict[str, int]) -> pd.DataFrame:
    """A tab-separated gene table as gene_id, chrom, start, end (0-based half-open), strand (+/-) and the
    marks (non-negative numbers), checked line by line against `chrom_sizes`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gene table {path} does not exist")
    raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in _COORDINATES + list(marks) if c not in raw.columns]
    if missing:
        raise ValueError(f"{path} line 1: expected columns {_COORDINATES + list(marks)}, missing {missing}.")
    table = raw[_COORDINATES + list(marks)].copy()
    table["line"] = np.arange(len(table)) + 2  # the header is line 1
    for column in ["start", "end", *marks]:
        table["raw_" + column] = table[column]
        table[column] = pd.to_numeric(table[column].str.strip(), errors="coerce")
    _check_genes(path, table, marks, chrom_sizes)
    out = table[_COORDINATES + list(marks)].astype({"start": np.int64, "end": np.int64})
    return out.astype({mark: np.float64 for mark in marks}).reset_index(drop=True)


def _tss(genes: pd.DataFrame) -> np.ndarray:
    """The TSS base of each gene: `start` on +, `end` - 1 on - (0-based half-open coordinates)."""
    return np.where(genes["strand"].to_numpy() == "+", genes["start"].to_numpy(), genes["end"].to_numpy() - 1)


def _window_starts(genes: pd.DataFrame, upstream: int, downstream: int) -> np.ndarray:
    """Genomic start of each gene's TSS window: `upstream` bp before the TSS on the gene's strand, and
    `downstream` bp from it (the TSS base included)."""
    plus = genes["strand"].to_numpy() == "+"
    return np.where(plus, _tss(genes) - upstream, _tss(genes) + 1 - downstream)


def tss_windows(genes: pd.DataFrame, tokens: dict[str, np.ndarray], upstream: int, downstream: int
                ) -> np.ndarray:
    """uint8 [n, upstream + downstream] read 5'->3' on each gene's strand (a minus-strand gene's window is the
    reverse complement), the TSS base at column `upstream`; N past a chromosome end."""
    width = upstream + downstream
    if upstream < 0 or downstream < 0 or width == 0:
        raise ValueError(f"upstream and downstream must be non-negative and not both 0, got {upstream}, "
                         f"{downstream}.")
    out = token_slices(tokens, genes["chrom"].to_numpy(), _window_starts(genes, upstream, downstream), width)
    minus = genes["strand"].to_numpy() == "-"
    out[minus] = reverse_complement(out[minus], np.full(int(minus.sum()), width))
    return out


def gene_targets(genes: pd.DataFrame, marks: list[str]) -> np.ndarray:
    """float32 log1p(value) [n, n_marks]."""
    return np.log1p(genes[marks].to_numpy(np.float64)).astype(np.float32)


def split_genes(genes: pd.DataFrame, val_regions: list[str], test_regions: list[str], upstream: int,
                downstream: int) -> np.ndarray:
    """'train' | 'val' | 'test' by the region holding each gene's TSS; a training gene whose TSS window
    (`upstream`/`downstream` as in tss_windows) reaches into a held-out region is 'drop', so no training
    context is held out."""
    held_out = held_out_regions(val_regions, test_regions)
    chrom, tss = genes["chrom"].to_numpy(), _tss(genes)
    start = _window_starts(genes, upstream, downstream)
    split = np.full(len(genes), "train", dtype=object)
    reaches = np.zeros(len(genes), bool)
    for region in held_out.itertuples():
        on = chrom == region.chrom
        split[on & (tss >= region.start) & (tss < region.end)] = region.split
        reaches |= on & (start < region.end) & (start + upstream + downstream > region.start)
    split[(split == "train") & reaches] = "drop"
    return split.astype(str)


def tss_spans(genes: pd.DataFrame, upstream: int, downstream: int) -> pd.DataFrame:
    """chrom, start, end of each gene's TSS window (as tss_windows reads it) in genome coordinates."""
    start = _window_starts(genes, upstream, downstream)
    return pd.DataFrame({"chrom": genes["chrom"].to_numpy(), "start": np.maximum(start, 0),
                         "end": start + upstream + downstream})
