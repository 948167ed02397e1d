import shutil
from pathlib import Path

import bioframe
import numpy as np
import pandas as pd
import pytest

from seq2epi.data import prepare, sequence, simulate, variants

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture
def sheet(tmp_path):
    """A two-variety sample sheet over the tiny FASTA (the second variety is the same genome)."""
    shutil.copy(DATA / "tiny.fa", tmp_path / "tiny.fa")
    (tmp_path / "peaks.bed").write_text((DATA / "peaks.bed").read_text() + "chr3\t2\t8\tp4\t5\n")
    path = tmp_path / "samples.tsv"
    path.write_text("variety\tmark\tfasta\tpeaks\nv1\tH3K4me3\ttiny.fa\tpeaks.bed\n"
                    "v2\tH3K4me3\ttiny.fa\tpeaks.bed\nv1\tH3K27me3\ttiny.fa\tpeaks.bed\n")
    return path


def test_from_csv_carves_validation_from_train_and_keeps_test_whole(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("sequence,label\n" + "".join(f"{'ACGT' * (3 + i % 4)},{i % 2}\n" for i in range(20)))
    data = prepare.from_csv(train, DATA / "labeled.csv", val_fraction=0.25, seed=1)
    assert (data["split"] == "val").sum() == 5 and (data["split"] == "train").sum() == 15
    assert (data["split"] == "test").sum() == 3
    assert data["tokens"].dtype == np.uint8 and data["tokens"].shape == (23, 24)
    assert sequence.decode(data["tokens"][-2][: data["lengths"][-2]]) == "ACGTNNACGT"
    again = prepare.from_csv(train, DATA / "labeled.csv", val_fraction=0.25, seed=1)
    assert (again["split"] == data["split"]).all()


def test_from_csv_warns_about_sequences_shared_by_train_and_test(tmp_path):
    with pytest.warns(UserWarning, match="3 sequences of .*labeled.csv also occur in .*: train/test leakage"):
        prepare.from_csv(DATA / "labeled.csv", DATA / "labeled.csv", 0.34, seed=0)


def test_from_csv_warns_about_test_windows_overlapping_train(tmp_path):
    dna = "".join(np.random.default_rng(0).choice(list("ACGT"), 1000))
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("sequence,label\n" + "".join(f"{dna[i:i + 100]},{i // 100 % 2}\n"
                                                   for i in range(0, 500, 100)))  # both labels
    test.write_text(f"sequence,label\n{dna[450:550]},1\n{dna[700:800]},0\n")
    with pytest.warns(UserWarning, match="1 of 2 sequences of .*test.csv share a 31-bp stretch"):
        data = prepare.from_csv(train, test, 0.2, seed=0)
    assert data["overlapping"] == 1 and data["duplicates"] == 0


def test_max_sequences_cuts_training_and_max_test_sequences_the_test_file(tmp_path):
    rows = [(f"ACGTACGT{'A' * i}", i % 2) for i in range(30)]
    train, test = write_csv(tmp_path / "train.csv", rows), write_csv(tmp_path / "test.csv", rows[:20])
    with pytest.warns(UserWarning, match="also occur in"):
        data = prepare.from_csv(train, test, 0.2, seed=0, max_sequences=10)
    assert (data["split"] != "test").sum() == 10 and (data["split"] == "test").sum() == 20
    assert data["cuts"] == [f"{train} (max_sequences): 10 of 30 kept"]
    with pytest.warns(UserWarning, match="also occur in"):
        data = prepare.from_csv(train, test, 0.2, seed=0, max_test_sequences=5)
    assert (data["split"] != "test").sum() == 30 and (data["split"] == "test").sum() == 5
    assert data["cuts"] == [f"{test} (max_test_sequences): 5 of 20 kept"]


@pytest.mark.filterwarnings("ignore:.*positives are")  # 5 training windows are not balanced
def test_train_size_keeps_validation_whole_and_nests_the_training_windows(tmp_path):
    rng = np.random.default_rng(0)
    rows = [("".join(rng.choice(list("ACGT"), 40)), i % 2) for i in range(60)]
    train, test = write_csv(tmp_path / "train.csv", rows[:50]), write_csv(tmp_path / "test.csv", rows[50:])
    full = prepare.from_csv(train, test, 0.2, seed=0, val_split="random")
    val = set(full["table"].query("split == 'val'")["line"])
    kept = {}
    for n in (5, 20):
        data = prepare.from_csv(train, test, 0.2, seed=0, val_split="random", train_size=n)
        table = data["table"]
        assert set(table.query("split == 'val'")["line"]) == val
        kept[n] = set(table.query("split == 'train'")["line"])
        assert len(kept[n]) == n and (data["split"] == "test").sum() == 10
        assert data["cuts"] == [f"{train} (train_size): {n} of 40 training windows kept (validation whole)"]
    assert kept[5] < kept[20]
    with pytest.raises(ValueError, match="train_size 41 exceeds the 40 training windows"):
        prepare.from_csv(train, test, 0.2, seed=0, val_split="random", train_size=41)


def test_a_lower_case_copy_is_the_same_sequence(tmp_path):
    """Duplicates, 31-bp overlaps and validation groups compare sequences as the model reads them."""
    dna = "".join(np.random.default_rng(0).choice(list("ACGT"), 400))
    test = write_csv(tmp_path / "test.csv", [(dna[:100], 1), (dna[200:300], 0)])
    train = write_csv(tmp_path / "train.csv", [(dna[:100].lower(), 1), (dna[250:350].lower(), 0),
                                               (dna[300:340].replace("A", "a"), 1), (dna[310:360], 0)])
    with pytest.warns(UserWarning) as caught:
        data = prepare.from_csv(train, test, 0.5, seed=0)
    assert data["duplicates"] == 1 and data["overlapping"] == 2
    assert [str(w.message).split(": ")[-1] for w in caught[:2]] == ["train/test leakage",
                                                                    "overlapping windows, partial leakage"]
    val = data["split"][:4] == "val"
    assert val[1] == val[2] == val[3]  # one group: dna[250:350] overlaps the other two


def test_sequences_shorter_than_the_largest_kmer_are_refused_naming_file_and_line(tmp_path):
    train = write_csv(tmp_path / "train.csv", [("ACGTACGTACGT", 1), ("GGGGCCCCAAAA", 0)])
    with pytest.raises(ValueError, match=r"short\.csv line 4: its sequence of 6 bp is shorter than the "
                                         r"largest k-mer \(9 bp\)"):
        prepare.from_csv(train, DATA / "short.csv", 0.0, seed=0, min_length=9)
    with pytest.raises(ValueError, match=r"crop_length 6 bp is shorter than the largest k-mer \(9 bp\)"):
        prepare.from_csv(train, train, 0.0, seed=0, crop_length=6, min_length=9)


def test_from_genome_builds_positives_negatives_and_a_chromosome_split(sheet):
    data = prepare.from_genome(sheet, "H3K4me3", window=6, negatives_per_positive=1.0, val_chroms=["chr2"],
                               test_chroms=["chr3"], seed=0, max_n_fraction=1.0)  # tiny.fa is N-rich
    table = data["table"]
    assert set(table["variety"]) == {"v1", "v2"}
    assert (table.groupby("variety")["label"].sum() == 4).all()
    assert data["tokens"].shape == (len(table), 6) and (data["lengths"] == 6).all()
    assert set(table.loc[table["chrom"] == "chr2", "split"]) == {"val"}
    first = table.iloc[0]
    genome = sequence.Genome(sheet.parent / "tiny.fa")
    expected = genome.fetch(first.chrom, first.start, first.end).replace("R", "N")
    assert sequence.decode(data["tokens"][0]) == expected


def test_from_genome_max_sequences_leaves_test_whole_unless_asked(sheet):
    args = (sheet, "H3K4me3", 6, 1.0, ["chr2"], ["chr3"], 0)
    data = prepare.from_genome(*args, max_sequences=1, max_n_fraction=1.0)
    assert data["table"]["split"].value_counts().to_dict() == {"train": 1, "val": 1, "test": 2}
    assert data["cuts"] == ["train windows (max_sequences): 1 of 9 kept",
                            "val windows (max_sequences): 1 of 5 kept"]
    data = prepare.from_genome(*args, max_n_fraction=1.0, max_test_sequences=1)
    assert data["table"]["split"].value_counts().to_dict() == {"train": 9, "val": 5, "test": 1}
    with pytest.raises(ValueError, match=r"window 6 bp is shorter than the largest k-mer \(9 bp\)"):
        prepare.from_genome(*args, min_length=9)


def test_from_genome_errors_name_the_sheet_and_what_is_missing(sheet, tmp_path):
    with pytest.raises(ValueError, match="no sample of mark 'H3K9ac'; its marks are"):
        prepare.from_genome(sheet, "H3K9ac", 6, 1.0, ["chr2"], ["chr3"], 0)
    with pytest.raises(ValueError, match=r"held-out chromosome\(s\) \['chr9'\] are not in"):
        prepare.from_genome(sheet, "H3K4me3", 6, 1.0, ["chr9"], ["chr3"], 0)
    with pytest.raises(ValueError, match="needs val_chroms or val_varieties, and test_chroms"):
        prepare.from_genome(sheet, "H3K4me3", 6, 1.0, [], [], 0)
    bad = tmp_path / "bad.tsv"
    bad.write_text("variety\tfasta\n")
    with pytest.raises(ValueError, match="bad.tsv: sample sheet lacks column"):
        prepare.read_sample_sheet(bad)


def write_csv(path, rows):
    path.write_text("sequence,label\n" + "".join(f"{seq},{label}\n" for seq, label in rows))
    return path


def test_from_csv_reports_label_balance_and_warns_when_test_differs(tmp_path):
    train = write_csv(tmp_path / "train.csv", [(f"ACGT{'A' * i}", i % 2) for i in range(20)])
    test = write_csv(tmp_path / "test.csv", [(f"GGCC{'T' * i}", int(i < 8)) for i in range(10)])
    with pytest.warns(UserWarning, match=r"test.csv: label positives are 80.0% of test but 50.0% of train"):
        data = prepare.from_csv(train, test, val_fraction=0.0, seed=0)
    balance = data["balance"].set_index("split")
    assert balance.loc["train", ["n", "positives"]].tolist() == [20, 10]
    assert balance.loc["test", "fraction"] == pytest.approx(0.8) and balance.loc["val", "n"] == 0
    assert data["duplicates"] == 0


def test_from_csv_balanced_files_do_not_warn(tmp_path):
    rows = [(f"ACGT{'A' * i}", i % 2) for i in range(20)]
    train, test = write_csv(tmp_path / "train.csv", rows), write_csv(tmp_path / "test.csv", rows[:10])
    with pytest.warns(UserWarning) as record:
        data = prepare.from_csv(train, test, val_fraction=0.2, seed=0)
    assert [str(w.message) for w in record] == [f"10 sequences of {test} also occur in {train}: train/test "
                                                "leakage"]
    assert data["duplicates"] == 10


@pytest.fixture
def marks_csvs(tmp_path):
    w = lambda name, rows: write_csv(tmp_path / name, rows)  # noqa: E731
    train = {"K4": w("k4_train.csv", [("AAAAC", 1), ("CCCCG", 0), ("GGGGT", 1)]),
             "K27": w("k27_train.csv", [("CCCCG", 1), ("TTTTA", 0), ("TTTTA", 0)])}
    test = {"K4": w("k4_test.csv", [("ACACA", 1), ("GTGTG", 0)]),
            "K27": w("k27_test.csv", [("GTGTG", 1), ("GGGGT", 0)])}
    return train, test


def test_from_csv_multi_merges_sequences_and_leaves_unlabelled_marks_nan(marks_csvs):
    train, test = marks_csvs
    with pytest.warns(UserWarning, match="1 sequences of the test CSV files also occur in the train CSV"):
        data = prepare.from_csv_multi(train, test, val_fraction=0.0, seed=0)
    assert data["marks"] == ["K4", "K27"]
    seqs = [sequence.decode(t) for t in data["tokens"]]
    assert seqs == ["AAAAC", "CCCCG", "TTTTA", "ACACA", "GTGTG", "GGGGT"]  # GGGGT is kept in test only
    np.testing.assert_array_equal(data["labels"], np.array(
        [[1, np.nan], [0, 1], [np.nan, 0], [1, np.nan], [0, 1], [np.nan, 0]], np.float32))
    assert data["labels"].dtype == np.float32 and data["tokens"].shape == (6, 5)
    assert data["split"].tolist() == ["train"] * 3 + ["test"] * 3
    assert data["table"]["n_marks"].tolist() == [1, 2, 1, 1, 2, 1]
    balance = data["balance"].set_index(["mark", "split"])
    assert balance.loc[("K27", "train"), ["n", "positives"]].tolist() == [2, 1]


def test_from_csv_multi_errors(marks_csvs, tmp_path):
    train, test = marks_csvs
    with pytest.raises(ValueError, match="must name the same marks"):
        prepare.from_csv_multi(train, {"K4": test["K4"]}, 0.0, 0)
    train["K4"] = write_csv(tmp_path / "bad.csv", [("AAAAC", 1), ("AAAAC", 0)])
    with pytest.raises(ValueError, match=r"bad.csv line 3: the sequence is labelled both 0 and 1 for K4"):
        prepare.from_csv_multi(train, test, 0.0, 0)


@pytest.fixture
def gc_sheet(tmp_path):
    """Three chromosomes of 1 kb blocks cycling GC 0.3..0.7; peaks in GC-rich blocks; an exclusion BED."""
    rng = np.random.default_rng(0)
    fasta, peaks = [], []
    for chrom, n_blocks in (("c1", 40), ("c2", 20), ("c3", 20)):
        blocks = []
        for b in range(n_blocks):
            gc = 0.3 + 0.1 * (b % 5)
            p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
            blocks.append("".join(rng.choice(list("ACGT"), 1000, p=p)))
            if b % 5 >= 3:
                peaks.append(f"{chrom}\t{1000 * b + 300}\t{1000 * b + 500}\n")
        fasta.append(f">{chrom}\n{''.join(blocks)}\n")
    (tmp_path / "g.fa").write_text("".join(fasta))
    (tmp_path / "peaks.bed").write_text("".join(peaks))
    (tmp_path / "exclude.bed").write_text("#chrom\tstart\tend\tmark\nc1\t3000\t9000\tK4\nc2\t0\t500\tK4\n")
    path = tmp_path / "samples.tsv"
    path.write_text("variety\tmark\tfasta\tpeaks\nv1\tK4\tg.fa\tpeaks.bed\n")
    return path


def test_from_genome_gc_matched_background_matches_positive_gc(gc_sheet):
    args = dict(mark="K4", window=100, negatives_per_positive=2.0, val_chroms=["c2"], test_chroms=["c3"],
                seed=0)
    matched = prepare.from_genome(gc_sheet, background="gc_matched", **args)
    random = prepare.from_genome(gc_sheet, **args)
    for data in (matched, random):
        assert (data["labels"] == 0).sum() == 2 * (data["labels"] == 1).sum() == 64
    gc = {name: sequence.gc_content(d["tokens"], d["lengths"]) for name, d in (("m", matched), ("r", random))}
    positive_gc = gc["m"][matched["labels"] == 1].mean()
    assert abs(gc["m"][matched["labels"] == 0].mean() - positive_gc) < 0.02
    assert gc["r"][random["labels"] == 0].mean() < positive_gc - 0.05
    assert set(matched["balance"]["mark"]) == {"K4"} and matched["excluded"] == 0
    with pytest.raises(ValueError, match="background must be 'random' or 'gc_matched', got 'shuffled'"):
        prepare.from_genome(gc_sheet, background="shuffled", **args)


@pytest.mark.parametrize("background", ["random", "gc_matched"])
def test_from_genome_exclude_bed_keeps_its_windows_out_of_both_classes(gc_sheet, background):
    exclude = gc_sheet.parent / "exclude.bed"
    data = prepare.from_genome(gc_sheet, "K4", 100, 2.0, ["c2"], ["c3"], seed=0, background=background,
                               exclude_bed=exclude)
    spans = pd.DataFrame({"chrom": ["c1", "c2"], "start": [3000, 0], "end": [9000, 500]})
    assert bioframe.overlap(data["table"], spans, how="inner").empty
    assert data["excluded"] == 3 and (data["labels"] == 1).sum() == 29 and (data["labels"] == 0).sum() == 58


def test_from_genome_inline_samples_labelled_peaks_and_held_out_regions(gc_sheet):
    """The rice-subset case: peaks from a BED of labelled windows, one chromosome split into regions."""
    labelled = ["#chrom\tstart\tend\tmark\tsplit\tlabel\n"]
    for line in (gc_sheet.parent / "peaks.bed").read_text().splitlines():
        chrom, start, end = line.split("\t")
        labelled.append(f"{chrom}\t{start}\t{end}\tK4\ttrain\t1\n")
        labelled.append(f"{chrom}\t{end}\t{int(end) + 200}\tK4\ttrain\t0\n")
        labelled.append(f"{chrom}\t{start}\t{end}\tK27\ttrain\t0\n")
    (gc_sheet.parent / "labelled.bed").write_text("".join(labelled))
    samples = prepare.sample_rows([{"variety": "v1", "mark": "K4", "fasta": "g.fa", "peaks": "labelled.bed"}],
                                  gc_sheet.parent)
    data = prepare.from_genome(samples, "K4", 100, 1.0, ["c1:0-10000"], ["c1:30000-40000", "c3"], seed=0,
                               background="gc_matched")
    table = data["table"]
    assert (table["label"] == 1).sum() == 32  # the K4 label-1 rows only
    centre = (table["start"] + table["end"]) // 2
    on_c1 = table["chrom"] == "c1"
    assert set(table.loc[on_c1 & (centre < 10000), "split"]) == {"val"}
    assert set(table.loc[on_c1 & (centre >= 30000), "split"]) == {"test"}
    assert set(table.loc[table["chrom"] == "c2", "split"]) == {"train"}
    with pytest.raises(ValueError, match="the sample sheet has no sample of mark 'K27'"):
        prepare.from_genome(samples, "K27", 100, 1.0, ["c2"], ["c3"], seed=0)
    with pytest.raises(ValueError, match="the samples parameter: sample sheet lacks column"):
        prepare.sample_rows([{"variety": "v1", "fasta": "g.fa"}], gc_sheet.parent)


def test_centre_crop_keeps_the_middle():
    assert prepare.centre_crop(["AACCGGTT", "ACG"], 4) == ["CCGG", "ACG"]
    assert prepare.centre_crop(["AACCGGTTA"], 4) == ["CCGG"]
    assert prepare.centre_crop(["AACCGGTT"], 0) == ["AACCGGTT"]


def test_excluded_sequences_stay_out_of_training(tmp_path):
    genome_windows = pd.DataFrame({"chrom": ["chr1"], "start": [20], "end": [30]})
    held = prepare.sequences_in(genome_windows, DATA / "tiny.fa")
    assert held == {"ACGTTTGGCC"}
    train = tmp_path / "train.csv"
    train.write_text("sequence,label\nACGTTTGGCC,1\nACGTACGTAC,0\nGGGGCCCCAA,1\nAAAACCCCGG,0\n")
    with pytest.warns(UserWarning, match="1 sequences of .*train.csv are held out of training"):
        data = prepare.from_csv(train, DATA / "labeled.csv", 0.0, 0, exclude=held, crop_length=6)
    assert (data["split"] != "test").sum() == 3 and data["tokens"].shape[1] == 6


def test_background_negatives_join_training_only_with_training_lengths_and_gc(gc_sheet, tmp_path):
    train = tmp_path / "train.csv"
    rng = np.random.default_rng(0)
    rows = [("".join(rng.choice(list("ACGT"), 40 + 20 * (i % 3), p=[0.2, 0.3, 0.3, 0.2] if i % 2 else
                                [0.3, 0.2, 0.2, 0.3])), i % 2) for i in range(40)]
    train.write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in rows))
    windows = pd.DataFrame({"chrom": ["c1"], "start": [5_000], "end": [5_100]})
    blocked = prepare.blocked_regions(windows, 900, ["c2", "c3:0-10000"])
    assert blocked.values.tolist() == [["c2", 0, 2**62], ["c3", 0, 10_000], ["c1", 4_100, 6_000]]
    spec = prepare.Background(gc_sheet.parent / "g.fa", 30, True, blocked)
    plain = prepare.from_csv(train, DATA / "labeled.csv", 0.25, 0)
    data = prepare.from_csv(train, DATA / "labeled.csv", 0.25, 0, background=spec)
    table, bg = data["table"], data["background"]
    added = table["source"] == str(spec.fasta)
    assert added.sum() == 30 and (table.loc[added, "split"] == "train").all()
    assert (data["labels"][added.to_numpy()] == 0).all()
    assert (data["split"][~added.to_numpy()] == plain["split"]).all()  # validation and test untouched
    assert set(bg["end"] - bg["start"]) <= {40, 60, 80} and "c2" not in set(bg["chrom"])
    assert bioframe.overlap(bg, blocked, how="inner").empty
    positive_gc = sequence.gc_content(plain["tokens"], plain["lengths"])[(plain["split"] == "train")
                                                                         & (plain["labels"] == 1)]
    assert abs(bg["gc"].mean() - positive_gc.mean()) < 0.05


# ---- varieties given as the reference plus a sample of a VCF ----


@pytest.fixture
def vcf_sheet(tmp_path):
    """v1 as its FASTA, s1 and s2 as tiny.fa plus their variants in tiny.vcf (indels included)."""
    for name in ("tiny.fa", "tiny.vcf", "peaks.bed"):
        shutil.copy(DATA / name, tmp_path / name)
    path = tmp_path / "samples.tsv"
    path.write_text("variety\tmark\tfasta\treference\tvcf\tvcf_sample\tpeaks\n"
                    "v1\tK4\ttiny.fa\t\t\t\tpeaks.bed\n"
                    "s1\tK4\t\ttiny.fa\ttiny.vcf\ts1\tpeaks.bed\n"
                    "s2\tK4\t\ttiny.fa\ttiny.vcf\ts2\tpeaks.bed\n")
    return path


def test_from_genome_builds_vcf_varieties_in_reference_coordinates(vcf_sheet):
    with pytest.warns(UserWarning, match="skipped 1 variant call"):
        data = prepare.from_genome(vcf_sheet, "K4", 6, 1.0, ["chr2"], [], seed=0, max_n_fraction=1.0,
                                   test_varieties=["s2"], het="alt")
    table = data["table"]
    assert list(dict.fromkeys(table["variety"])) == ["v1", "s1", "s2"]
    first = {v: t.iloc[0] for v, t in table.groupby("variety")}
    assert first["v1"][["chrom", "start", "end"]].tolist() == first["s2"][["chrom", "start", "end"]].tolist()
    genome = sequence.Genome(vcf_sheet.parent / "tiny.fa")
    loaded = variants.Variants.load(vcf_sheet.parent / "tiny.vcf", genome, samples=["s2"])
    rows = np.flatnonzero(table["variety"] == "s2")
    expected = variants.variety_tokens_at(genome, loaded, "s2", table.iloc[rows], 6)
    for i, want in zip(rows, expected, strict=True):
        np.testing.assert_array_equal(data["tokens"][i, : data["lengths"][i]], want)
    assert set(table.loc[table["variety"] == "s2", "split"]) == {"test"}
    assert set(table.loc[table["variety"] != "s2", "split"]) == {"train", "val"}
    by = table.groupby(["split", "held_out_by"]).size().to_dict()
    assert set(by) == {("train", ""), ("val", "region"), ("test", "variety")}


def test_sample_sheet_vcf_rows_bad_input(vcf_sheet):
    sheet = vcf_sheet.read_text()
    bad = vcf_sheet.with_name("bad.tsv")
    bad.write_text(sheet.replace("tiny.vcf\ts2", "tiny.vcf\ts9"))
    with pytest.raises(ValueError, match=r"bad.tsv row 3 \(variety s2, mark K4\): vcf_sample 's9' is not a "
                                         r"sample of the VCF .*tiny.vcf, which has s1, s2, s3, s4"):
        prepare.read_sample_sheet(bad)
    bad.write_text(sheet.replace("s1\tK4\t\t", "s1\tK4\ttiny.fa\t"))
    with pytest.raises(ValueError, match=r"bad.tsv row 2 \(variety s1, mark K4\): gives both fasta .* vcf"):
        prepare.read_sample_sheet(bad)
    entry = {"variety": "s1", "mark": "K4", "reference": "tiny.fa", "vcf": "tiny.vcf", "peaks": "peaks.bed"}
    with pytest.raises(ValueError, match=r"the samples parameter entry 1 .*: gives a vcf but no vcf_sample"):
        prepare.sample_rows([entry], vcf_sheet.parent)
    with pytest.raises(ValueError, match=r"test_varieties \['s9'\] are not varieties"):
        prepare.from_genome(vcf_sheet, "K4", 6, 1.0, ["chr2"], [], seed=0, test_varieties=["s9"])
    with pytest.raises(ValueError, match=r"varieties \['s1'\] are in both"):
        prepare.from_genome(vcf_sheet, "K4", 6, 1.0, [], [], seed=0, val_varieties=["s1"],
                            test_varieties=["s1"])
    with pytest.raises(ValueError, match="needs val_chroms or val_varieties"):
        prepare.from_genome(vcf_sheet, "K4", 6, 1.0, [], ["chr2"], seed=0)


def test_the_demos_vcf_varieties_give_the_windows_of_their_fasta(tmp_path):
    """SNV varieties: reference + VCF sample and the variety's own FASTA are the same windows."""
    built = {}
    for sheet in ("fasta", "vcf"):
        path = simulate.simulate_demo(tmp_path / sheet, n_chroms=2, chrom_len=20_000, n_varieties=3,
                                      marks=("H3K4me3",), sheet=sheet)
        built[sheet] = prepare.from_genome(path, "H3K4me3", 100, 1.0, ["chr02"], [], seed=0,
                                           test_varieties=["V3"])
    np.testing.assert_array_equal(built["fasta"]["tokens"], built["vcf"]["tokens"])
    pd.testing.assert_frame_equal(built["fasta"]["table"], built["vcf"]["table"])
    assert set(built["vcf"]["table"].query("variety == 'V3'")["split"]) == {"test"}


# --- which test windows overlap training windows, recorded per window (issue 12)

def test_the_table_marks_the_test_windows_that_overlap_train(tmp_path, marks_csvs):
    dna = "".join(np.random.default_rng(0).choice(list("ACGT"), 1000))
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("sequence,label\n" + "".join(f"{dna[i:i + 100]},{i // 100 % 2}\n"
                                                   for i in range(0, 500, 100)))  # both labels
    rc = sequence.decode(sequence.reverse_complement(sequence.encode(dna[150:250])))
    test.write_text(f"sequence,label\n{dna[450:550]},1\n{dna[700:800]},0\n{rc},1\n")
    with pytest.warns(UserWarning, match="2 of 3 sequences"):
        data = prepare.from_csv(train, test, 0.2, seed=0)
    assert data["table"]["overlaps_train"].tolist() == [False] * 5 + [True, False, True]
    with pytest.warns(UserWarning, match="also occur in the train CSV"):
        multi = prepare.from_csv_multi(*marks_csvs, val_fraction=0.0, seed=0)
    assert not multi["table"]["overlaps_train"].any()  # 5-bp windows share no 31-mer
    assert prepare.overlaps_train([dna[:100]], [dna[69:169], dna[500:600]]).tolist() == [True, False]
    assert prepare.overlaps_train([dna[:100]], [dna[70:170]]).tolist() == [False]  # 30 bp shared
    assert prepare.overlaps_train([dna[:100]], [dna[70:170], dna[69:169]]).tolist() == [True, True]  # via


def test_a_one_class_training_csv_is_refused_naming_the_file(tmp_path):
    rows = [f"{''.join('ACGT'[(i * 7 + j * j) % 4] for j in range(40))},1" for i in range(12)]
    (tmp_path / "ones.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"ones.csv: its 12 training sequence\(s\) of label are all labelled "
                                         r"1; a classifier needs labels 0 and 1"):
        prepare.from_csv(tmp_path / "ones.csv", DATA / "labeled.csv", 0.25, seed=0, val_split="random")


def test_a_one_class_validation_split_is_warned_of():
    balance = prepare.label_balance(np.array([0, 1, 0, 1, 1, 1]), np.array(["train"] * 4 + ["val"] * 2))
    with pytest.warns(UserWarning, match=r"x.csv: the 2 validation sequence\(s\) of m all carry label 1, "
                                         r"so no AUROC chooses the best epoch"):
        prepare.check_two_classes(balance.assign(mark="m"), {"m": "x.csv"})


def notebook_parameters(**values) -> dict:
    """01's declared parameters (its template's defaults) with `values` set."""
    from seq2epi.lab.parameters import declared_parameters

    return {**declared_parameters(DATA.parents[1] / "notebooks" / "01_data_prep.ipynb"), **values}


def test_from_parameters_reads_the_csv_files_as_from_csv_does(tmp_path):
    params = notebook_parameters(train_csv="labeled.csv", test_csv="labeled_lower.csv", val_fraction=0.34,
                                 kmers=[3], seed=2)
    prepared = prepare.from_parameters(params, DATA, tmp_path)
    direct = prepare.from_csv(DATA / "labeled.csv", DATA / "labeled_lower.csv", 0.34, 2, min_length=3)
    np.testing.assert_array_equal(prepared["tokens"], direct["tokens"])
    np.testing.assert_array_equal(prepared["split"], direct["split"])


def test_from_parameters_writes_the_sheet_of_a_genome_experiment(sheet, tmp_path):
    params = notebook_parameters(input="genome", sample_sheet=sheet.name, window=6, kmers=[3],
                                 val_chroms=["chr2"], test_chroms=["chr3"], max_n_fraction=1.0)
    prepared = prepare.from_parameters(params, sheet.parent, tmp_path)
    written = pd.read_csv(tmp_path / "samples.tsv", sep="\t")
    assert list(written["variety"]) == list(prepared["samples"]["variety"]) == ["v1", "v2", "v1"]


@pytest.mark.parametrize(("values", "message"), [
    ({"input": "bam"}, "input must be csv, genome, genomewide, genes or simulate, not 'bam'"),
    ({"input": "genome", "train_size": 10}, "train_size and background_n are for a single-mark training CSV"),
])
def test_from_parameters_refuses_what_it_cannot_prepare(tmp_path, values, message):
    with pytest.raises(ValueError, match=message):
        prepare.from_parameters(notebook_parameters(**values), DATA, tmp_path)


def test_save_prepared_writes_the_dataset_and_its_windows(tmp_path):
    from seq2epi.data import datasets

    params = notebook_parameters(train_csv="labeled.csv", test_csv="labeled.csv", val_fraction=0.34,
                                 kmers=[3])
    prepared = prepare.from_parameters(params, DATA, tmp_path)
    prepare.save_prepared(prepared, params, tmp_path)
    saved = datasets.load_dataset(tmp_path / "dataset.npz")
    assert saved["marks"] == ["H3K4me3"] and saved["input"] == "csv"
    np.testing.assert_array_equal(saved["split"], prepared["split"])
    assert len(pd.read_csv(tmp_path / "windows.tsv.gz", sep="\t")) == len(prepared["split"])
    assert not (tmp_path / "background.bed").exists() and not (tmp_path / "genome.npz").exists()


@pytest.fixture
def labelled_genome(tmp_path):
    """Two random chromosomes of 40 kb; states 1-3 in 1-kb segments over chrA and chrB up to 36 kb (the rest
    unlabelled), a few peaks, and a gene table."""
    rng = np.random.default_rng(0)
    fasta = tmp_path / "g.fa"
    fasta.write_text("".join(f">{c}\n{''.join(rng.choice(list('ACGT'), 40_000))}\n"
                             for c in ("chrA", "chrB")))
    (tmp_path / "states.bed").write_text("".join(f"{c}\t{s}\t{s + 1000}\t{1 + (s // 1000) % 3}\n"
                                                 for c in ("chrA", "chrB") for s in range(0, 36_000, 1000)))
    (tmp_path / "peaks.bed").write_text("chrA\t5000\t5400\tleaf,flower\nchrB\t9000\t9300\tflower\n")
    rows = ["gene_id\tchrom\tstart\tend\tstrand\tK4"] + [f"g{i}\tchrA\t{s}\t{s + 900}\t{'+-'[i % 2]}\t{i}"
                                                         for i, s in enumerate(range(2000, 38_000, 2000))]
    (tmp_path / "genes.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_from_genomewide_tiles_held_out_blocks_and_draws_training_windows_elsewhere(labelled_genome):
    d = labelled_genome
    prepared = prepare.from_genomewide(d / "g.fa", 1000, ["chrB:0-20000"], ["chrB:20000-36000"], seed=0,
                                       segmentation=d / "states.bed",
                                       label_map={"one": [1], "two_three": [2, 3]},
                                       peaks={"leaf": (d / "peaks.bed", "leaf")}, centre_bin=200,
                                       eval_stride=500, baseline_windows=300, min_length=9)
    table, labels = prepared["table"], prepared["labels"]
    assert prepared["marks"] == ["one", "two_three", "leaf"] and labels.shape == (len(table), 3)
    assert prepared["tokens"].shape == (len(table), 1000) and (prepared["lengths"] == 1000).all()
    train, val, test = (table[table["split"] == s] for s in ("train", "val", "test"))
    assert len(train) == 300 and (train["chrom"] == "chrA").all() and train["end"].max() <= 36_000
    assert (val["start"] >= 0).all() and (val["end"] <= 20_000).all() and (val["chrom"] == "chrB").all()
    assert (test["start"] >= 20_000).all() and (test["end"] <= 36_000).all()
    both = labels[:, :2]
    assert np.isin(both, [0, 1]).all() and (both.sum(axis=1) >= 1).all()  # a segmentation: a state each
    assert np.nansum(labels[prepared["split"] == "train", 2]) > 0  # a few windows sit on the leaf peak
    tokens, labelled, blocks = prepared["genome"]
    assert set(tokens) == {"chrA", "chrB"} and set(blocks["split"]) == {"train", "val", "test"}
    with pytest.raises(ValueError, match="train_genome_bp 40,000 is more than the 36,000 bp"):
        prepare.from_genomewide(d / "g.fa", 1000, ["chrB:0-20000"], ["chrB:20000-36000"], seed=0,
                                segmentation=d / "states.bed", label_map={"one": [1]}, train_genome_bp=40_000)


def test_from_genes_reads_each_tss_on_its_strand_and_holds_genes_out_by_block(labelled_genome):
    d = labelled_genome
    prepared = prepare.from_genes(d / "g.fa", d / "genes.tsv", ["K4"], 300, 200, ["chrA:14000-24000"],
                                  ["chrA:24000-40000"], min_length=9)
    table = prepared["table"]
    assert prepared["tokens"].shape == (len(table), 500) and prepared["marks"] == ["K4"]
    np.testing.assert_allclose(prepared["labels"][:, 0], np.log1p(table["K4"]), rtol=1e-6)
    tss = np.where(table["strand"] == "+", table["start"], table["end"] - 1)
    split = table["split"].to_numpy()
    assert (tss[split == "val"] >= 14_000).all() and (tss[split == "val"] < 24_000).all()
    assert (tss[split == "test"] >= 24_000).all() and (tss[split == "train"] < 14_000).all()
    assert any("TSS window reaches a held-out block" in cut for cut in prepared["cuts"]) or \
        (tss[split == "train"] + 300 <= 14_000).all()
