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
- ploidy: haploid or diploid calls; a record mixing them, or a call of more than two alleles, is an error.
Every count lands in `Variants.counts`.

A bgzipped VCF or a BCF is read through its tabix/CSI index (`index_vcf` builds one beside it), so a region
reads only its records; a plain VCF is scanned. Distinct windows come two ways (`distinct_window_blocks`):
"bytes" builds every variety's windows and hashes them; "alleles" groups varieties per window by the alleles
they carry at the variants that reach into it and builds one window per group (see `window_patterns`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import cyvcf2
import numpy as np
import pandas as pd
import pysam
from numpy.lib.stride_tricks import sliding_window_view

from seq2epi.data.sequence import PAD, Genome, N, encode
from seq2epi.data.tiling import window_starts
from seq2epi.lab.io import compression, open_text

MASK = -1  # genotype code: mask the REF span with N
REFERENCE = "reference"  # the name of the reference row in score matrices
_BASES = re.compile(r"[ACGTN]+")
_POLICIES = {"het": ("ref", "alt", "n"), "missing": ("ref", "n")}
DEDUP = ("bytes", "alleles")


def _index_of(path: Path) -> Path | None:
    return next((Path(f"{path}{ext}") for ext in (".tbi", ".csi") if Path(f"{path}{ext}").exists()), None)


def _check_index(path: Path, index: Path | None) -> Path | None:
    if index is not None and index.stat().st_mtime < path.stat().st_mtime:
        raise ValueError(f"index {index} is older than its VCF {path}, so it may point at the wrong records; "
                         f"delete it (seq2epi builds a new one) or re-index with bcftools index.")
    return index


def index_vcf(vcf_path) -> Path | None:
    """The index of a bgzipped VCF (.tbi) or BCF (.csi), built beside it when absent; None for a plain VCF."""
    path = Path(vcf_path)
    if not path.is_file():
        raise FileNotFoundError(f"VCF file {path} does not exist.")
    found = _check_index(path, _index_of(path))
    if found is not None or not path.name.endswith((".gz", ".bgz", ".bcf")):
        return found
    if not os.access(path.parent, os.W_OK):
        warnings.warn(f"VCF {path} has no index and its folder is read-only, so each region scans it whole; "
                      f"index it (bcftools index) where it can be written.", stacklevel=2)
        return None
    bcf = path.suffix == ".bcf"
    try:
        return Path(pysam.tabix_index(str(path), preset="bcf" if bcf else "vcf", csi=bcf, keep_original=True)
                    + (".csi" if bcf else ".tbi"))
    except (OSError, ValueError) as err:  # pysam raises OSError on a gzip (not bgzip) file or an unsorted one
        raise ValueError(f"cannot index VCF {path} ({err}); expected a bgzipped (bgzip, not gzip), "
                         f"sorted VCF or BCF.") from err


def open_vcf(path, samples: list[str] | None = None, lazy: bool = True) -> cyvcf2.VCF:
    """cyvcf2's reader of a VCF/BCF; a header it cannot read is named, with what it lacks."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VCF file {path} does not exist.")
    try:
        return cyvcf2.VCF(str(path), samples=samples, lazy=lazy)
    except Exception:  # cyvcf2 raises a bare Exception on a header htslib cannot parse
        raise ValueError(f"VCF {path}: {_header_problem(path)}") from None


def _header_problem(path: Path) -> str:
    """What is wrong with a VCF header htslib refused: the missing #CHROM line, or in general terms."""
    if compression(path) != "bgzip" and path.suffix != ".bcf":
        with open_text(path, encoding="utf-8", newline="") as f:
            for number, line in enumerate(f, 1):
                if line.startswith("#CHROM"):
                    break
                if not line.startswith("#"):
                    return (f"line {number} comes before the '#CHROM' header line; expected '##' meta lines, "
                            "then '#CHROM POS ID REF ALT QUAL FILTER INFO' (and samples), then the records.")
            else:
                return "the '#CHROM' header line is missing; expected one after the '##' meta lines."
    return "its header cannot be read; expected '##fileformat=VCF...' meta lines and a '#CHROM' line."


def parse_chrom_alias(pairs: list[str] | None) -> dict[str, str]:
    """{VCF name: FASTA name} from pairs like 1=chr01."""
    alias = {}
    for pair in pairs or []:
        vcf_name, sep, fasta_name = pair.partition("=")
        if not (sep and vcf_name.strip() and fasta_name.strip()):
            raise ValueError(f"chromosome alias {pair!r} is not VCF=FASTA; expected pairs like "
                             "1=chr01,2=chr02.")
        alias[vcf_name.strip()] = fasta_name.strip()
    return alias


def read_samples(vcf_path) -> list[str]:
    """Sample names of a VCF, in file order."""
    return list(open_vcf(vcf_path).samples)


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
    indexed = _check_index(path, _index_of(path)) is not None
    if region is not None and indexed:
        found = iter(vcf(f"{region[0]}:{region[1] + 1}-{region[2]}"))
        with warnings.catch_warnings():  # cyvcf2 warns for a chromosome without records: none to read
            warnings.filterwarnings("ignore", "no intervals found", UserWarning)
            first = next(found, None)
        if first is not None:
            yield first
            yield from found
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


def _calls(genotype, where: str, samples: list[str]) -> np.ndarray:
    """A record's calls int16 [n_samples, 2] (-1 missing; a haploid call's second allele -2)."""
    gt = genotype.array()  # [n_samples, max ploidy + 1]; last column: phasing; -2 pads a shorter call
    if gt.shape[1] > 3 and (gt[:, 2:-1] != -2).any():
        j = int(np.flatnonzero((gt[:, 2:-1] != -2).any(1))[0])
        raise ValueError(f"{where}: sample {samples[j]} has a call of more than two alleles; expected "
                         f"haploid or diploid genotypes.")
    return gt[:, :2] if gt.shape[1] > 2 else np.column_stack([gt[:, 0], np.full(len(gt), -2, gt.dtype)])


def _codes(calls: np.ndarray, het: str, missing: str, counts: dict, where: list[str], samples: list[str]
           ) -> np.ndarray:
    """Allele index [n_records, n_samples] under the policies: 0 reference, k the k-th ALT, MASK for N."""
    a, b = calls[..., 0], calls[..., 1]
    haploid = b == -2
    mixed = np.flatnonzero(haploid.any(1) & ~haploid.all(1))
    if mixed.size:
        r = int(mixed[0])
        i, j = int(np.flatnonzero(haploid[r])[0]), int(np.flatnonzero(~haploid[r])[0])
        raise ValueError(f"{where[r]} mixes ploidies: sample {samples[i]} has a haploid call, {samples[j]} a "
                         f"diploid one; expected one ploidy per record.")
    b = np.where(haploid, a, b)
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
    return code.astype(np.int16)


def _skip_overlaps(chroms: list[str], starts: np.ndarray, ends: np.ndarray, codes: np.ndarray) -> int:
    """Set to 0 each call overlapping an earlier applied variant of the same sample; returns how many.

    Only runs of records that overlap one another (by start against the furthest end so far) are walked.
    """
    skipped, n = 0, len(starts)
    first = 0
    while first < n:
        last, reach = first + 1, ends[first]
        while last < n and chroms[last] == chroms[first] and starts[last] < reach:
            reach = max(reach, ends[last])
            last += 1
        if last - first > 1:
            taken = np.zeros(codes.shape[1], np.int64)  # end of each sample's last applied variant
            for i in range(first, last):
                applied = codes[i] != 0
                overlap = applied & (starts[i] < taken)
                skipped += int(overlap.sum())
                codes[i, overlap] = 0
                taken[applied & ~overlap] = ends[i]
        first = last
    return skipped


class Site(NamedTuple):
    """One VCF record: chromosome as the FASTA names it, 0-based start and end of REF, REF, ALTs, ID."""

    chrom: str
    start: int
    end: int
    ref: str
    alts: list[str]
    id: str
    record: cyvcf2.Variant


def sites(vcf_path, genome: Genome, region: tuple[str, int, int] | None = None,
          chrom_alias: dict[str, str] | None = None, vcf: cyvcf2.VCF | None = None) -> Iterator[Site]:
    """The records overlapping `region` (all when None), genotypes unread, each REF checked against the FASTA.

    chrom_alias maps VCF names to FASTA names (common forms matched without it); `vcf` is the opened VCF to
    read (e.g. one a Writer's header extends), by default vcf_path opened anew.
    """
    path = Path(vcf_path)
    vcf = open_vcf(path) if vcf is None else vcf
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
    reference = {}  # chrom -> (start, bases) of the last FASTA stretch read (1 Mb at a time), to check REF
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
        lo, hi = min(rec.start, size), min(rec.end, size)
        at, bases = reference.get(chrom, (0, ""))
        if not at <= lo <= hi <= at + len(bases):
            at, bases = lo, genome.fetch(chrom, lo, min(size, max(hi, lo + 2**20)))
            reference[chrom] = (at, bases)
        if ref != bases[lo - at : hi - at]:
            raise ValueError(f"{where}: REF {ref!r} does not match the FASTA {genome.path}, which has "
                             f"{bases[lo - at : hi - at]!r} there.")
        yield Site(chrom, rec.start, rec.end, ref, alts, rec.ID or ".", rec)


def is_symbolic(allele: str) -> bool:
    """A symbolic or breakend ALT (<DEL>, *, N[chr2:5[): anything but bases."""
    return not _BASES.fullmatch(allele)


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
        vcf = open_vcf(path)
        order = None
        if samples is not None:
            have = set(vcf.samples)
            absent = [s for s in samples if s not in have]
            if absent:
                raise ValueError(f"VCF {path} has no sample(s) {absent}; it has {_names(vcf.samples)}.")
            vcf = open_vcf(path, samples)
            column = {s: j for j, s in enumerate(vcf.samples)}
            order = [column[s] for s in samples]
        counts = dict(records=0, het=0, missing=0, multiallelic=0, symbolic=0, skipped=0)
        rows, calls, where, symbolic = [], [], [], []
        names = list(vcf.samples)  # cyvcf2 builds this list anew on each access
        for site in sites(path, genome, region, chrom_alias, vcf):
            chrom, rec, ref, alts = site.chrom, site.record, site.ref, site.alts
            where.append(f"VCF {path} record {rec.CHROM}:{rec.POS}")
            try:
                genotype = rec.genotype
            except Exception:  # cyvcf2 raises a bare Exception when the record has no GT
                genotype = None
            if genotype is None:
                raise ValueError(f"{where[-1]} has no GT field; expected a genotype per sample.")
            counts["multiallelic"] += len(alts) > 1
            calls.append(_calls(genotype, where[-1], names))
            symbolic.append([k + 1 for k, a in enumerate(alts) if is_symbolic(a)])
            rows.append((chrom, rec.start, rec.end, ref, alts))
        counts["records"] = len(rows)
        samples = list(vcf.samples) if samples is None else list(samples)
        calls = np.array(calls, np.int16).reshape(len(rows), len(names), 2)
        codes = _codes(calls if order is None else calls[:, order], het, missing, counts, where, samples)
        for i in (i for i, k in enumerate(symbolic) if k):
            hit = np.isin(codes[i], symbolic[i])
            counts["symbolic"] += int(hit.sum())
            codes[i, hit] = 0
        counts["skipped"] = _skip_overlaps([r[0] for r in rows], np.array([r[1] for r in rows], np.int64),
                                           np.array([r[2] for r in rows], np.int64), codes)
        carried = codes.any(1)
        if counts["skipped"]:
            warnings.warn(f"VCF {path}: skipped {counts['skipped']} variant call(s) overlapping an earlier "
                          f"variant of the same sample.", stacklevel=2)
        if not counts["records"] and next(iter(open_vcf(path)), None) is None:
            warnings.warn(f"VCF {path} has no records: every variety equals the reference.", stacklevel=2)
        table = pd.DataFrame([r for r, c in zip(rows, carried, strict=True) if c],
                             columns=["chrom", "start", "end", "ref", "alts"])
        return cls(path, samples, table, codes[carried], counts, region)

    @cached_property
    def _arrays(self) -> dict:
        """The table as arrays (chrom, start, end, most bases any ALT removes), ALT tokens, sample rows."""
        t = self.table
        ref_len = t["ref"].str.len().to_numpy(np.int64)
        alt_len = np.array([min(map(len, alts)) for alts in t["alts"]], np.int64).reshape(-1)
        chrom, start = t["chrom"].to_numpy(dtype=object), t["start"].to_numpy(np.int64)
        end = t["end"].to_numpy(np.int64)
        by_chrom = {}
        for c in dict.fromkeys(chrom):
            rows = np.flatnonzero(chrom == c)
            rows = rows[np.argsort(start[rows], kind="stable")]
            by_chrom[c] = (rows, start[rows], np.maximum.accumulate(end[rows]))
        return {"chrom": chrom, "start": start, "end": end, "shrink": np.maximum(ref_len - alt_len, 0),
                "alts": [[encode(a) for a in alts] for alts in t["alts"]], "by_chrom": by_chrom,
                "row": {s: j for j, s in enumerate(self.samples)}}

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
        a = self._arrays
        if sample not in a["row"]:
            raise ValueError(f"sample {sample!r} was not loaded from VCF {self.path}; "
                             f"loaded: {_names(self.samples)}.")
        if chrom not in a["by_chrom"]:
            return []
        rows, starts, reach = a["by_chrom"][chrom]  # sorted by start; reach: the furthest end so far
        rows = rows[np.searchsorted(reach, start, "right") : np.searchsorted(starts, end, "left")]
        codes = self.genotypes[rows, a["row"][sample]]
        out = []
        for i in rows[(a["end"][rows] > start) & (codes != 0)].tolist():
            code = int(self.genotypes[i, a["row"][sample]])
            s, e = int(a["start"][i]), int(a["end"][i])
            out.append((s, e, np.full(e - s, N, np.uint8) if code == MASK else a["alts"][i][code - 1]))
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
    return _apply(genome.tokens(chrom, lo, hi), lo, found, start, end, np.arange(start, end))


def _apply(ref: np.ndarray, ref_lo: int, found: list, start: int, end: int, positions: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Variety tokens over reference [start, end) and where reference `positions` begin in them, from the
    reference tokens `ref` starting at ref_lo (covering start, end and the variants `found`)."""
    if not found:
        return ref[start - ref_lo : end - ref_lo], positions - start
    s, e = np.array([[s, e] for s, e, _ in found], np.int64).T
    alt_len = np.array([len(alt) for _, _, alt in found], np.int64)
    shift = np.concatenate([[0], np.cumsum(alt_len - (e - s))])  # length change before each variant
    lo, hi = min(start, int(s[0])), max(end, int(e.max()))
    pieces, at = [], lo
    for (v_start, v_end, alt) in found:
        pieces += [ref[at - ref_lo : v_start - ref_lo], alt]
        at = v_end
    pieces.append(ref[at - ref_lo : hi - ref_lo])

    def index(pos: np.ndarray) -> np.ndarray:
        out = pos - lo + shift[np.searchsorted(e, pos, "right")]  # after every variant that ends by pos
        j = np.searchsorted(s, pos, "right") - 1
        inside = (j >= 0) & (pos < e[np.maximum(j, 0)])
        j = j[inside]
        out[inside] = s[j] - lo + shift[j] + np.minimum(pos[inside] - s[j], alt_len[j])
        return out

    first, last = index(np.array([start, end]))
    return np.concatenate(pieces)[first:last], index(np.asarray(positions, np.int64)) - first


def variety_window_tokens(genome: Genome, variants: Variants | None, sample: str | None, chrom: str,
                          starts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The one builder of variety windows (the map, 01's VCF varieties and variant scoring call it): the
    tokens of `sample` (None: the reference) from reference position starts[0], read on until the window at
    the last of the sorted reference `starts` is whole or the chromosome ends, and each start's offset in
    them. The window at starts[i] is tokens[offsets[i] : offsets[i] + window], shorter where the chromosome
    runs out."""
    size = genome.chrom_sizes[chrom]
    lo, stop = int(starts[0]), min(size, int(starts[-1]) + window)
    while True:  # deletions pull bases in from past stop: read on until the last window is whole
        seq, index = variety_sequence(genome, variants, sample, chrom, lo, stop)
        offsets = index[starts - lo]
        short = int(offsets[-1]) + window - len(seq)
        if short <= 0 or stop == size:
            return seq, offsets
        stop = min(size, stop + short + window)


def _window_view(seq: np.ndarray, offsets: np.ndarray, window: int) -> np.ndarray:
    """The windows [len(offsets), window] of variety_window_tokens, PAD past the chromosome's end."""
    short = max(0, int(offsets[-1]) + window - len(seq))
    return sliding_window_view(np.concatenate([seq, np.full(short, PAD, np.uint8)]), window)[offsets]


def variety_tokens_at(genome: Genome, variants: Variants | None, sample: str | None, windows: pd.DataFrame,
                      window: int, span: int = 1_000_000) -> list[np.ndarray]:
    """Tokens of `sample`'s window at each reference window start (chrom, start) of `windows`, in their
    order, as the map builds them (variety_window_tokens), shorter where the chromosome runs out. Windows are
    built chromosome by chromosome in stretches of at most `span` bp of reference."""
    out: list[np.ndarray] = [np.empty(0, np.uint8)] * len(windows)
    at = np.arange(len(windows))
    for chrom, rows in windows.groupby("chrom", sort=False):
        starts = rows["start"].to_numpy(np.int64)
        order = np.argsort(starts, kind="stable")
        starts, where = starts[order], at[windows["chrom"].to_numpy() == chrom][order]
        breaks = np.flatnonzero(np.diff(starts) > span) + 1
        for chunk, index in zip(np.split(starts, breaks), np.split(where, breaks), strict=True):
            seq, offsets = variety_window_tokens(genome, variants, sample, chrom, chunk, window)
            for i, offset in zip(index, offsets, strict=True):
                out[i] = seq[offset : offset + window]
    return out


def _block_step(n_windows: int, n_rows: int, window: int, max_bytes: int | None) -> int:
    """Windows per block: all (max_bytes None), else as many as fit every row's tokens in max_bytes."""
    return n_windows if max_bytes is None else max(1, max_bytes // (n_rows * window))


def _region_starts(genome: Genome, chrom: str, start: int, end: int, window: int, stride: int) -> np.ndarray:
    """The window starts of a region checked against the genome; a region shorter than a window is refused."""
    check_interval(genome, chrom, start, end)
    starts = window_starts(start, end, window, stride)
    if not len(starts):
        raise ValueError(f"region {chrom}:{start}-{end} is {end - start} bp, shorter than the {window} bp "
                         f"window.")
    return starts


def variety_window_blocks(genome: Genome, variants: Variants | None, chrom: str, start: int, end: int,
                          window: int, stride: int, max_bytes: int | None = None) -> Iterator[np.ndarray]:
    """variety_windows' tokens in consecutive blocks of windows, each of at most about `max_bytes` (None: one
    block), so a long region's windows are never all in memory at once."""
    starts = _region_starts(genome, chrom, start, end, window, stride)
    samples = [None] + (variants.samples if variants is not None else [])
    views = [variety_window_tokens(genome, variants, s, chrom, starts, window) for s in samples]
    step = _block_step(len(starts), len(samples), window, max_bytes)
    for i in range(0, len(starts), step):
        yield np.stack([_window_view(seq, offsets[i : i + step], window) for seq, offsets in views])


def sample_windows(genome: Genome, variants: Variants | None, sample: str | None, chrom: str, start: int,
                   end: int, window: int, stride: int) -> np.ndarray:
    """variety_windows' tokens [n_windows, window] of one sample (None: the reference) alone."""
    check_interval(genome, chrom, start, end)
    starts = window_starts(start, end, window, stride)
    return _window_view(*variety_window_tokens(genome, variants, sample, chrom, starts, window), window)


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


# ---- distinct windows from allele patterns ----

def _chrom_records(variants: Variants | None, chrom: str, seed: int = 0) -> dict:
    """One chromosome's records sorted by start, their genotypes, prefix sums of the bases they may delete,
    and a random 64-bit key per (record, allele code); code 0 (the reference allele) has key 0."""
    if variants is None:
        return {"start": np.zeros(0, np.int64), "codes": np.zeros((0, 0), np.int16)}
    a = variants._arrays
    rows = a["by_chrom"].get(chrom, (np.zeros(0, np.int64),))[0]
    codes = variants.genotypes[rows]
    start, end, shrink = a["start"][rows], a["end"][rows], a["shrink"][rows]
    by_end = np.argsort(end, kind="stable")
    n_codes = max([len(x) for x in a["alts"]] + [0]) + 2  # column c + 1 holds code c (MASK = -1 first)
    keys = np.random.default_rng(seed).integers(0, 2**64, (len(rows), n_codes), np.uint64, endpoint=False)
    keys[:, 1] = 0
    return {"start": start, "end": end, "codes": codes, "keys": keys,
            "cummax_end": np.maximum.accumulate(end) if len(end) else end,
            "shrink_by_start": np.concatenate([[0], np.cumsum(shrink)]),
            "end_sorted": end[by_end], "shrink_by_end": np.concatenate([[0], np.cumsum(shrink[by_end])])}


def window_patterns(records: dict, starts: np.ndarray, window: int, n_samples: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Allele pattern uint64 [n_windows, n_samples + 1 (reference first)] of each variety at each window,
    and each window's reach R (the reference end of what any variety's window can read).

    A window of `window` variety bases from reference position s reads the reference up to a reach
    R = s + window + (bases deleted by the variants in [s, R)), so its content is fixed by the alleles a
    variety carries at the variants overlapping [s, R) (R is taken with every ALT's largest deletion, an upper
    bound for any variety). The pattern is the sum (mod 2**64) of random keys of those (variant, allele)
    pairs, from prefix sums over the records; the reference allele adds 0, so pattern 0 is the reference.
    Two different patterns of a window share a sum with probability 2**-64.
    """
    starts = np.asarray(starts, np.int64)
    out = np.zeros((len(starts), n_samples + 1), np.uint64)
    r = records
    if not len(r["start"]) or not len(starts):
        return out, starts + window
    gone = r["shrink_by_end"][np.searchsorted(r["end_sorted"], starts, "right")]
    reach = starts + window
    while True:
        longer = starts + window + r["shrink_by_start"][np.searchsorted(r["start"], reach, "left")] - gone
        if np.array_equal(longer, reach):
            break
        reach = longer
    lo = int(np.searchsorted(r["cummax_end"], starts.min(), "right"))  # records before lo end before all
    hi = int(np.searchsorted(r["start"], reach.max(), "left"))
    if hi <= lo:
        return out, reach
    keys = np.take_along_axis(r["keys"][lo:hi], r["codes"][lo:hi].astype(np.intp) + 1, axis=1)
    by_end = np.argsort(r["end"][lo:hi], kind="stable")
    with np.errstate(over="ignore"):
        upto = np.zeros((hi - lo + 1, n_samples), np.uint64)
        np.cumsum(keys, axis=0, out=upto[1:])
        ended = np.zeros_like(upto)
        np.cumsum(keys[by_end], axis=0, out=ended[1:])
        out[:, 1:] = (upto[np.searchsorted(r["start"][lo:hi], reach, "left")]
                      - ended[np.searchsorted(r["end"][lo:hi][by_end], starts, "right")])
    return out, reach


def _pattern_groups(patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window, rows grouped by pattern: group id [n_windows, n_rows] (numbered window by window), and
    each group's window and first row (the reference row leads the reference pattern's group)."""
    order = np.argsort(patterns, axis=1, kind="stable")
    ranked = np.take_along_axis(patterns, order, axis=1)
    first = np.ones(ranked.shape, bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    group = np.empty(order.shape, np.int64)
    np.put_along_axis(group, order, np.cumsum(first, axis=None).reshape(first.shape) - 1, axis=1)
    windows, k = np.nonzero(first)
    return group, windows, order[windows, k]


def distinct_window_blocks(genome: Genome, variants: Variants | None, chrom: str, start: int, end: int,
                           window: int, stride: int, max_bytes: int | None = None, dedup: str = "alleles"
                           ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per block of variety_window_blocks: its distinct windows [u, window] (sorted by bytes) and the inverse
    [n_samples + 1, n_block_windows] mapping each row's window to its distinct one.

    dedup="bytes" builds every row's windows and hashes them (unique_windows); "alleles" builds one window per
    distinct (window, allele pattern) and hashes only those. Both give the same arrays, block by block.
    """
    if dedup not in DEDUP:
        raise ValueError(f"dedup must be one of {DEDUP}, got {dedup!r}.")
    if dedup == "bytes":
        for block in variety_window_blocks(genome, variants, chrom, start, end, window, stride, max_bytes):
            yield unique_windows(block)
        return
    starts = _region_starts(genome, chrom, start, end, window, stride)
    samples = [None] + (variants.samples if variants is not None else [])
    records = _chrom_records(variants, chrom)
    size = genome.chrom_sizes[chrom]
    ref_lo = min([start] + records["start"][records["end"] > start].tolist())
    ref_hi = min(size, end + window + int(records["shrink_by_start"][-1]) if len(records["start"]) else end)
    ref = genome.tokens(chrom, ref_lo, ref_hi)
    span = np.arange(window)
    step = _block_step(len(starts), len(samples), window, max_bytes)
    for i in range(0, len(starts), step):
        at = starts[i : i + step]
        patterns, reach = window_patterns(records, at, window, len(samples) - 1)
        group, windows, rows = _pattern_groups(patterns)
        tokens = np.empty((len(rows), window), np.uint8)
        by_row = np.argsort(rows, kind="stable")
        cuts = np.flatnonzero(np.diff(rows[by_row])) + 1
        for ids in np.split(by_row, cuts):  # one row's groups, in window order
            s = at[windows[ids]]
            for run in np.split(ids, np.flatnonzero(np.diff(s) > window) + 1):  # built apart when far apart
                s, stop = at[windows[run]], min(size, int(reach[windows[run]].max()))
                sample = samples[rows[run[0]]]
                found = variants.alleles(sample, chrom, int(s[0]), stop) if sample is not None else []
                seq, offsets = _apply(ref, ref_lo, found, int(s[0]), stop, s)
                short = max(0, int(offsets[-1]) + window - len(seq))  # the chromosome ran out
                seq = np.concatenate([seq, np.full(short, PAD, np.uint8)])
                tokens[run] = seq[offsets[:, None] + span]
        uniq, inverse = unique_windows(tokens)
        yield uniq, inverse[group].T
