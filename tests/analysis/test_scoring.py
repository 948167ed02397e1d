import gzip
import shutil
import sys
import warnings
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
import pysam
import pytest
import torch
import yaml
from conftest import RECORD_MARKS, RECORD_STRIDE, RECORD_WINDOW, make_record, make_toy_model

from seq2epi.analysis import calibrate, scoring
from seq2epi.data import datasets
from seq2epi.data.sequence import PAD, Genome, decode, encode
from seq2epi.data.variants import Variants, variety_sequence
from seq2epi.lab import records
from seq2epi.model import train
from seq2epi.model.predict import predict

DATA = Path(__file__).parents[1] / "data"
MARKS, WINDOW, STRIDE = RECORD_MARKS, RECORD_WINDOW, RECORD_STRIDE


def load(record, **kw):
    """The record's predictor (Record.predictor)."""
    return records.Record.find(record).predictor(**kw)


def gc(tokens, lengths=None):
    """A stand-in predictor: each window's fractions of G and of C over its bases, [n, 2]."""
    lengths = (tokens != PAD).sum(1) if lengths is None else lengths
    return np.stack([(tokens == 2).sum(1) / lengths, (tokens == 1).sum(1) / lengths], 1).astype(np.float32)


def fraction(seq: str, base: str) -> float:
    return seq.upper().count(base) / len(seq)


# ---- reading inputs ----

def test_fasta_plain_gzip_and_bgzip_read_alike(tmp_path):
    plain = list(scoring.read_fasta(DATA / "scoring.fa"))
    assert [e.id for e in plain] == ["a", "b", "c", "a", "short"]
    assert len(plain[1].sequence) == 61 and plain[3].sequence == "ttggccaaggttccaaggccgg"
    with open(DATA / "scoring.fa", "rb") as f, gzip.open(tmp_path / "s.fa.gz", "wb") as g:
        g.write(f.read())
    pysam.tabix_compress(str(DATA / "scoring.fa"), str(tmp_path / "s.fa.bgz"))
    assert list(scoring.read_fasta(tmp_path / "s.fa.gz")) == plain
    assert list(scoring.read_fasta(tmp_path / "s.fa.bgz")) == plain


def test_fasta_record_without_sequence_names_it(tmp_path):
    (tmp_path / "e.fa").write_text(">one\nACGT\n>two\n>three\nACGT\n")
    with pytest.raises(ValueError, match=r"e.fa record 'two' \(line 3\) has no sequence"):
        list(scoring.read_fasta(tmp_path / "e.fa"))


def test_duplicate_ids_are_kept_made_unique_and_warned():
    with pytest.warns(UserWarning, match=r"1 duplicate id.*record 4 'a' -> a_2"):
        ids = [e.id for e in scoring.read_sequences(DATA / "scoring.fa")]
    assert ids == ["a", "b", "c", "a_2", "short"]


def test_csv_with_ids_and_labels(tmp_path):
    entries = list(scoring.read_sequences(DATA / "scoring.csv"))
    assert [e.id for e in entries][:2] == ["p1", "p2"] and [e.label for e in entries] == [1, 1, 0, 1, 0, 0]
    (tmp_path / "bare.csv").write_text("Sequence\nACGTACGT\n")
    assert list(scoring.read_sequences(tmp_path / "bare.csv")) == [scoring.Entry("line2", "ACGTACGT", None)]


def test_csv_without_sequence_column_names_line_1(tmp_path):
    (tmp_path / "x.csv").write_text("id,seq\na,ACGT\n")
    with pytest.raises(ValueError, match=r"x.csv line 1: expected a column named sequence"):
        list(scoring.read_sequences(tmp_path / "x.csv"))


def test_bed_regions_of_a_fasta():
    genome = Genome(DATA / "tiny.fa")
    entries = list(scoring.read_sequences(DATA / "scoring.bed", DATA / "tiny.fa"))
    assert [e.id for e in entries] == ["first", "second", "third"] and [e.label for e in entries] == [1, 0, 1]
    assert entries[1].sequence == genome.fetch("chr1", 10, 50)
    with pytest.raises(ValueError, match="give the genome"):
        list(scoring.read_sequences(DATA / "scoring.bed"))


def test_bed_region_off_the_genome_names_the_line(tmp_path):
    (tmp_path / "r.bed").write_text("chr1\t0\t10\nchr9\t0\t10\n")
    with pytest.raises(ValueError, match=r"r.bed line 2: chromosome 'chr9' is not in the FASTA"):
        list(scoring.read_sequences(tmp_path / "r.bed", DATA / "tiny.fa"))


# ---- scoring sequences ----

def test_sequence_windows_cover_every_base():
    assert scoring.sequence_windows(12, 20, 5).tolist() == [0]
    assert scoring.sequence_windows(30, 20, 5).tolist() == [0, 5, 10]
    assert scoring.sequence_windows(33, 20, 5).tolist() == [0, 5, 10, 13]  # the last window ends at base 33


def score(entries, chunk=2048, per_window=False, min_length=5):
    parts = list(scoring.score_sequences(gc, entries, ["G", "C"], [0.3, 0.3], WINDOW, STRIDE, min_length,
                                         chunk=chunk, per_window=per_window))
    return (pd.concat([p[0] for p in parts], ignore_index=True),
            pd.concat([p[1] for p in parts], ignore_index=True) if per_window else None)


def test_tiled_sequences_report_max_and_mean_and_short_ones_are_padded():
    with pytest.warns(UserWarning, match="duplicate"):
        entries = list(scoring.read_sequences(DATA / "scoring.fa"))
    table, windows = score(entries, per_window=True)
    assert table["id"].tolist() == ["a", "b", "c", "a_2", "short"]
    b = entries[1].sequence
    starts = [0, 5, 10, 15, 20, 25, 30, 35, 40, 41]
    expected = [fraction(b[s : s + WINDOW], "G") for s in starts]
    row = table.iloc[1]
    assert row["windows"] == 10 and row["G"] == pytest.approx(max(expected), abs=1e-6)
    assert row["G_mean"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert row["G_call"] == int(max(expected) >= 0.3)
    assert windows[windows["id"] == "b"]["start"].tolist() == starts
    # a 22 bp sequence is tiled too; the 26 bp one is two windows plus one at its end
    assert table.iloc[0]["windows"] == 3 and windows[windows["id"] == "a"]["end"].tolist() == [20, 25, 26]
    assert table.iloc[3]["C"] == pytest.approx(max(fraction(entries[3].sequence[s : s + 20], "C")
                                                   for s in (0, 2)))


def test_only_n_and_too_short_sequences_score_empty():
    with pytest.warns(UserWarning, match="duplicate"):
        table, _ = score(scoring.read_sequences(DATA / "scoring.fa"))
    empty = table[table["id"].isin(["c", "short"])]
    assert (empty["windows"] == 0).all() and empty["G"].isna().all() and empty["G_call"].isna().all()


def test_batches_across_records_do_not_change_scores():
    entries = [scoring.Entry(f"s{i}", s) for i, s in enumerate(pd.read_csv(DATA / "scoring.csv")["sequence"])]
    one, _ = score(entries)
    small, _ = score(entries, chunk=3)
    pd.testing.assert_frame_equal(one, small)


def test_a_short_sequence_scores_as_alone_in_a_batch_of_long_ones(record):
    scorer = load(record)
    predictor = load(record, batch_size=4)
    entries = [scoring.Entry("long", "ACGTTTGGCCAAGGTTCCAAGGCCGGACGTACGTTTGG"),
               scoring.Entry("short", "GGCCAAGGTTCC")]
    table, = (t for t, _ in scoring.score_sequences(predictor, entries, scorer.marks, scorer.thresholds,
                                                     scorer.window, scorer.stride, scorer.min_length))
    alone = predict(scorer.model, encode("GGCCAAGGTTCC")[None])
    assert table.iloc[1][MARKS].to_numpy(float) == pytest.approx(alone[0], abs=1e-5)


# ---- the record ----

def test_a_record_without_spec_reads_it_from_its_files(tmp_path):
    record = make_record(tmp_path / "old", spec=False, input="csv", crop_length=16)
    assert load(record).window == 16  # the crop, not genome mode's window
    params = yaml.safe_load((record / "parameters.yaml").read_text())
    (record / "parameters.yaml").write_text(yaml.safe_dump(params | {"crop_length": 0}))
    (record / records.DATASET).unlink()
    with pytest.raises(FileNotFoundError, match="record old trained on whole csv sequences .crop_length 0.*"
                                                "dataset.npz, which is missing"):
        load(record)
    datasets.save_dataset(record / records.DATASET, np.zeros((3, 30)), [30, 24, 12], [1, 0, 1],
                          ["val", "train", "train"])
    scorer = load(record)
    assert scorer.window == 24 and scorer.thresholds.tolist() == [0.4, 0.6]  # the longest in training


def test_the_checkpoint_spec_wins_over_what_the_record_files_say_now(record):
    params = yaml.safe_load((record / "parameters.yaml").read_text())
    (record / "parameters.yaml").write_text(yaml.safe_dump(params | {"window": 1000, "predict_stride": 7}))
    (record / "metrics.json").unlink()
    torch_spec = records.Record.find(record).spec()
    assert (torch_spec["window"], torch_spec["predict_stride"]) == (WINDOW, STRIDE)
    scorer = load(record)
    assert (scorer.window, scorer.stride) == (WINDOW, STRIDE) and scorer.thresholds.tolist() == [0.4, 0.6]


def test_the_predictor_carries_the_record(record, tmp_path, monkeypatch):
    scorer = load(record)
    assert scorer.marks == MARKS and (scorer.window, scorer.stride) == (WINDOW, STRIDE)
    assert scorer.thresholds.tolist() == [0.4, 0.6] and scorer.temperature is None
    assert not scorer.model.training and scorer.record == "2026-01-01_toy"
    assert scorer(encode("ACGTTTGGCCAAGGTTCCAAGG")[None]).shape == (1, 2)
    for name in ("parameters", "notebooks"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    assert load("toy").record == "2026-01-01_toy"
    newer = make_record(tmp_path / "executed" / "2026-01-02_toy")
    assert load("toy").record == newer.name  # an experiment id means its newest record
    (newer / "FAILED").write_text("03_evaluate.ipynb failed\n")
    with pytest.raises(ValueError, match="2026-01-02_toy is of a run that did not finish"):
        load("toy")
    assert load(record.name).record == record.name  # an older record by its name


def test_a_window_override_is_checked_against_the_model(record):
    assert load(record, window=30).window == 30
    with pytest.raises(ValueError, match=r"record 2026-01-01_toy: a window of 4 bp is outside what its model "
                                         r"takes \(5 bp, its largest k-mer, to 5000 bp"):
        load(record, window=4)
    with pytest.raises(ValueError, match="a window of 5001 bp is outside"):
        load(record, window=5001)


def test_cuda_without_a_gpu_says_so(record, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for, but this machine has no CUDA GPU"):
        load(record, device="cuda")


def test_the_command_with_cuda_on_a_machine_without_it_says_so(record, tmp_path, monkeypatch, capsys):
    from seq2epi.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["predict", str(record), str(DATA / "scoring.fa"), "--out", str(tmp_path / "s.tsv"),
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "version" not in err and len(err.strip().splitlines()) == 1


def test_thresholds_and_temperatures_added_by_03_travel_in_the_checkpoint(record):
    train.update_spec(record / records.CHECKPOINT, thresholds=[0.3, 0.7], temperature=[2.0, 0.5])
    (record / "metrics.json").unlink()
    scorer = load(record)
    assert scorer.temperature.tolist() == [2.0, 0.5]
    moved = calibrate.apply_temperature(np.array([[0.3, 0.7]]), [2.0, 0.5])[0]
    assert scorer.thresholds == pytest.approx(moved)


def test_a_failed_record_one_without_thresholds_or_without_checkpoint_is_refused(record):
    (record / "FAILED").write_text("02_train.ipynb failed: CUDA out of memory\n")
    with pytest.raises(ValueError, match="did not finish .its FAILED file: 02_train.ipynb failed: CUDA"):
        load(record)
    (record / "FAILED").unlink()
    train.update_spec(record / records.CHECKPOINT, thresholds=None)
    (record / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="2026-01-01_toy has no validation-chosen thresholds: "
                                                "03_evaluate did not run"):
        scoring.predict_file(load(record), DATA / "scoring.csv", record / "out.tsv", progress=False)
    assert load(record).thresholds is None and not (record / "out.tsv").exists()  # a map needs none
    (record / records.CHECKPOINT).unlink()
    with pytest.raises(FileNotFoundError, match="has no checkpoint artifacts/checkpoints/best.pt"):
        load(record)


def test_a_checkpoint_of_another_model_version_names_the_missing_keys(tmp_path):
    state = make_toy_model(kmers=(5,), n_targets=2).state_dict()
    del state["pool.p"]
    record = make_record(tmp_path / "r", state=state)
    with pytest.raises(ValueError, match=r"from another version of the model: it lacks pool.p"):
        load(record)


def test_calibrated_record_reports_calibrated_probabilities_with_the_same_calls(record):
    raw = load(record)
    calibrate.save(record / "artifacts" / "checkpoints" / records.CALIBRATION.name, MARKS, [2.0, 0.5])
    scorer = load(record)
    tokens = encode("ACGTTTGGCCAAGGTTCCAAGGCCGG")[None]
    expected = calibrate.apply_temperature(raw(tokens), [2.0, 0.5])
    assert scorer(tokens) == pytest.approx(expected, abs=1e-6)
    moved = calibrate.apply_temperature(raw.thresholds[None], [2.0, 0.5])[0]
    assert scorer.thresholds == pytest.approx(moved)
    calls = scorer(tokens) >= scorer.thresholds
    assert (calls == (raw(tokens) >= raw.thresholds)).all()


def test_predict_file_writes_the_table_and_scores_a_labelled_csv(record, tmp_path):
    scorer = load(record)
    result = scoring.predict_file(scorer, DATA / "scoring.csv", tmp_path / "out.tsv",
                                  per_window=tmp_path / "windows.tsv.gz", progress=False)
    table = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert result["sequences"] == len(table) == 6
    assert list(table.columns[:5]) == ["id", "length", "n_fraction", "windows", "label"]
    calls = (table[MARKS].to_numpy() >= scorer.thresholds).astype(int)
    assert (table[[f"{m}_call" for m in MARKS]].to_numpy() == calls).all()
    assert len(pd.read_csv(tmp_path / "windows.tsv.gz", sep="\t")) == table["windows"].sum()
    metrics = result["metrics"]["H3K4me3"]
    low, high = metrics["ci95"]["auroc"]
    assert metrics["n"] == 6 and low <= metrics["auroc"] <= high


def test_predict_file_warns_of_sequences_it_cannot_score(record, tmp_path):
    (tmp_path / "n.fa").write_text(">ok\nACGTTTGGCCAAGGTTCCAAGG\n>gap\nNNNNNNNNNNNNNNNNNNNNNNNN\n")
    with pytest.warns(UserWarning, match=r"n.fa: 1 sequence\(s\) have no window to score .*: gap"):
        result = scoring.predict_file(load(record), tmp_path / "n.fa", tmp_path / "o.tsv",
                                      progress=False)
    assert result["unscored"] == 1 and not list(tmp_path.glob(".tmp-*"))


# ---- variants ----

def test_variant_type_and_centred_windows():
    kinds = [scoring.variant_type(r, a) for r, a in [("A", "C"), ("AC", "GT"), ("A", "AGG"), ("ACG", "A")]]
    assert kinds == ["SNV", "MNV", "insertion", "deletion"]
    assert scoring.centred_start(100, 101, 20) == 90 and scoring.centred_start(100, 103, 20) == 91
    assert scoring.track_windows(30, 31, 20, 5, 100) == (15, 4)  # windows 15, 20, 25, 30 hold base 30
    assert scoring.track_windows(3, 4, 20, 5, 100) == (0, 1)
    assert scoring.track_windows(98, 99, 20, 5, 100) == (80, 1)


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
    first = scoring.centred_start(start, end, WINDOW)
    windows = scoring.allele_windows(genome, chrom, start, end, ref, alt, first, 1, WINDOW, WINDOW)
    variety, _ = variety_sequence(genome, carrier, "x", chrom, first, genome.chrom_sizes[chrom])
    assert (windows[1, 0] == variety[:WINDOW]).all()
    reference = decode(genome.tokens(chrom, 0, genome.chrom_sizes[chrom]))  # R, Y read as N
    by_hand = (reference[first:start] + alt + reference[end:])[:WINDOW]
    assert decode(windows[1, 0]) == by_hand and decode(windows[0, 0]) == reference[first : first + WINDOW]


def load_scored(record, tmp_path, rows, **kw):
    vcf = write_vcf(tmp_path / "in.vcf", rows)
    scorer = load(record)
    counts = scoring.score_vcf(scorer, vcf, DATA / "tiny.fa", tmp_path / "v.tsv", progress=False, **kw)
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
        counts = scoring.score_vcf(load(record), vcf, DATA / "tiny.fa", tmp_path / "v.tsv",
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


def test_cli_predict_and_score_variants(record, tmp_path, capsys):
    from seq2epi.cli import main

    assert main(["predict", str(record), str(DATA / "scoring.csv"), "--out", str(tmp_path / "s.tsv"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "6 sequences" in out and "H3K4me3: AUROC" in out
    shutil.copy(DATA / "tiny.vcf", tmp_path / "t.vcf")
    assert main(["score-variants", str(record), "--vcf", str(tmp_path / "t.vcf"), "--fasta",
                 str(DATA / "tiny.fa"), "--out", str(tmp_path / "v.tsv"), "--quiet"]) == 0
    assert "8 records" in capsys.readouterr().out
    assert main(["predict", str(record), str(DATA / "scoring.bed"), "--out", str(tmp_path / "b.tsv")]) == 2
    assert "give the genome they lie on (--fasta)" in capsys.readouterr().err


@pytest.mark.slow
def test_the_notebook_stage_scores_sequences_and_variants_into_a_record(tmp_path, monkeypatch):
    from seq2epi.cli import main

    repo = Path(__file__).resolve().parents[2]
    for folder in ("notebooks", "parameters"):
        shutil.copytree(repo / folder, tmp_path / folder)
    model = make_record(tmp_path / "executed" / "2026-01-01_toy")
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    (tmp_path / "parameters" / "score_toy.yaml").write_text(yaml.safe_dump(
        {"data_dir": str(data), "score_record": model.name, "score_input": "scoring.csv",
         "score_fasta": "tiny.fa", "score_vcf": "tiny.vcf", "score_tiled": True, "score_logos": 2}))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "score_toy", "--stages", "06", "-q"]) == 0
    record = next(p for p in (tmp_path / "executed").iterdir() if p.name.endswith("score_toy"))
    assert len(pd.read_csv(record / "scores.tsv.gz", sep="\t")) == 6
    variants = pd.read_csv(record / "variants.tsv.gz", sep="\t")
    assert "tiled_diff" in variants and (record / "variants.vcf.gz.tbi").exists()
    for figure in ("score_distributions", "variant_differences", "variant_logos"):
        assert (record / "figures" / f"{figure}.png").exists(), figure


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
        scoring.check_out_vcf(tmp_path / "sub" / ".." / "in.vcf.gz", vcf)
    scoring.check_out_vcf(tmp_path / "out.vcf.bgz", vcf)
    assert not (tmp_path / "plain.vcf").exists()


def test_one_class_labels_say_why_there_are_no_metrics(record, tmp_path):
    rows = ["id,sequence,label", "a,ACGTTTGGCCAAGGTTCCAAGG,1", "b,GGCCAAGGTTCCAAGGTTAC,1"]
    (tmp_path / "one.csv").write_text("\n".join(rows) + "\n")
    result = scoring.predict_file(load(record), tmp_path / "one.csv", tmp_path / "o.tsv",
                                  progress=False)
    assert "metrics" not in result
    assert result["no_metrics"].endswith("one.csv: no metrics, as the labelled sequences scored all carry "
                                         "label 1; metrics need both 0 and 1.")


def test_predict_summary_counts_scored_and_unscored():
    assert scoring.predict_summary({"sequences": 9, "unscored": 0}) == "9 sequences scored"
    assert scoring.predict_summary({"sequences": 9, "unscored": 2}) == \
        "7 of 9 sequences scored (2 had no window to score and are left empty)"


def test_cli_names_a_bad_chrom_alias_and_prints_warnings_plainly(record, tmp_path, capsys):
    from seq2epi.cli import main

    args = ["score-variants", str(record), "--vcf", str(DATA / "tiny.vcf"), "--fasta", str(DATA / "tiny.fa"),
            "--out", str(tmp_path / "v.tsv"), "--quiet"]
    assert main(args + ["--chrom-alias", "1:chr1"]) == 2
    assert "seq2epi: chromosome alias '1:chr1' is not VCF=FASTA; expected pairs like 1=chr01,2=chr02." in \
        capsys.readouterr().err
    (tmp_path / "n.fa").write_text(">ok\nACGTTTGGCCAAGGTTCCAAGG\n>gap\nNNNNNNNNNNNNNNNNNNNNNNNN\n")
    with warnings.catch_warnings():  # shown as outside pytest, which records them instead
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: \
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
        assert main(["predict", str(record), str(tmp_path / "n.fa"), "--out", str(tmp_path / "s.tsv"),
                     "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "UserWarning: " in err and ".py:" not in err
    assert "1 of 2 sequences scored (1 had no window to score" in out
