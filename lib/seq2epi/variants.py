"""Variety sequences and windows from a multi-sample VCF (cyvcf2) in reference coordinates; distinct windows.

Rice is inbred, so a variety is one haplotype: its homozygous alternative alleles applied to the reference.
Windows keep reference coordinates; an indel changes a window's content, not its position (variety_windows).
Policies, set per load:
- heterozygous calls: `het="ref"` (default) keeps the reference allele, `"alt"` takes the alternative allele
  (the first non-reference allele of the call), `"n"` masks the REF span with N;
- missing calls (`./.`, also half-missing `./1`): `missing="ref"` (default) or `"n"`;
- multi-allelic sites: each sample gets its own allele index (`2/2` is the second ALT);
- overlapping variants within one sample: the later one is skipped (counted, with a warning);
- symbolic alleles (`<DEL>`, `*`): the reference is kept (counted);
- an empty VCF: every variety equals the reference (with a warning);
- chromosome names: `chrom_alias` maps VCF names to FASTA names; the common forms `1`, `chr1`, `chr01`, `Chr1`
  are matched without it when one FASTA name fits (with a warning naming the mapping).
Every count lands in `Variants.counts`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from .sequence import PAD, Genome, N, encode
from .tiling import window_starts

MASK = -1  # genotype code: mask the REF span with N
REFERENCE = "reference"  # the name of the reference row in score matrices
_BASES = re.compile(r"[ACGTN]+")
_POLICIES = {"het": ("ref", "alt", "n"), "missing": ("ref", "n")}


def _vcf(path: Path, samples: list[str] | None = None) -> cyvcf2.VCF:
    if not path.is_file():
        raise FileNotFoundError(f"VCF file {path} does not exist.")
    return cyvcf2.VCF(str(path), samples=samples, lazy=True)


def read_samples(vcf_path) -> list[str]:
    """Sample names of a VCF, in file order."""
    return list(_vcf(Path(vcf_path)).samples)


def _names(names) -> str:
    names = list(names)
    return ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def check_interval(genome: Genome, chrom: str, start: int, end: int) -> None:
    if chrom not in genome.chrom_sizes:
        raise ValueError(f"chromosome {chrom!r} is not in the FASTA {genome.path} "
                         f"(which has {_names(genome.chrom_sizes)}).")
    size = genome.chrom_sizes[chrom]
    if not 0 <= start < end <= size:
        raise ValueError(f"interval {chrom}:{start}-{end} is not inside {chrom} (0-{size}) "
                         f"of the FASTA {genome.path}.")


def _header_contigs(vcf: cyvcf2.VCF) -> list[str]:
    return re.findall(r"^##contig=<ID=([^,>]+)", vcf.raw_header, flags=re.M)


def _chrom_key(name: str) -> str:
    """chr01, Chr1, CHR1 and 1 share the key '1' (prefix chr and leading zeros dropped, case ignored)."""
    key = re.sub(r"^chr", "", name, flags=re.I).lower()
    return key.lstrip("0") or key


def match_chroms(vcf_names, fasta_names, chrom_alias: dict[str, str] | None = None) -> dict[str, str]:
    """VCF names (not in the FASTA nor in chrom_alias) -> the one FASTA name of the same form (1, chr1, chr01,
    Chr1); a name is left out when no FASTA name, or several, or a FASTA name already claimed, fits."""
    alias, fasta = dict(chrom_alias or {}), list(fasta_names)
    claimed = set(alias.values()) | {n for n in vcf_names if n in fasta}
    keys: dict[str, list[str]] = {}
    for name in fasta:
        keys.setdefault(_chrom_key(name), []).append(name)
    found = {}
    for name in dict.fromkeys(vcf_names):
        if name in alias or name in fasta:
            continue
        fits = keys.get(_chrom_key(name), [])
        if len(fits) == 1 and fits[0] not in claimed:
            found[name] = fits[0]
    targets = list(found.values())
    return {k: v for k, v in found.items() if targets.count(v) == 1}


def _matched(path: Path, genome: Genome, names, alias: dict[str, str]) -> dict[str, str]:
    """alias completed by match_chroms over names, with a warning naming what was matched."""
    found = match_chroms(names, genome.chrom_sizes, alias)
    if found:
        pairs = ", ".join(f"{k} -> {v}" for k, v in found.items())
        warnings.warn(f"VCF {path}: chromosome names read as the FASTA {genome.path}'s: {pairs} (set "
                      f"chrom_alias to map them otherwise).", stacklevel=3)
    return alias | found


def _records(vcf: cyvcf2.VCF, path: Path, region: tuple[str, int, int] | None):
    """Records overlapping region (tabix/csi index when present, else a scan); checks sorting in a scan."""
    indexed = any(Path(f"{path}{ext}").exists() for ext in (".tbi", ".csi"))
    if region is not None and indexed:
        yield from vcf(f"{region[0]}:{region[1] + 1}-{region[2]}")
        return
    seen, last = set(), None
    for rec in vcf:
        if last is not None and (rec.CHROM != last[0] and rec.CHROM in seen
                                 or rec.CHROM == last[0] and rec.start < last[1]):
            raise ValueError(f"VCF {path} record {rec.CHROM}:{rec.POS} comes after {last[0]}:{last[1] + 1}; "
                             f"expected records sorted by chromosome and position (bcftools sort).")
        seen.add(rec.CHROM)
        last = (rec.CHROM, rec.start)
        if region is None or rec.CHROM == region[0] and rec.start < region[2] and rec.end > region[1]:
            yield rec


def _codes(genotype, het: str, missing: str, counts: dict) -> np.ndarray:
    """Allele index per sample under the policies: 0 reference, k the k-th ALT, MASK for N."""
    gt = genotype.array()[:, :-1].astype(np.int16)  # last column: phasing
    a = gt[:, 0]
    b = np.where(gt[:, 1] == -2, a, gt[:, 1]) if gt.shape[1] > 1 else a  # -2: haploid call
    miss = (a < 0) | (b < 0)
    hetero = ~miss & (a != b)
    counts["missing"] += int(miss.sum())
    counts["het"] += int(hetero.sum())
    code = np.where(miss | hetero, 0, a)
    if het == "alt":
        code = np.where(hetero, np.where(a > 0, a, b), code)
    if het == "n":
        code[hetero] = MASK
    if missing == "n":
        code[miss] = MASK
    return code


@dataclass
class Variants:
    """The alleles each sample carries in a VCF region; `genotypes[i, j]` is record i's code for sample j."""

    path: Path
    samples: list[str]
    table: pd.DataFrame  # chrom (FASTA name), start (0-based), end, ref, alts (list of str)
    genotypes: np.ndarray  # int16 [n_records, n_samples]: 0 reference, k the k-th ALT, MASK (-1) for N
    counts: dict = field(default_factory=dict)
    region: tuple[str, int, int] | None = None

    @classmethod
    def load(cls, vcf_path, genome: Genome, region: tuple[str, int, int] | None = None,
             samples: list[str] | None = None, het: str = "ref", missing: str = "ref",
             chrom_alias: dict[str, str] | None = None) -> Variants:
        """Records overlapping `region` (all when None); chrom_alias maps VCF names to FASTA names."""
        path = Path(vcf_path)
        for name, value in (("het", het), ("missing", missing)):
            if value not in _POLICIES[name]:
                raise ValueError(f"{name} policy must be one of {_POLICIES[name]}, got {value!r}.")
        vcf = _vcf(path)
        if samples is not None:
            absent = [s for s in samples if s not in vcf.samples]
            if absent:
                raise ValueError(f"VCF {path} has no sample(s) {absent}; it has {_names(vcf.samples)}.")
            vcf = _vcf(path, samples)
        order = [list(vcf.samples).index(s) for s in samples] if samples is not None else None
        alias = {str(k): str(v) for k, v in (chrom_alias or {}).items()}  # YAML may read 1 as a number
        alias = _matched(path, genome, _header_contigs(vcf), alias)
        contigs = [alias.get(c, c) for c in _header_contigs(vcf)]
        if contigs and not set(contigs) & set(genome.chrom_sizes):
            raise ValueError(f"VCF {path} contigs ({_names(contigs)}) do not match the FASTA {genome.path} "
                             f"chromosomes ({_names(genome.chrom_sizes)}); map them with chrom_alias "
                             f"(VCF name: FASTA name; predict-region --chrom-alias 1=chr01).")
        query = None
        if region is not None:
            check_interval(genome, *region)
            back = {v: k for k, v in alias.items()}
            query = (back.get(region[0], region[0]), region[1], region[2])
        counts = dict(records=0, het=0, missing=0, multiallelic=0, symbolic=0, skipped=0)
        rows, codes = [], []
        last_end: dict[str, np.ndarray] = {}
        for rec in _records(vcf, path, query):
            if rec.CHROM not in alias and rec.CHROM not in genome.chrom_sizes:  # a contig not in the header
                alias = _matched(path, genome, [rec.CHROM], alias)
            chrom = alias.get(rec.CHROM, rec.CHROM)
            where = f"VCF {path} record {rec.CHROM}:{rec.POS}"
            if chrom not in genome.chrom_sizes:
                raise ValueError(f"{where}: chromosome {rec.CHROM!r} is not in the FASTA {genome.path}; "
                                 f"the VCF has {_names(contigs or [rec.CHROM])}, the FASTA has "
                                 f"{_names(genome.chrom_sizes)}.")
            size = genome.chrom_sizes[chrom]
            ref, alts = rec.REF.upper(), [a.upper() for a in rec.ALT]
            found = genome.fetch(chrom, min(rec.start, size), min(rec.end, size))
            if ref != found:
                raise ValueError(f"{where}: REF {ref!r} does not match the FASTA {genome.path}, which has "
                                 f"{found!r} there.")
            try:
                genotype = rec.genotype
            except Exception:  # cyvcf2 raises a bare Exception when the record has no GT
                genotype = None
            if genotype is None:
                raise ValueError(f"{where} has no GT field; expected a genotype per sample.")
            counts["records"] += 1
            counts["multiallelic"] += len(alts) > 1
            code = _codes(genotype, het, missing, counts)
            code = code if order is None else code[order]
            symbolic = np.isin(code, [k + 1 for k, a in enumerate(alts) if not _BASES.fullmatch(a)])
            counts["symbolic"] += int(symbolic.sum())
            code[symbolic] = 0
            ends = last_end.setdefault(chrom, np.zeros(len(code), np.int64))
            applied = code != 0
            overlap = applied & (rec.start < ends)
            counts["skipped"] += int(overlap.sum())
            code[overlap] = 0
            ends[applied & ~overlap] = rec.end
            if code.any():
                rows.append((chrom, rec.start, rec.end, ref, alts))
                codes.append(code)
        if counts["skipped"]:
            warnings.warn(f"VCF {path}: skipped {counts['skipped']} variant call(s) overlapping an earlier "
                          f"variant of the same sample.", stacklevel=2)
        if not counts["records"] and next(iter(_vcf(path)), None) is None:
            warnings.warn(f"VCF {path} has no records: every variety equals the reference.", stacklevel=2)
        table = pd.DataFrame(rows, columns=["chrom", "start", "end", "ref", "alts"])
        samples = list(vcf.samples) if samples is None else list(samples)
        genotypes = np.array(codes, np.int16).reshape(len(codes), len(samples))
        return cls(path, samples, table, genotypes, counts, region)

    def carried(self) -> pd.DataFrame:
        """One row per variant a sample carries: chrom, start, ref, alt ('N' when masked), sample."""
        record, column = np.nonzero(self.genotypes)
        codes = self.genotypes[record, column]
        alts = [self.table["alts"].iat[r][c - 1] if c != MASK else "N"
                for r, c in zip(record, codes, strict=True)]
        return pd.DataFrame({"chrom": self.table["chrom"].to_numpy()[record],
                             "start": self.table["start"].to_numpy()[record],
                             "ref": self.table["ref"].to_numpy()[record], "alt": alts,
                             "sample": np.asarray(self.samples, dtype=object)[column]})

    def alleles(self, sample: str, chrom: str, start: int, end: int) -> list[tuple[int, int, np.ndarray]]:
        """(start, end, variety tokens) of the variants `sample` carries that overlap chrom:[start, end)."""
        if sample not in self.samples:
            raise ValueError(f"sample {sample!r} was not loaded from VCF {self.path}; "
                             f"loaded: {_names(self.samples)}.")
        t, codes = self.table, self.genotypes[:, self.samples.index(sample)]
        hit = np.flatnonzero((t["chrom"].to_numpy() == chrom) & (t["start"].to_numpy() < end)
                             & (t["end"].to_numpy() > start) & (codes != 0))
        out = []
        for i in hit:
            s, e, code = int(t["start"].iat[i]), int(t["end"].iat[i]), codes[i]
            alt = np.full(e - s, N, np.uint8) if code == MASK else encode(t["alts"].iat[i][code - 1])
            out.append((s, e, alt))
        return out


def variety_sequence(genome: Genome, variants: Variants | None, sample: str | None, chrom: str, start: int,
                     end: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of `sample` (None: the reference) over reference chrom:[start, end) and index [end - start].

    index[i] is where reference base start + i (or what replaced it) begins in the variety tokens. Inside a
    variant, REF offset k maps to ALT offset min(k, len(ALT)): a deleted base maps to the base after the ALT,
    an insertion's extra bases sit before the next reference base.
    """
    check_interval(genome, chrom, start, end)
    found = variants.alleles(sample, chrom, start, end) if sample is not None else []
    lo, hi = min([start] + [s for s, _, _ in found]), max([end] + [e for _, e, _ in found])
    ref = genome.tokens(chrom, lo, hi)
    pieces, index, at, length = [], [], lo, 0
    for s, e, alt in found:
        pieces += [ref[at - lo : s - lo], alt]
        index += [length + np.arange(s - at), length + s - at + np.minimum(np.arange(e - s), len(alt))]
        length += s - at + len(alt)
        at = e
    pieces.append(ref[at - lo :])
    index += [length + np.arange(hi - at + 1)]
    seq, index = np.concatenate(pieces), np.concatenate(index)
    first, last = index[start - lo], index[end - lo]
    return seq[first:last], index[start - lo : end - lo] - first


def _variety_windows(genome: Genome, variants: Variants | None, sample: str | None, chrom: str, start: int,
                     end: int, window: int, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(variety tokens, PAD past the end, and the offset of each reference window start in them)."""
    size, stop = genome.chrom_sizes[chrom], end
    while True:
        seq, index = variety_sequence(genome, variants, sample, chrom, start, stop)
        offsets = index[starts - start]
        short = int(offsets[-1]) + window - len(seq)
        if short <= 0 or stop == size:
            break
        stop = min(size, stop + short + window)
    return np.concatenate([seq, np.full(max(short, 0), PAD, np.uint8)]), offsets


def variety_window_blocks(genome: Genome, variants: Variants | None, chrom: str, start: int, end: int,
                          window: int, stride: int, max_bytes: int | None = None) -> Iterator[np.ndarray]:
    """variety_windows' tokens in consecutive blocks of windows, each of at most about `max_bytes` (None: one
    block), so a long region's windows are never all in memory at once."""
    check_interval(genome, chrom, start, end)
    starts = window_starts(start, end, window, stride)
    if not len(starts):
        raise ValueError(f"region {chrom}:{start}-{end} is {end - start} bp, shorter than the {window} bp "
                         f"window.")
    samples = [None] + (variants.samples if variants is not None else [])
    views = [_variety_windows(genome, variants, s, chrom, start, end, window, starts) for s in samples]
    step = len(starts) if max_bytes is None else max(1, max_bytes // (len(samples) * window))
    for i in range(0, len(starts), step):
        yield np.stack([sliding_window_view(seq, window)[offsets[i : i + step]] for seq, offsets in views])


def variety_windows(genome: Genome, variants: Variants | None, chrom: str, start: int, end: int, window: int,
                    stride: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Tokens uint8 [n_samples + 1 (reference first), n_windows, window] and windows chrom,start,end.

    Windows keep their reference coordinates; an indel changes a window's content, not its position: the
    window is the `window` variety bases from the variety position of the reference start, so insertions push
    bases out at the end and deletions pull following bases in (PAD where the chromosome runs out). Bases
    pulled in from past `end` carry only the variants loaded: load the VCF over the region plus a window.
    """
    (tokens,) = variety_window_blocks(genome, variants, chrom, start, end, window, stride)
    starts = window_starts(start, end, window, stride)
    return tokens, pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + window})


def unique_windows(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows [u, L] of tokens [..., L] and the inverse [...] mapping each row to its distinct one."""
    flat = np.ascontiguousarray(tokens).reshape(-1, tokens.shape[-1])
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return flat[first], inverse.reshape(tokens.shape[:-1])
