"""DNA tokens (A C G T N PAD), reverse complement, GC content and FASTA access."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyfaidx

from seq2epi.lab.io import bgzip_copy, cache_dir, compression, open_text

ALPHABET = "ACGTN"
N = 4
PAD = 5
N_TOKENS = 6

_ENCODE = np.full(256, N, dtype=np.uint8)
for _i, _base in enumerate("ACGT"):
    _ENCODE[ord(_base)] = _ENCODE[ord(_base.lower())] = _i
_DECODE = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
_COMPLEMENT = np.array([3, 2, 1, 0, N, PAD], dtype=np.uint8)


def encode(seq: str) -> np.ndarray:
    """Tokens of `seq` (uint8, same length); anything not ACGT/acgt becomes N."""
    return _ENCODE[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]


def decode(tokens) -> str:
    """The sequence of `tokens`, PAD dropped."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() > PAD):
        raise ValueError(f"tokens must lie in 0..{PAD}, got values from {tokens.min()} to {tokens.max()}")
    tokens = tokens[tokens != PAD].astype(np.intp)
    return _DECODE[tokens].tobytes().decode()


def _valid_mask(tokens: np.ndarray, lengths) -> np.ndarray:
    """[n, L] mask of positions inside each sequence (before its length, or not PAD when no lengths)."""
    if lengths is None:
        return tokens != PAD
    lengths = np.asarray(lengths).reshape(-1)
    return np.arange(tokens.shape[1]) < lengths[:, None]


def reverse_complement(tokens: np.ndarray, lengths=None) -> np.ndarray:
    """Reverse complement; for padded [n, L] each valid prefix is reversed and PAD stays at the end.

    Without `lengths`, the valid prefix is the non-PAD positions (PAD is only ever trailing).
    """
    tokens = np.asarray(tokens, dtype=np.uint8)
    if tokens.ndim not in (1, 2):
        raise ValueError(f"tokens must be 1-D or 2-D, got shape {tokens.shape}")
    batch = np.atleast_2d(tokens)
    n, width = batch.shape
    lengths = _valid_mask(batch, lengths).sum(1)
    source = lengths[:, None] - 1 - np.arange(width)
    valid = source >= 0
    out = np.full_like(batch, PAD)
    rows = np.broadcast_to(np.arange(n)[:, None], batch.shape)
    out[valid] = _COMPLEMENT[batch[rows[valid], source[valid]]]
    return out[0] if tokens.ndim == 1 else out


def pad_batch(seqs: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack token arrays into a PAD-filled [n, length] uint8 array (length defaults to the longest)."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int32)
    width = int(lengths.max(initial=0)) if length is None else length
    if lengths.size and lengths.max() > width:
        i = int(lengths.argmax())
        raise ValueError(f"sequence {i} has {lengths[i]} tokens, longer than length={width}")
    out = np.full((len(seqs), width), PAD, dtype=np.uint8)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, lengths


def gc_content(tokens, lengths=None) -> np.ndarray:
    """Fraction of G+C among valid non-N bases, per sequence (NaN when there are none)."""
    tokens = np.asarray(tokens)
    batch = np.atleast_2d(tokens)
    valid = _valid_mask(batch, lengths) & (batch < N)
    gc = (valid & ((batch == 1) | (batch == 2))).sum(1)
    total = valid.sum(1)
    out = np.divide(gc, total, out=np.full(len(batch), np.nan), where=total > 0)
    return out[0] if tokens.ndim == 1 else out


def _index_names(path: Path) -> dict[str, str]:
    """pyfaidx index locations: next to the FASTA, or in a temp cache when that folder is read-only."""
    if Path(f"{path}.fai").exists() or os.access(path.parent, os.W_OK):
        return {}
    cache = cache_dir(path)
    return {"indexname": str(cache / f"{path.name}.fai"), "gzi_indexname": str(cache / f"{path.name}.gzi")}


class Genome:
    """Read-only FASTA (plain, bgzip, or plain gzip read through a bgzip copy) via pyfaidx; the .fai index is
    built when absent. A record without sequence is refused, naming it."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"FASTA file {self.path} does not exist")
        source = self.path
        if compression(self.path) == "gzip":
            source = bgzip_copy(self.path)
            warnings.warn(f"FASTA {self.path} is plain gzip, which has no random access, so it is read "
                          f"through a bgzip copy, {source}; to skip the copy, recompress it once with "
                          "`gzip -dc in.fa.gz | bgzip > out.fa.gz`.", stacklevel=2)
        try:
            self._fasta = pyfaidx.Fasta(
                str(source), as_raw=True, sequence_always_upper=True, **_index_names(self.path)
            )
        except ValueError as err:
            if not str(err).startswith("Duplicate key"):
                raise
            name = str(err).removeprefix("Duplicate key ").strip('"')
            raise ValueError(f"FASTA file {self.path} has more than one sequence named {name!r} (the first "
                             f"word of a '>' line); expected unique chromosome names.") from None
        self.chrom_sizes: dict[str, int] = {name: len(rec) for name, rec in self._fasta.items()}
        empty = next((name for name, size in self.chrom_sizes.items() if not size), None)
        if empty is not None:
            raise ValueError(_empty_record(self.path, empty, _header_line(self.path, empty)))

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, {len(self.chrom_sizes)} chromosomes)"

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Upper-case sequence of chrom:[start, end)."""
        if chrom not in self.chrom_sizes:
            names = ", ".join(list(self.chrom_sizes)[:10])
            raise ValueError(f"{self.path}: chromosome {chrom!r} is not in the FASTA (which has {names}).")
        size = self.chrom_sizes[chrom]
        if not 0 <= start <= end <= size:
            raise ValueError(f"{self.path}: interval {chrom}:{start}-{end} is outside 0..{size} or reversed.")
        try:
            return self._fasta[chrom][start:end]
        except ValueError:
            if start == 0:
                raise
            # pyfaidx 0.9.2 cannot start a bgzip read exactly on a BGZF block boundary; a base earlier works
            return self._fasta[chrom][start - 1 : end][1:]

    def tokens(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Tokens of chrom:[start, end)."""
        return encode(self.fetch(chrom, start, end))


def _empty_record(path: Path, name: str, line: int) -> str:
    return f"FASTA {path} record {name!r} (line {line}) has no sequence; expected bases after its '>' line."


def _header_line(path: Path, name: str) -> int:
    """The line of the '>' header of record `name`."""
    with open_text(path) as f:
        return next(number for number, line in enumerate(f, 1) if line[1:].split(maxsplit=1)[:1] == [name]
                    and line.startswith(">"))


def iter_fasta(path) -> Iterator[tuple[str, str]]:
    """(name, sequence) of each record of a FASTA file (plain, gzip or bgzip), case kept: lower case is a
    soft-masked repeat. One record is held in memory at a time; a record without sequence is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FASTA file {path} does not exist")
    name, lines, header = None, [], 0
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if line.startswith(">"):
                if name is not None:
                    yield _fasta_record(path, name, lines, header)
                name, lines, header = line[1:].split(maxsplit=1)[0] if line[1:].strip() else "", [], number
                if not name:
                    raise ValueError(f"{path} line {number}: a '>' header without a name.")
            elif name is None and line.strip():
                raise ValueError(f"{path} line {number}: sequence before the first '>' header.")
            else:
                lines.append(line.strip())
    if name is not None:
        yield _fasta_record(path, name, lines, header)


def _fasta_record(path: Path, name: str, lines: list[str], header: int) -> tuple[str, str]:
    sequence = "".join(lines)
    if not sequence:
        raise ValueError(_empty_record(path, name, header))
    return name, sequence
