"""Readers of user inputs: FASTA, the lab's CSV and BED regions of a genome (each plain, gzip or bgzip) into
sequences (Entry: id, bases, label), read one at a time so a multi-GB input stays out of memory."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from seq2epi.data.sequence import Genome
from seq2epi.data.variants import check_interval
from seq2epi.lab.io import open_text


def few(names, n: int = 5) -> str:
    """The first `n` names, comma-separated, with how many there are in all when more."""
    names = list(names)
    return ", ".join(map(str, names[:n])) + (f", ... ({len(names)} in all)" if len(names) > n else "")


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
        warnings.warn(f"{source}: {len(renamed)} duplicate id(s) kept and made unique: {few(renamed, 3)}.",
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
