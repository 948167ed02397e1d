import ctypes
import itertools
import os
from pathlib import Path

import cyvcf2
import numpy as np
import pytest
from Bio import bgzf

from seq2epi.data.sequence import PAD, Genome, decode, encode
from seq2epi.data.variants import (
    Variants,
    _chrom_records,
    distinct_window_blocks,
    index_vcf,
    match_chroms,
    parse_chrom_alias,
    read_samples,
    unique_windows,
    variety_sequence,
    variety_tokens_at,
    variety_window_blocks,
    variety_windows,
    window_patterns,
)

DATA = Path(__file__).parents[1] / "data"
REAL = Path(os.environ.get("SEQ2EPI_DATA", Path(__file__).parents[2].parent / "shared" / "data"))
REF = "ACGTACGTNNACGTRYACGTACGTTTGGCCAAGGTTCCAAGGCCNNACGT"  # tests/data/tiny.fa chr1, upper-cased
# tests/data/tiny.vcf applied by hand (default policy: het and missing keep the reference)
VARIETIES = {
    "s1": "ATGT" "AGG" "CGTNNACGTRYACGT" "G" "CGTT" "T" "CCAAGGTTCCAAGGCCNNACGT",
    "s2": "ACGTACGTNN" "A" "TRYACGT" "C" "CGTTT" "A" "GCCAAGGTTCCAAGGCCNN" "A" "T",
    "s3": "ACGT" "AGG" "CGTNNACGTRYACGTACGTTTGGCCAAGGTTCCAAGGCCNNACGT",
    "s4": "ACGTACGTNN" "A" "TRYACGTACGTTTGGCCAAGGTTCCAAGGCCNNACGT",
}
VCF_HEADER = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']


def tokens_of(seq: str) -> str:
    """What a sequence reads as after encoding (IUPAC codes become N)."""
    return decode(encode(seq))


def write_vcf(path, records, samples=("a",), contigs=("chr1",)):
    lines = VCF_HEADER + [f"##contig=<ID={c}>" for c in contigs]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
                           + list(samples)))
    lines += ["\t".join(r.split()) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def bgzip_and_index(src: Path, dst: Path) -> Path:
    """bgzip + tabix with the htslib inside cyvcf2 (no command-line tools needed)."""
    lib = ctypes.CDLL(cyvcf2.cyvcf2.__file__)
    with bgzf.BgzfWriter(str(dst), "wb") as out:
        out.write(src.read_bytes())
    if lib.tbx_index_build(str(dst).encode(), 0, ctypes.byref(ctypes.c_int.in_dll(lib, "tbx_conf_vcf"))):
        pytest.skip("htslib could not index the VCF")
    return dst


@pytest.fixture
def genome():
    return Genome(DATA / "tiny.fa")


@pytest.fixture
def variants(genome):
    with pytest.warns(UserWarning, match="skipped 1 variant call"):
        return Variants.load(DATA / "tiny.vcf", genome)


def test_load_reads_samples_table_and_counts(variants):
    assert read_samples(DATA / "tiny.vcf") == variants.samples == ["s1", "s2", "s3", "s4"]
    assert variants.counts == dict(records=8, het=2, missing=2, multiallelic=1, symbolic=0, skipped=1)
    assert variants.table[["chrom", "start", "end", "ref"]].values.tolist()[:3] == [
        ["chr1", 1, 2, "C"], ["chr1", 4, 5, "A"], ["chr1", 10, 13, "ACG"]]
    assert variants.table["alts"][3] == ["C", "G"]
    # multi-allelic: each sample its own allele; s1's SNP inside its own deletion is skipped (0)
    np.testing.assert_array_equal(variants.genotypes[3], [2, 1, 0, 0])
    np.testing.assert_array_equal(variants.genotypes[5], [0, 1, 0, 0])


def test_variety_sequences_apply_snps_and_indels(genome, variants):
    for sample, expected in VARIETIES.items():
        tokens, index = variety_sequence(genome, variants, sample, "chr1", 0, 50)
        assert decode(tokens) == tokens_of(expected), sample
        assert index.shape == (50,) and index[0] == 0
    tokens, index = variety_sequence(genome, None, None, "chr1", 0, 50)
    assert decode(tokens) == tokens_of(REF)
    np.testing.assert_array_equal(index, np.arange(50))


def test_index_maps_reference_positions_into_the_variety(genome, variants):
    tokens, index = variety_sequence(genome, variants, "s1", "chr1", 0, 50)
    assert index[4] == 4 and index[5] == 7  # AGG inserted after reference base 4
    assert index[25] == 27 and index[26] == index[27] == index[28] == 28  # TGG>T: deleted bases map after it
    assert decode(tokens[index[28] : index[28] + 2]) == "CC"
    # an interval starting inside s2's deletion (ACG>A at 10) starts at the base after it
    tokens, index = variety_sequence(genome, variants, "s2", "chr1", 11, 20)
    assert decode(tokens) == tokens_of("TRYACGT")
    np.testing.assert_array_equal(index, [0, 0, 0, 1, 2, 3, 4, 5, 6])


def test_het_and_missing_policies(genome):
    kw = dict(het="n", missing="n")
    with pytest.warns(UserWarning):
        masked = Variants.load(DATA / "tiny.vcf", genome, **kw)
        alt = Variants.load(DATA / "tiny.vcf", genome, het="alt")
    s3 = decode(variety_sequence(genome, masked, "s3", "chr1", 0, 50)[0])
    assert s3[1] == "N" and s3[22] == "N"  # het SNP at 1 and het 1/2 at 20 (after the 2 bp insertion)
    assert decode(variety_sequence(genome, masked, "s4", "chr1", 0, 4)[0]) == "ANGT"  # missing
    assert decode(variety_sequence(genome, masked, "s3", "chr2", 0, 3)[0]) == "NTT"  # missing haploid call
    s3 = decode(variety_sequence(genome, alt, "s3", "chr1", 0, 50)[0])
    assert s3[1] == "T" and s3[22] == "C"  # 1/2 takes its first alternative allele
    with pytest.raises(ValueError, match="het policy"):
        Variants.load(DATA / "tiny.vcf", genome, het="maybe")


def test_windows_keep_reference_coordinates(genome, variants):
    tokens, windows = variety_windows(genome, variants, "chr1", 0, 50, window=10, stride=10)
    assert tokens.shape == (5, 5, 10) and tokens.dtype == np.uint8
    assert windows.values.tolist() == [["chr1", s, s + 10] for s in range(0, 50, 10)]
    assert decode(tokens[0, 2]) == tokens_of(REF[20:30])
    s1 = VARIETIES["s1"]
    assert [decode(w) for w in tokens[1]] == [tokens_of(s1[i : i + 10]) for i in (0, 12, 22, 30, 40)]
    # s2 lost 4 bp: its last window runs out of chromosome and is padded
    np.testing.assert_array_equal(tokens[2, 4, 8:], [PAD, PAD])
    # deletions pull bases in from past the region's end
    tokens, _ = variety_windows(genome, variants, "chr1", 0, 20, window=10, stride=10)
    assert decode(tokens[2, 1]) == tokens_of("ATRYACGTCC")


def test_region_query_matches_a_scan_and_uses_the_index(genome, tmp_path):
    indexed = bgzip_and_index(DATA / "tiny.vcf", tmp_path / "tiny.vcf.gz")
    assert (tmp_path / "tiny.vcf.gz.tbi").exists()
    region = ("chr1", 11, 30)  # starts inside the ACG>A deletion at 10
    with pytest.warns(UserWarning, match="skipped"):
        plain = Variants.load(DATA / "tiny.vcf", genome, region)
    with pytest.warns(UserWarning, match="skipped"):
        fast = Variants.load(indexed, genome, region)
    assert plain.table.equals(fast.table) and plain.counts == fast.counts
    assert plain.table["start"].tolist() == [10, 20, 25, 26]
    for sample in plain.samples:
        a, b = (variety_sequence(genome, v, sample, "chr1", 11, 30)[0] for v in (plain, fast))
        np.testing.assert_array_equal(a, b)


def test_sample_subset_keeps_the_requested_order(genome):
    with pytest.warns(UserWarning):
        v = Variants.load(DATA / "tiny.vcf", genome, samples=["s3", "s1"])
    assert v.samples == ["s3", "s1"]
    np.testing.assert_array_equal(v.genotypes[v.table["start"] == 20][0], [0, 2])
    assert decode(variety_sequence(genome, v, "s1", "chr1", 0, 50)[0]) == tokens_of(VARIETIES["s1"])


def test_chromosome_alias(genome, tmp_path):
    vcf = write_vcf(tmp_path / "a.vcf", ["scaffold1 2 . C T . PASS . GT 1/1"], contigs=("scaffold1",))
    with pytest.raises(ValueError, match=r"contigs \(scaffold1\) do not match .* chromosomes \(chr1, chr2, "
                                         r"chr3\); map them with chrom_alias"):
        Variants.load(vcf, genome)
    v = Variants.load(vcf, genome, region=("chr1", 0, 10), chrom_alias={"scaffold1": "chr1"})
    assert decode(variety_sequence(genome, v, "a", "chr1", 0, 4)[0]) == "ATGT"
    vcf = write_vcf(tmp_path / "b.vcf", ["7 2 . C T . PASS . GT 1/1"], contigs=("7",))
    assert Variants.load(vcf, genome, chrom_alias={7: "chr1"}).table["chrom"].tolist() == ["chr1"]  # YAML int


def test_common_chromosome_forms_are_matched_and_said(genome, tmp_path):
    vcf = write_vcf(tmp_path / "a.vcf", ["1 2 . C T . PASS . GT 1/1", "02 1 . T A . PASS . GT 1/1"],
                    contigs=("1", "02"))
    with pytest.warns(UserWarning, match=r"a.vcf: chromosome names read as the FASTA .*tiny.fa's: 1 -> chr1, "
                                         r"02 -> chr2"):
        v = Variants.load(vcf, genome)
    assert v.table["chrom"].tolist() == ["chr1", "chr2"]
    with pytest.warns(UserWarning, match="1 -> chr1"):  # also through a region query
        v = Variants.load(vcf, genome, region=("chr1", 0, 10))
    assert decode(variety_sequence(genome, v, "a", "chr1", 0, 4)[0]) == "ATGT"
    vcf = write_vcf(tmp_path / "b.vcf", ["Chr1 2 . C T . PASS . GT 1/1"], contigs=())  # no ##contig lines
    with pytest.warns(UserWarning, match="Chr1 -> chr1"):
        assert Variants.load(vcf, genome).table["chrom"].tolist() == ["chr1"]


def test_match_chroms_only_when_unambiguous():
    fasta = ["chr01", "chr02", "chr10", "ChrSy"]
    assert match_chroms(["1", "2", "10", "sy", "Un"], fasta) == {"1": "chr01", "2": "chr02", "10": "chr10",
                                                                 "sy": "ChrSy"}
    assert match_chroms(["1"], ["chr1", "chr01"]) == {}  # two FASTA names fit
    assert match_chroms(["1", "chr1"], ["chr01"]) == {}  # two VCF names want one chromosome
    assert match_chroms(["1", "chr01"], ["chr01"]) == {}  # chr01 is taken by its own name
    assert match_chroms(["1", "2"], fasta, {"2": "chr01"}) == {}  # the alias wins and claims chr01
    assert match_chroms(["2"], fasta, {"1": "chr02"}) == {}


def test_vcf_without_gt_names_the_record(genome):
    with pytest.raises(ValueError, match=r"no_gt.vcf record chr1:2 has no GT field; expected a genotype"):
        Variants.load(DATA / "no_gt.vcf", genome)


def test_vcf_without_chrom_line_is_named(genome, tmp_path):
    vcf = tmp_path / "headless.vcf"
    vcf.write_text("".join(line for line in (DATA / "tiny.vcf").open() if not line.startswith("#CHROM")))
    with pytest.raises(ValueError, match=r"headless.vcf: line 6 comes before the '#CHROM' header line"):
        Variants.load(vcf, genome)
    vcf.write_text("##fileformat=VCFv4.2\n")
    with pytest.raises(ValueError, match=r"headless.vcf: the '#CHROM' header line is missing"):
        read_samples(vcf)


def test_parse_chrom_alias_names_a_malformed_pair():
    assert parse_chrom_alias(["1=chr01", " 2 = chr02"]) == {"1": "chr01", "2": "chr02"}
    assert parse_chrom_alias(None) == {}
    for bad in ("1:chr01", "=chr01", "1="):
        with pytest.raises(ValueError, match=rf"alias '{bad}' is not VCF=FASTA; expected pairs like 1=chr01"):
            parse_chrom_alias([bad])


def test_window_blocks_join_into_the_windows(genome, variants):
    tokens, _ = variety_windows(genome, variants, "chr1", 0, 50, 10, 3)
    blocks = list(variety_window_blocks(genome, variants, "chr1", 0, 50, 10, 3, max_bytes=5 * 10 * 4))
    assert [b.shape[1] for b in blocks] == [4, 4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), tokens)


def test_unique_windows_round_trip():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 2, (3, 7, 4)).astype(np.uint8)
    uniq, inverse = unique_windows(tokens)
    assert inverse.shape == (3, 7) and len(uniq) == len({t.tobytes() for t in tokens.reshape(-1, 4)})
    np.testing.assert_array_equal(uniq[inverse], tokens)


# ---- distinct windows: by allele pattern == by bytes ----

def assert_same_distinct_windows(genome, variants, chrom, start, end, window, stride, max_bytes=None):
    """Both dedup paths give the same distinct windows and inverse, block by block, and rebuild every row."""
    args = (genome, variants, chrom, start, end, window, stride, max_bytes)
    by_bytes, by_alleles = (list(distinct_window_blocks(*args, dedup=d)) for d in ("bytes", "alleles"))
    assert len(by_bytes) == len(by_alleles)
    for (u1, i1), (u2, i2) in zip(by_bytes, by_alleles, strict=True):
        np.testing.assert_array_equal(u1, u2)
        np.testing.assert_array_equal(i1, i2)
    tokens, _ = variety_windows(genome, variants, chrom, start, end, window, stride)
    rebuilt = np.concatenate([u[i] for u, i in by_alleles], axis=1)
    np.testing.assert_array_equal(rebuilt, tokens)


@pytest.mark.parametrize("het,missing", itertools.product(("ref", "alt", "n"), ("ref", "n")))
def test_allele_patterns_give_the_byte_path_windows(genome, het, missing):
    with pytest.warns(UserWarning, match="skipped"):
        v = Variants.load(DATA / "tiny.vcf", genome, het=het, missing=missing)
    for window, stride in [(10, 10), (10, 3), (5, 1), (20, 7), (50, 1)]:
        for start in range(0, 50 - window + 1, 7):
            for max_bytes in (None, 100):
                assert_same_distinct_windows(genome, v, "chr1", start, 50, window, stride, max_bytes)
    assert_same_distinct_windows(genome, v, "chr2", 0, 25, 4, 2)


def random_population(tmp_path, seed, n_samples=12, length=120):
    """A random genome and VCF: SNPs, MNPs, insertions, long deletions (some reaching the chromosome end),
    multi-allelic sites, overlapping records, het and missing calls."""
    rng = np.random.default_rng(seed)
    ref = "".join(rng.choice(list("ACGT"), length))
    (tmp_path / "r.fa").write_text(f">c\n{ref}\n")
    records, pos = [], 1
    while pos < length:
        r_len = int(rng.choice([1, 1, 1, 2, 4, 9]))
        r_len = min(r_len, length - pos + 1)
        alts = set()
        for _ in range(int(rng.integers(1, 3))):
            a_len = int(rng.choice([1, 1, 3, r_len]))
            alts.add("".join(rng.choice(list("ACGT"), a_len)))
        alts = sorted(alts - {ref[pos - 1 : pos - 1 + r_len]}) or [("A" if ref[pos - 1] != "A" else "C")]
        k = len(alts)
        calls = rng.choice([f"{a}/{a}" for a in range(k + 1)] + ["0/1", "./.", f"{k}/0"], n_samples)
        records.append(f"c {pos} . {ref[pos - 1 : pos - 1 + r_len]} {','.join(alts)} . PASS . GT "
                       + " ".join(calls))
        pos += int(rng.integers(0, 6))  # 0: a second record at the same position
        pos = max(pos, 1)
    vcf = write_vcf(tmp_path / "r.vcf", records, samples=[f"v{i}" for i in range(n_samples)], contigs=("c",))
    return Genome(tmp_path / "r.fa"), vcf


@pytest.mark.parametrize("seed", range(4))
def test_allele_patterns_on_random_indels_and_overlaps(tmp_path, seed):
    genome, vcf = random_population(tmp_path, seed)
    for het, missing in (("ref", "ref"), ("alt", "n"), ("n", "n")):
        with pytest.warns(UserWarning, match="skipped"):
            v = Variants.load(vcf, genome, het=het, missing=missing)
        for window, stride in [(10, 3), (16, 5), (30, 1)]:
            assert_same_distinct_windows(genome, v, "c", 0, 120, window, stride)
            assert_same_distinct_windows(genome, v, "c", 13, 90, window, stride, max_bytes=600)


def test_deletions_extend_what_a_window_reads(genome, tmp_path):
    # chr1 ACGTACGTNNACGTRY...: the deletion at 4 removes 3 bases, so the window [0, 10) reads up to 13
    records = ["chr1 5 . ACGT A . PASS . GT 1/1 1/1 0/0", "chr1 13 . G T . PASS . GT 0/0 1/1 1/1",
               "chr1 15 . R A . PASS . GT 1/1 1/1 1/1"]
    v = Variants.load(write_vcf(tmp_path / "d.vcf", records, samples=("a", "b", "c")), genome)
    patterns, reach = window_patterns(_chrom_records(v, "chr1"), np.array([0, 20]), 10, 3)
    assert reach.tolist() == [13, 30]
    assert patterns[0, 0] == 0 and len(set(patterns[0].tolist())) == 4  # the SNP at 12 is read by a and b
    assert (patterns[1] == 0).all()  # nothing reaches [20, 30): every variety is the reference
    assert_same_distinct_windows(genome, v, "chr1", 0, 30, 10, 10)


@pytest.mark.skipif(not (REAL / "rice_3k_cultivars").is_dir(), reason="shared real data not present")
def test_allele_patterns_on_the_real_cultivars():
    genome = Genome(REAL / "rice_irgsp1_subset" / "genome.fa")
    v = Variants.load(REAL / "rice_3k_cultivars" / "chr01_1000-50000.vcf", genome)
    assert_same_distinct_windows(genome, v, "chr01", 0, 60_000, 200, 50)
    assert_same_distinct_windows(genome, v, "chr01", 950, 20_000, 200, 50, max_bytes=2**16)


@pytest.mark.slow
def test_allele_patterns_on_a_simulated_population_with_indels(tmp_path):
    from seq2epi.data.simulate import simulate_population

    fasta = REAL / "rice_irgsp1_subset" / "genome.fa"
    if not fasta.exists():
        pytest.skip("shared real data not present")
    vcf = simulate_population(fasta, "chr01", 0, 30_000, 40, tmp_path / "p.vcf.gz", indel_fraction=0.3,
                              recombination_rate=1e-8, seed=3)
    genome = Genome(fasta)
    v = Variants.load(vcf, genome, region=("chr01", 0, 30_000))
    assert (v.table["ref"].str.len() > 1).any() and (v.table["alts"].map(lambda a: len(a[0])) > 1).any()
    assert_same_distinct_windows(genome, v, "chr01", 0, 29_000, 200, 50, max_bytes=2**18)


# ---- index ----

def test_index_vcf_builds_tabix_and_csi_and_bcf_reads_the_same(genome, tmp_path):
    import pysam

    assert index_vcf(DATA / "tiny.vcf") is None  # plain text: scanned
    gz = tmp_path / "tiny.vcf.gz"
    pysam.tabix_compress(str(DATA / "tiny.vcf"), str(gz))
    assert index_vcf(gz) == tmp_path / "tiny.vcf.gz.tbi" and index_vcf(gz).exists()
    bcf = tmp_path / "tiny.bcf"
    with pysam.VariantFile(str(DATA / "tiny.vcf")) as src, pysam.VariantFile(str(bcf), "wb",
                                                                              header=src.header) as out:
        for rec in src:
            out.write(rec)
    assert index_vcf(bcf) == tmp_path / "tiny.bcf.csi"
    region = ("chr1", 11, 30)
    with pytest.warns(UserWarning, match="skipped"):
        loaded = [Variants.load(path, genome, region) for path in (DATA / "tiny.vcf", gz, bcf)]
    for other in loaded[1:]:
        assert other.table.equals(loaded[0].table) and other.counts == loaded[0].counts
        np.testing.assert_array_equal(other.genotypes, loaded[0].genotypes)


def test_index_older_than_its_vcf(genome, tmp_path):
    import pysam

    gz = tmp_path / "tiny.vcf.gz"
    pysam.tabix_compress(str(DATA / "tiny.vcf"), str(gz))
    index = index_vcf(gz)
    os.utime(index, (1_000_000, 1_000_000))
    with pytest.raises(ValueError, match=r"index .*tiny.vcf.gz.tbi is older than its VCF .*tiny.vcf.gz"):
        index_vcf(gz)
    with pytest.raises(ValueError, match="is older than its VCF"):
        Variants.load(gz, genome, region=("chr1", 0, 20))


# ---- bad input ----

def test_ploidy_mix_names_the_record(genome, tmp_path):
    vcf = write_vcf(tmp_path / "p.vcf", ["chr1 2 . C T . PASS . GT 1/1 1", "chr1 5 . A T . PASS . GT 1 1"],
                    samples=("a", "b"))
    with pytest.raises(ValueError, match=r"p.vcf record chr1:2 mixes ploidies: sample b has a haploid "
                                         r"call, a a diploid one"):
        Variants.load(vcf, genome)
    vcf = write_vcf(tmp_path / "t.vcf", ["chr1 2 . C T . PASS . GT 1/1 1/1/0"], samples=("a", "b"))
    with pytest.raises(ValueError, match=r"t.vcf record chr1:2: sample b has a call of more than two"):
        Variants.load(vcf, genome)


def test_unknown_sample_lists_the_samples(genome):
    with pytest.raises(ValueError, match=r"tiny.vcf has no sample\(s\) \['s9'\]; it has s1, s2, s3, s4"):
        Variants.load(DATA / "tiny.vcf", genome, samples=["s1", "s9"])


def test_record_on_a_chromosome_missing_from_the_fasta(genome, tmp_path):
    vcf = write_vcf(tmp_path / "a.vcf", ["chr1 2 . C T . PASS . GT 1/1", "chrX 1 . A T . PASS . GT 1/1"],
                    contigs=("chr1", "chrX"))
    with pytest.raises(ValueError, match=r"record chrX:1: .* VCF has chr1, chrX, the FASTA has chr1, chr2"):
        Variants.load(vcf, genome)


def test_ref_that_disagrees_with_the_reference(genome, tmp_path):
    vcf = write_vcf(tmp_path / "bad.vcf", ["chr1 3 . A T . PASS . GT 1/1"])
    with pytest.raises(ValueError, match=r"bad.vcf record chr1:3: REF 'A' does not match .*tiny.fa.*'G'"):
        Variants.load(vcf, genome)


def test_unsorted_records(genome, tmp_path):
    vcf = write_vcf(tmp_path / "u.vcf", ["chr1 5 . A T . PASS . GT 1/1", "chr1 2 . C T . PASS . GT 1/1"])
    with pytest.raises(ValueError, match=r"u.vcf record chr1:2 comes after chr1:5; expected records sorted"):
        Variants.load(vcf, genome)
    vcf = write_vcf(tmp_path / "c.vcf", ["chr1 2 . C T . PASS . GT 1/1", "chr2 1 . T A . PASS . GT 1/1",
                                        "chr1 5 . A T . PASS . GT 1/1"], contigs=("chr1", "chr2"))
    with pytest.raises(ValueError, match="record chr1:5 comes after chr2:1"):
        Variants.load(vcf, genome)


def test_interval_past_the_chromosome_end(genome, variants):
    with pytest.raises(ValueError, match=r"chr1:40-60 is not inside chr1 \(0-50\) of the FASTA .*tiny.fa"):
        Variants.load(DATA / "tiny.vcf", genome, region=("chr1", 40, 60))
    with pytest.raises(ValueError, match="chr2:0-26 is not inside chr2"):
        variety_sequence(genome, variants, "s1", "chr2", 0, 26)
    with pytest.raises(ValueError, match="chr1:45-55 is not inside"):
        variety_windows(genome, variants, "chr1", 45, 55, 10, 5)
    with pytest.raises(ValueError, match="chr1:0-8 is 8 bp, shorter than the 10 bp window"):
        variety_windows(genome, variants, "chr1", 0, 8, 10, 5)


def test_empty_vcf_gives_the_reference(genome, tmp_path):
    vcf = write_vcf(tmp_path / "empty.vcf", [], samples=("a", "b"))
    with pytest.warns(UserWarning, match="empty.vcf has no records: every variety equals the reference"):
        v = Variants.load(vcf, genome)
    assert v.samples == ["a", "b"] and v.table.empty and v.genotypes.shape == (0, 2)
    tokens, _ = variety_windows(genome, v, "chr1", 0, 50, 10, 10)
    assert (tokens == tokens[0]).all()


def test_missing_vcf(genome, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.vcf"):
        Variants.load(tmp_path / "nope.vcf", genome)


# ---- real data: four 3K-RG cultivars over IRGSP-1.0 ----

@pytest.mark.skipif(not (REAL / "rice_3k_cultivars").is_dir(), reason="shared real data not present")
def test_real_3k_cultivars_match_irgsp1():
    genome = Genome(REAL / "rice_irgsp1_subset" / "genome.fa")
    vcf = REAL / "rice_3k_cultivars" / "chr01_1000-50000.vcf"
    v = Variants.load(vcf, genome)  # raises on any REF that disagrees with the FASTA
    assert v.samples == ["IRIS_313-10603", "IRIS_313-11737", "IRIS_313-8326", "CX357"]
    assert v.counts["records"] == 444 and set(v.table["chrom"]) == {"chr01"}
    n_alt = (v.genotypes > 0).sum(0)
    tokens, _ = variety_windows(genome, v, "chr01", 1000, 50000, 1000, 1000)
    differs = (tokens[1:] != tokens[0]).sum((1, 2))
    np.testing.assert_array_equal(differs, n_alt)  # SNVs only: one changed base per homozygous call


def test_carried_lists_each_sample_variant(variants):
    carried = variants.carried()
    assert list(carried.columns) == ["chrom", "start", "ref", "alt", "sample"]
    assert len(carried) == int((variants.genotypes != 0).sum())
    s1 = carried[carried["sample"] == "s1"]
    assert s1["start"].is_monotonic_increasing and set(s1["chrom"]) == {"chr1"}
    table = variants.table.set_index("start")
    assert all(table.loc[r.start, "ref"] == r.ref for r in carried.itertuples())


@pytest.mark.parametrize("span", [1_000_000, 7])
def test_variety_tokens_at_are_the_maps_windows_in_any_order(span):
    genome = Genome(DATA / "tiny.fa")
    with pytest.warns(UserWarning, match="skipped 1 variant call"):
        loaded = Variants.load(DATA / "tiny.vcf", genome)
    for chrom, size in (("chr1", 50), ("chr2", 25)):
        tokens, windows = variety_windows(genome, loaded, chrom, 0, size, 10, 1)
        shuffled = windows.sample(frac=1, random_state=0)
        for row, sample in enumerate([None, *loaded.samples]):
            built = variety_tokens_at(genome, loaded, sample, shuffled, 10, span)
            for got, i in zip(built, shuffled.index, strict=True):
                want = tokens[row, i]
                np.testing.assert_array_equal(got, want[want != PAD])
