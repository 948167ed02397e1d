"""Variants scored with a record's predictor: allele windows as the map builds them, skips with a reason, the
tiled difference, the TSV and the annotated VCF."""

from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
import pytest
from conftest import RECORD_MARKS, RECORD_WINDOW

from seq2epi.analysis import variant_effect
from seq2epi.data.sequence import PAD, Genome, decode
from seq2epi.data.tiling import centred_start
from seq2epi.data.variants import Variants, variety_sequence, variety_tokens_at, variety_windows
from seq2epi.lab import records

DATA = Path(__file__).parents[1] / "data"
MARKS, WINDOW = RECORD_MARKS, RECORD_WINDOW


def load(record, **kw):
    """The record's predictor (Record.predictor)."""
    return records.Record.find(record).predictor(**kw)


def test_variant_type():
    pairs = [("A", "C"), ("AC", "GT"), ("A", "AGG"), ("ACG", "A")]
    kinds = [variant_effect.variant_type(r, a) for r, a in pairs]
    assert kinds == ["SNV", "MNV", "insertion", "deletion"]


def write_vcf(path: Path, rows: list[str], contigs=("chr1", "chr2")) -> Path:
    header = ["##fileformat=VCFv4.2", *(f"##contig=<ID={c}>" for c in contigs),
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tx"]
    path.write_text("\n".join(header + ["\t".join(r.split()) for r in rows]) + "\n")
    return path


@pytest.mark.parametrize("row", ["chr1 21 ins A AGGT . PASS . GT 1/1",
                                 "chr1 22 del CGTTTG C . PASS . GT 1/1"])
def test_an_indel_alt_window_is_the_variety_sequence_the_map_builds(tmp_path, row):
    genome = Genome(DATA / "tiny.fa")
    carrier = Variants.load(write_vcf(tmp_path / "v.vcf", [row]), genome)
    chrom, start, end, ref, (alt,) = carrier.table.iloc[0]
    first = centred_start(start, end, WINDOW)
    windows = variant_effect.allele_windows(genome, chrom, start, end, ref, alt, first, 1, WINDOW, WINDOW)
    variety, _ = variety_sequence(genome, carrier, "x", chrom, first, genome.chrom_sizes[chrom])
    assert (windows[1, 0] == variety[:WINDOW]).all()
    reference = decode(genome.tokens(chrom, 0, genome.chrom_sizes[chrom]))  # R, Y read as N
    by_hand = (reference[first:start] + alt + reference[end:])[:WINDOW]
    assert decode(windows[1, 0]) == by_hand and decode(windows[0, 0]) == reference[first : first + WINDOW]


def load_scored(record, tmp_path, rows, **kw):
    vcf = write_vcf(tmp_path / "in.vcf", rows)
    scorer = load(record)
    counts = variant_effect.score_vcf(scorer, vcf, DATA / "tiny.fa", tmp_path / "v.tsv", progress=False, **kw)
    return scorer, counts, pd.read_csv(tmp_path / "v.tsv", sep="\t", keep_default_na=False, na_values=[""])


def test_score_variants_scores_each_distinct_variant_once_and_skips_with_a_reason(record, tmp_path):
    rows = ["chr1 2 . C T . PASS . GT 1/1", "chr1 21 . A C,G,<DEL> . PASS . GT 1/1",
            "chr1 21 . A C . PASS . GT 0/1", "chr1 25 . T TAA . PASS . GT 1/1"]
    scorer, counts, table = load_scored(record, tmp_path, rows)
    assert counts == {"records": 4, "variants": 5, "scored": 3, "repeats": 1, "symbolic": 1,
                      "off_chromosome": 1}
    assert len(table) == 5 * len(MARKS)
    reasons = table.drop_duplicates(["pos", "alt"]).set_index("alt")["reason"].fillna("")
    assert reasons.to_dict() == {"C": "", "G": "", "<DEL>": "symbolic", "T": "off_chromosome", "TAA": ""}
    genome = Genome(DATA / "tiny.fa")
    ref_window = genome.tokens("chr1", 10, 30)
    alt_window = ref_window.copy()
    alt_window[10] = 2  # A -> G at base 20
    expected = scorer(np.stack([ref_window, alt_window]))
    got = table[(table["alt"] == "G")].set_index("mark")
    assert got.loc[MARKS, "ref_prob"].to_numpy() == pytest.approx(expected[0], abs=1e-5)
    assert got.loc[MARKS, "alt_prob"].to_numpy() == pytest.approx(expected[1], abs=1e-5)
    logit = np.log(expected / (1 - expected))
    assert got.loc[MARKS, "log_odds_diff"].to_numpy() == pytest.approx(logit[1] - logit[0], abs=1e-4)
    assert set(table["type"]) == {"SNV", "insertion"}


def test_tiled_reports_the_largest_difference_over_the_track_windows(record, tmp_path):
    scorer, _, table = load_scored(record, tmp_path, ["chr1 21 . A G . PASS . GT 1/1"], tiled=True)
    genome = Genome(DATA / "tiny.fa")
    starts = [5, 10, 15, 20]  # the track's windows (every 5 bp) holding base 20 of the 50 bp chr1
    ref = np.stack([genome.tokens("chr1", s, s + WINDOW) for s in starts])
    alt = ref.copy()
    alt[np.arange(4), 20 - np.array(starts)] = 2
    predictor = scorer
    diff = predictor(alt) - predictor(ref)
    expected = diff[np.abs(diff).argmax(0), [0, 1]]
    assert table.set_index("mark").loc[MARKS, "tiled_diff"].to_numpy() == pytest.approx(expected, abs=1e-5)


def test_region_and_chromosome_aliases_as_in_the_map(record, tmp_path):
    rows = ["1 21 . A G . PASS . GT 1/1", "1 35 . T A . PASS . GT 1/1"]
    vcf = write_vcf(tmp_path / "in.vcf", rows, contigs=("1",))
    with pytest.warns(UserWarning, match="1 -> chr1"):
        counts = variant_effect.score_vcf(load(record), vcf, DATA / "tiny.fa", tmp_path / "v.tsv",
                                   region=("chr1", 30, 40), progress=False)
    assert counts["records"] == 1
    assert pd.read_csv(tmp_path / "v.tsv", sep="\t")["pos"].unique().tolist() == [35]


def test_ref_disagreeing_with_the_fasta_or_an_unknown_contig_is_named(record, tmp_path):
    with pytest.raises(ValueError, match=r"record chr1:21: REF 'C' does not match the FASTA"):
        load_scored(record, tmp_path, ["chr1 21 . C G . PASS . GT 1/1"])
    with pytest.raises(ValueError, match=r"record chr7:3: chromosome 'chr7' is not in the FASTA"):
        load_scored(record, tmp_path, ["chr1 21 . A G . PASS . GT 1/1", "chr7 3 . A G . PASS . GT 1/1"])
    assert not (tmp_path / "v.tsv").exists() and not list(tmp_path.glob(".tmp-*"))


def test_out_vcf_is_annotated_bgzipped_and_indexed(record, tmp_path):
    rows = ["chr1 21 . A C,<DEL> . PASS . GT 1/1", "chr1 25 . T TAA . PASS . GT 1/1"]
    out = tmp_path / "scored.vcf.gz"
    _, _, table = load_scored(record, tmp_path, rows, out_vcf=out)
    assert Path(f"{out}.tbi").exists() and not list(tmp_path.glob(".tmp-*"))
    records = list(cyvcf2.VCF(str(out))("chr1:20-30"))
    assert [r.POS for r in records] == [21, 25]
    first = records[0]
    expected = table[(table["alt"] == "C") & (table["mark"] == "H3K9ac")]["diff"].iat[0]
    assert first.INFO["S2E_H3K9ac_DIFF"][0] == pytest.approx(expected, abs=1e-3)
    assert first.INFO["S2E_SKIPPED"] == ".,symbolic"


def test_tiled_diff_left_empty_says_why(record, tmp_path):
    deleted = Genome(DATA / "tiny.fa").fetch("chr1", 16, 41)  # 25 bp, longer than the 20 bp window
    rows = [f"chr1 17 . {deleted} {deleted[0]} . PASS . GT 1/1", "chr1 21 . A <DEL> . PASS . GT 1/1",
            "chr1 21 . A G . PASS . GT 1/1"]
    _, counts, table = load_scored(record, tmp_path, rows, tiled=True)
    found = table.drop_duplicates(["pos", "alt"]).set_index("alt")
    assert found.loc["<DEL>", ["tiled_reason", "reason"]].tolist() == ["symbolic", "symbolic"]
    assert found.loc[deleted[0], "tiled_reason"] == "ref_longer_than_window"
    assert np.isnan(found.loc[deleted[0], "tiled_diff"]) and pd.isna(found.loc[deleted[0], "reason"])
    assert pd.isna(found.loc["G", "tiled_reason"]) and not np.isnan(found.loc["G", "tiled_diff"])
    assert counts["scored"] == 2 and counts["symbolic"] == 1


def test_out_vcf_must_be_named_bgzip_and_not_the_input(record, tmp_path):
    vcf = write_vcf(tmp_path / "in.vcf.gz", [])
    with pytest.raises(ValueError, match=r"plain.vcf: the annotated VCF is written bgzipped .* must end in "
                                         r"\.vcf\.gz or \.vcf\.bgz"):
        load_scored(record, tmp_path, ["chr1 21 . A G . PASS . GT 1/1"], out_vcf=tmp_path / "plain.vcf")
    with pytest.raises(ValueError, match=r"in.vcf.gz is the input VCF"):
        variant_effect.check_out_vcf(tmp_path / "sub" / ".." / "in.vcf.gz", vcf)
    variant_effect.check_out_vcf(tmp_path / "out.vcf.bgz", vcf)
    assert not (tmp_path / "plain.vcf").exists()


def test_the_map_01_and_variant_scoring_build_the_same_windows_of_a_variety():
    """One variety with a SNP, an insertion and a deletion: its windows as the map builds them
    (variety_windows), as 01 builds a VCF variety's windows (variety_tokens_at) and as variant scoring builds
    an alternative allele's (variety_allele_windows) are the same tokens."""
    genome = Genome(DATA / "tiny.fa")
    reference = decode(genome.tokens("chr1", 0, 50))
    found = [("chr1", 4, 5, reference[4], "G"), ("chr1", 20, 21, reference[20], reference[20] + "TTT"),
             ("chr1", 30, 34, reference[30:34], reference[30])]
    table = pd.DataFrame([(c, s, e, r, [a]) for c, s, e, r, a in found],
                         columns=["chrom", "start", "end", "ref", "alts"])
    variety = Variants(Path("<variety>"), ["v"], table, np.ones((3, 1), np.int16))
    tokens, windows = variety_windows(genome, variety, "chr1", 0, 50, 10, 1)
    by_01 = variety_tokens_at(genome, variety, "v", windows, 10)
    by_scoring = variant_effect.variety_allele_windows(genome, variety, "v", "chr1", 0, len(windows), 10, 1)
    np.testing.assert_array_equal(by_scoring, tokens)
    for got, want in zip(by_01, tokens[1], strict=True):
        np.testing.assert_array_equal(got, want[want != PAD])
    assert decode(tokens[1, 0]) == reference[:4] + "G" + reference[5:10]
    assert decode(tokens[1, 15]) == reference[15:21] + "TTT" + reference[21]
    assert decode(tokens[1, 25]) == reference[25:31] + reference[34:38]
