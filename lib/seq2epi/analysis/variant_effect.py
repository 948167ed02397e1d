"""Variant effects: each VCF variant's reference and alternative windows, built by the variety map's own code
(variants.variety_window_tokens) for a variety carrying the variant alone, scored with a record's predictor
into ref/alt probabilities and their differences (a TSV, and the VCF annotated with INFO fields)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import cyvcf2
import numpy as np
import pandas as pd
import pysam

from seq2epi.analysis.scoring import Predictor
from seq2epi.data.sequence import PAD, Genome, N
from seq2epi.data.tiling import centred_start, track_windows
from seq2epi.data.variants import Site, Variants, is_symbolic, open_vcf, sample_windows, sites, unique_windows
from seq2epi.lab.io import atomic_path, table_writer
from seq2epi.lab.progress import meter
from seq2epi.model import predict


def variant_type(ref: str, alt: str) -> str:
    """SNV, MNV (equal lengths), insertion (ALT longer) or deletion (ALT shorter)."""
    if len(ref) == len(alt):
        return "SNV" if len(ref) == 1 else "MNV"
    return "insertion" if len(alt) > len(ref) else "deletion"


def _carriers(variants: list[tuple[str, int, int, str, str]]) -> Variants:
    """Variants in which sample str(i) carries variant i (chrom, start, end, ref, alt) alone."""
    table = pd.DataFrame([(c, s, e, r, [a]) for c, s, e, r, a in variants],
                         columns=["chrom", "start", "end", "ref", "alts"])
    return Variants(Path("<variants>"), [str(i) for i in range(len(variants))], table,
                    np.eye(len(variants), dtype=np.int16))


def variety_allele_windows(genome: Genome, carriers: Variants, sample: str, chrom: str, first: int, n: int,
                           window: int, stride: int) -> np.ndarray:
    """Tokens [2 (reference, `sample`), n, window] of the n windows from `first` every `stride` bp."""
    end = first + (n - 1) * stride + window
    return np.stack([sample_windows(genome, None, None, chrom, first, end, window, stride),
                     sample_windows(genome, carriers, sample, chrom, first, end, window, stride)])


def allele_windows(genome: Genome, chrom: str, start: int, end: int, ref: str, alt: str, first: int, n: int,
                   window: int, stride: int) -> np.ndarray:
    """Tokens [2 (reference, alternative), n, window] of the n windows from `first` every `stride` bp, built
    by the variety map's own code for a variety carrying only this variant (variants.variety_windows):
    reference coordinates, an indel changing a window's content, not its position."""
    carriers = _carriers([(chrom, start, end, ref, alt)])
    return variety_allele_windows(genome, carriers, "0", chrom, first, n, window, stride)


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
        parts = [variety_allele_windows(genome, carriers, str(i), chrom, first, 1, window, window)]
        if (parts[0][1] != PAD).sum() < min_length:
            done[(chrom, start, ref, alt)] = (variant_type(ref, alt), nan, nan, nan, "alt_too_short", False,
                                              "alt_too_short")
            continue
        first, n = track_windows(start, end, window, stride, genome.chrom_sizes[chrom])
        if tiled and n:
            parts.append(variety_allele_windows(genome, carriers, str(i), chrom, first, n, window, stride))
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
            tmp_vcf = stack.enter_context(atomic_path(out_vcf))
            writer = cyvcf2.Writer(str(tmp_vcf), vcf, mode="wz")
        write = stack.enter_context(table_writer(out))
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
            with atomic_path(f"{out_vcf}.tbi") as tmp_tbi:
                pysam.tabix_index(str(tmp_vcf), preset="vcf", force=True, index=str(tmp_tbi))
    return counts
