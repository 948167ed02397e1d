import warnings
from pathlib import Path

import bioframe
import numpy as np
import pandas as pd
import pytest

from seq2epi.data.intervals import (
    background_windows,
    gc_matched_background,
    overlaps,
    parse_region,
    read_gff_genes,
    read_labelled_windows,
    read_peaks,
    regions_table,
    sample_background,
    split_by_region,
    summit_windows,
    window_scores,
)
from seq2epi.data.sequence import Genome, gc_content

DATA = Path(__file__).parents[1] / "data"
SIZES = {"chr1": 50, "chr2": 25, "chr3": 10}


def write(tmp_path, text, name="peaks.bed"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_bed_skips_headers_and_centres_summit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        peaks = read_peaks(DATA / "peaks.bed", SIZES)
    assert list(peaks.columns) == ["chrom", "start", "end", "summit"]
    assert peaks.values.tolist() == [["chr1", 5, 15, 10], ["chr1", 30, 40, 35], ["chr2", 2, 12, 7]]


def test_read_narrowpeak_summit_offset():
    peaks = read_peaks(DATA / "peaks.narrowPeak", SIZES)
    assert peaks["summit"].tolist() == [8, 7]  # 5 + 3; -1 -> centre of 2..12


@pytest.mark.parametrize(
    "text, line, match",
    [
        ("chr1\t5\n", 1, "at least 3"),
        ("chr1\t1\t5\nchr1\tfive\t9\n", 2, "start must be an integer, got 'five'"),
        ("chr1\t1\t5\nchr1\t2\t9.5\n", 2, "end must be an integer"),
        ("# header\nchr1\t9\t9\n", 2, "start < end"),
        ("chr1\t-3\t9\n", 1, "start < end"),
        ("chr1\t1\t5\nchrX\t1\t5\n", 2, r"'chrX' is not in the FASTA \(which has chr1, chr2, chr3\)"),
        ("chr1\t5\t15\tp\t0\t.\t1\t1\t1\tx\n", 1, "summit offset"),
        ("chr1\t5\t15\tp\t0\t.\t1\t1\t1\t10\n", 1, "outside the 10 bp peak"),
    ],
)
def test_read_peaks_errors_name_file_and_line(tmp_path, text, line, match):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=rf"peaks\.bed line {line}: .*{match}"):
        read_peaks(path, SIZES)


def test_read_peaks_empty_and_missing(tmp_path):
    with pytest.raises(ValueError, match=r"peaks\.bed has no peak records"):
        read_peaks(write(tmp_path, "track name=x\n\n"), SIZES)
    with pytest.raises(FileNotFoundError, match="nope.bed"):
        read_peaks(tmp_path / "nope.bed", SIZES)


def test_read_peaks_from_labelled_windows_keeps_label_1_of_the_mark(tmp_path):
    path = tmp_path / "windows.bed"
    path.write_text("#chrom\tstart\tend\tmark\tsplit\tlabel\nchr1\t0\t10\tK4\ttrain\t1\n"
                    "chr1\t10\t20\tK4\ttrain\t0\nchr1\t20\t30\tK27\ttest\t1\n")
    sizes = {"chr1": 100}
    assert read_peaks(path, sizes, mark="K4")["start"].tolist() == [0]
    assert read_peaks(path, sizes)["start"].tolist() == [0, 20]
    with pytest.raises(ValueError, match="has no peak records labelled 1 for K9"):
        read_peaks(path, sizes, mark="K9")
    path.write_text("#chrom\tstart\tend\tmark\tsplit\tlabel\nchr1\t0\t10\tK4\n")
    with pytest.raises(ValueError, match="line 2: expected the columns its header names, found 4"):
        read_peaks(path, sizes, mark="K4")


def test_read_peaks_clips_and_drops_past_chrom_end(tmp_path):
    path = write(tmp_path, "chr3\t2\t8\nchr3\t5\t14\nchr2\t20\t30\nchr3\t10\t12\n")
    with pytest.warns(UserWarning, match=r"peaks\.bed: clipped 2 peak\(s\).*dropped 1") as record:
        peaks = read_peaks(path, SIZES)
    assert len(record) == 1
    assert peaks.values.tolist() == [["chr3", 2, 8, 5], ["chr3", 5, 10, 9], ["chr2", 20, 25, 24]]


def test_summit_windows_centred_shifted_and_deduplicated():
    peaks = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr1", "chr1", "chr2"],
            "start": [10, 10, 0, 40, 0],
            "end": [30, 30, 4, 50, 25],
            "summit": [20, 20, 1, 48, 12],
        }
    )
    windows = summit_windows(peaks, 10, SIZES)
    assert windows.values.tolist() == [["chr1", 15, 25], ["chr1", 0, 10], ["chr1", 40, 50], ["chr2", 7, 17]]
    assert (windows["end"] - windows["start"] == 10).all()


def test_summit_windows_window_longer_than_chromosome():
    peaks = pd.DataFrame({"chrom": ["chr3"], "start": [0], "end": [5], "summit": [2]})
    with pytest.raises(ValueError, match=r"longer than chromosome chr3 \(10 bp\)"):
        summit_windows(peaks, 11, SIZES)


def test_background_windows_avoid_peaks_seeded_sorted():
    sizes = {"a": 10_000, "b": 5_000}
    peaks = pd.DataFrame({"chrom": ["a", "a", "b"], "start": [100, 5_000, 0], "end": [900, 6_000, 4_000]})
    bg = background_windows(peaks, sizes, window=200, n=300, seed=1)
    assert len(bg) == 300 and not bg.duplicated().any()
    assert (bg["end"] - bg["start"] == 200).all()
    assert bioframe.overlap(bg, peaks, how="inner").empty
    assert all(bg["end"] <= bg["chrom"].map(sizes)) and (bg["start"] >= 0).all()
    assert bg.equals(bioframe.sort_bedframe(bg, view_df=sizes).reset_index(drop=True))
    assert bg.equals(background_windows(peaks, sizes, window=200, n=300, seed=1))
    assert not bg.equals(background_windows(peaks, sizes, window=200, n=300, seed=2))


def test_background_windows_use_every_free_position_and_raise_when_too_few():
    sizes = {"a": 30}
    peaks = pd.DataFrame({"chrom": ["a"], "start": [10], "end": [20]})
    bg = background_windows(peaks, sizes, window=8, n=6, seed=0)  # starts 0,1,2 and 20,21,22 only
    assert bg["start"].tolist() == [0, 1, 2, 20, 21, 22]
    with pytest.raises(ValueError, match="only 6 windows of 8 bp"):
        background_windows(peaks, sizes, window=8, n=7, seed=0)


def test_split_by_region_holds_out_chromosomes_or_regions():
    df = pd.DataFrame({"chrom": ["chr1", "chr2", "chr3", "chr1", "chr1"], "start": [0, 0, 0, 100, 290],
                       "end": [10, 10, 10, 110, 320]})
    assert split_by_region(df, ["chr2"], ["chr3"]).tolist() == ["train", "val", "test", "train", "train"]
    split = split_by_region(df, ["chr1:100-200"], ["chr1:300-400", "chr3"])  # by the window's centre
    assert split.tolist() == ["train", "train", "test", "val", "test"]
    with pytest.raises(ValueError, match="validation region chr2 and test region chr2:5-9 overlap"):
        split_by_region(df, ["chr2"], ["chr2:5-9"])
    with pytest.raises(ValueError, match=r"test region\(s\) \['Chr2:0-5'\] lie on .*chr1, chr2, chr3"):
        split_by_region(df, [], ["Chr2:0-5"])
    assert (split_by_region(df, [], ["Chr2:0-5"], require_present=False) == "train").all()
    with pytest.raises(ValueError, match="is not of the form chrom:start-end"):
        split_by_region(df, ["chr1:9-3"], [])


def test_read_gff_genes():
    genes = read_gff_genes(DATA / "genes.gff")
    assert genes.values.tolist() == [["chr1", 2, 12, "+", "ALPHA;1"], ["chr2", 0, 25, "-", "gene2"]]


def test_read_gff_errors(tmp_path):
    path = write(tmp_path, "##gff-version 3\nchr1\tt\tgene\t3\t12\t.\t+\n", "bad.gff")
    with pytest.raises(ValueError, match=r"bad\.gff line 2: expected 9"):
        read_gff_genes(path)
    path = write(tmp_path, "chr1\tt\tgene\tx\t12\t.\t+\t.\tID=g\n", "bad.gff")
    with pytest.raises(ValueError, match=r"bad\.gff line 1: start must be an integer"):
        read_gff_genes(path)
    path = write(tmp_path, "chr1\tt\texon\t3\t12\t.\t+\t.\tID=g\n", "bad.gff")
    with pytest.raises(ValueError, match="no 'gene' features"):
        read_gff_genes(path)


def test_read_gff_genes_real_rice(shared_data):
    genes = read_gff_genes(shared_data / "rice_irgsp1_subset" / "genes.gff")
    assert len(genes) == 30
    assert genes.iloc[0].tolist() == ["chr01", 2902, 10817, "+", "Os01g0100100"]
    assert set(genes["chrom"]) <= {"chr01", "chr02", "chr03"} and (genes["end"] <= 500_000).all()
    assert set(genes["strand"]) == {"+", "-"}


def test_parse_region():
    assert parse_region("chr01:100,000-150,000") == ("chr01", 100_000, 150_000)
    assert parse_region("scaffold:1:0-10") == ("scaffold:1", 0, 10)
    for bad in ("chr01", "chr01:5-5", "chr01:a-9"):
        with pytest.raises(ValueError, match="chrom:start-end"):
            parse_region(bad)


def test_overlaps_marks_windows_touching_a_peak():
    windows = pd.DataFrame({"chrom": ["chr1", "chr1", "chr2", "chr1"], "start": [0, 10, 0, 19],
                            "end": [10, 20, 10, 29]})
    peaks = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [12, 15], "end": [14, 20]})
    assert overlaps(windows, peaks).tolist() == [False, True, False, True]


def block_genome(tmp_path, gc_per_block, block=1_000, seed=0, n_block=None):
    """A one-chromosome FASTA of blocks with the given GC probabilities (an 'N' block at index n_block)."""
    rng = np.random.default_rng(seed)
    seqs = []
    for i, gc in enumerate(gc_per_block):
        p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
        seqs.append("N" * block if i == n_block else "".join(rng.choice(list("ACGT"), block, p=p)))
    path = tmp_path / "blocks.fa"
    path.write_text(">c1\n" + "".join(seqs) + "\n")
    return Genome(path)


def gc_of(genome, windows):
    return np.array([gc_content(genome.tokens(*w)) for w in windows[["chrom", "start", "end"]].values])


@pytest.fixture
def gc_genome(tmp_path):
    """40 blocks of 1 kb cycling through GC 0.3..0.7; peaks sit in the GC-rich blocks."""
    genome = block_genome(tmp_path, [0.3, 0.4, 0.5, 0.6, 0.7] * 8)
    starts = [1_000 * b + 300 for b in range(40) if b % 5 >= 3]
    return genome, pd.DataFrame({"chrom": "c1", "start": starts, "end": [s + 200 for s in starts]})


def test_gc_matched_background_matches_the_peaks_gc_histogram(gc_genome):
    genome, peaks = gc_genome
    exclude = pd.DataFrame({"chrom": ["c1"], "start": [8_000], "end": [10_000]})
    bg = gc_matched_background(peaks, genome, window=100, n=64, seed=0, bins=10, exclude=exclude)
    assert list(bg.columns) == ["chrom", "start", "end", "gc"] and len(bg) == 64
    assert not bg.duplicated(["chrom", "start"]).any() and (bg["end"] - bg["start"] == 100).all()
    assert bioframe.overlap(bg, peaks, how="inner").empty and bioframe.overlap(bg, exclude, how="inner").empty
    np.testing.assert_allclose(bg["gc"], gc_of(genome, bg))
    positives = summit_windows(peaks, 100, genome.chrom_sizes)
    positives = positives[~overlaps(positives, exclude)]
    hist = np.bincount(np.floor(gc_of(genome, positives) * 10 + 1e-9).astype(int), minlength=10)
    got = np.bincount(np.floor(bg["gc"] * 10 + 1e-9).astype(int), minlength=10)
    assert np.abs(got - 64 * hist / hist.sum()).max() < 1  # GC 0.7 belongs to bin 7, as in [0.7, 0.8)
    random = background_windows(peaks, genome.chrom_sizes, 100, 64, seed=0)
    assert abs(bg["gc"].mean() - gc_of(genome, positives).mean()) < 0.02
    assert gc_of(genome, random).mean() < bg["gc"].mean() - 0.05
    assert bg.equals(bioframe.sort_bedframe(bg).reset_index(drop=True))
    assert bg.equals(gc_matched_background(peaks, genome, 100, 64, seed=0, bins=10, exclude=exclude))


def test_gc_matched_background_borrows_from_neighbouring_bins_with_a_warning(tmp_path):
    genome = block_genome(tmp_path, [0.3] * 9 + [1.0])
    peaks = pd.DataFrame({"chrom": ["c1"], "start": [9_000], "end": [10_000]})  # all of the GC-only block
    with pytest.warns(UserWarning, match="5 of 5 windows come from neighbouring GC bins"):
        bg = gc_matched_background(peaks, genome, window=200, n=5, seed=0, max_rounds=2)
    assert len(bg) == 5 and bioframe.overlap(bg, peaks, how="inner").empty


def test_gc_matched_background_rejects_n_rich_windows_and_raises_when_too_few(tmp_path):
    genome = block_genome(tmp_path, [0.5] * 4, n_block=2)
    peaks = pd.DataFrame({"chrom": ["c1"], "start": [400], "end": [600]})
    bg = gc_matched_background(peaks, genome, window=100, n=200, seed=0, bins=1, max_n_fraction=0.1)
    n_fraction = [np.mean(genome.tokens(*w) == 4) for w in bg[["chrom", "start", "end"]].values]
    assert len(bg) == 200 and max(n_fraction) <= 0.1
    with pytest.raises(ValueError, match="only .* background windows of 100 bp with at most 10% N"):
        gc_matched_background(peaks, genome, window=100, n=3_000, seed=0, bins=1)


def test_sample_background_draws_lengths_and_stays_off_blocked(gc_genome):
    genome, peaks = gc_genome
    lengths = np.array([60, 80, 100])
    bg = sample_background(genome, peaks, lengths, n=90, seed=0)
    assert len(bg) == 90 and set(bg["end"] - bg["start"]) == {60, 80, 100}
    assert bioframe.overlap(bg, peaks, how="inner").empty and not bg.duplicated().any()
    np.testing.assert_allclose(bg["gc"], gc_of(genome, bg))
    assert 0.4 < bg["gc"].mean() < 0.5  # uniform over the free blocks (GC 0.3-0.7, GC-rich ones part-blocked)
    matched = sample_background(genome, peaks, lengths, n=90, seed=0, target_gc=np.full(50, 0.62), bins=10)
    assert (np.floor(matched["gc"] * 10 + 1e-9) == 6).all()
    assert bg.equals(sample_background(genome, peaks, lengths, n=90, seed=0))


def test_read_labelled_windows_with_and_without_header(tmp_path):
    with_header = write(tmp_path, "#chrom\tstart\tend\tmark\tlabel\nchr1\t0\t10\tH3K4me3\t1\n", "w.bed")
    table = read_labelled_windows(with_header)
    assert list(table.columns) == ["chrom", "start", "end", "mark", "label"]
    assert table["label"].tolist() == [1]
    plain = read_labelled_windows(write(tmp_path, "chr1\t0\t10\nchr2\t5\t9\n", "p.bed"))
    assert plain[["chrom", "start", "end"]].values.tolist() == [["chr1", 0, 10], ["chr2", 5, 9]]
    with pytest.raises(ValueError, match=r"e\.bed: expected a BED of windows"):
        read_labelled_windows(write(tmp_path, "#chrom\tfrom\tto\n", "e.bed"))


def test_window_scores_average_the_overlapping_bins():
    track = pd.DataFrame({"chrom": ["chr1"] * 4, "start": [0, 10, 20, 30], "end": [10, 20, 30, 40],
                          "score": [0.1, 0.3, 0.5, 0.7]})
    windows = pd.DataFrame({"chrom": ["chr1", "chr1", "chr2"], "start": [5, 30, 0], "end": [25, 40, 10]})
    np.testing.assert_allclose(window_scores(track, windows), [0.3, 0.7, np.nan])


def test_promoters_sit_upstream_of_the_tss_on_either_strand_and_intergenic_windows_avoid_genes():
    from seq2epi.data.intervals import intergenic_windows, promoter_windows

    genes = pd.DataFrame({"chrom": ["c1", "c1", "c1"], "start": [5000, 20000, 500], "end": [8000, 24000, 900],
                          "strand": ["+", "-", "+"], "name": ["a", "b", "c"]})
    promoters = promoter_windows(genes, {"c1": 50_000}, upstream=1000)
    assert promoters[["start", "end", "name"]].values.tolist() == [[4000, 5000, "a"], [24000, 25000, "b"]]
    background = intergenic_windows(genes, {"c1": 50_000}, 1000, 20, seed=0, margin=2000)
    assert len(background) == 20 and not overlaps(background, genes.assign(
        start=genes["start"] - 2000, end=genes["end"] + 2000)).any()


def test_regions_table_reads_regions_or_leaves_the_whole_genome():
    table = regions_table(["chr1:0-100", "chr2:5-9"])
    assert table.values.tolist() == [["chr1", 0, 100], ["chr2", 5, 9]]
    assert regions_table([]) is None
