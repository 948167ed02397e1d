import shutil
from pathlib import Path

import numpy as np
import pytest

from seq2epi import prepare, sequence

DATA = Path(__file__).parent / "data"


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


def test_max_sequences_subsamples_each_file(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("sequence,label\n" + "".join(f"ACGTACGT{'A' * i},{i % 2}\n" for i in range(30)))
    data = prepare.from_csv(train, DATA / "labeled.csv", 0.2, seed=0, max_sequences=10)
    assert len(data["labels"]) == 13


def test_from_genome_builds_positives_negatives_and_a_chromosome_split(sheet):
    data = prepare.from_genome(sheet, "H3K4me3", window=6, negatives_per_positive=1.0, val_chroms=["chr2"],
                               test_chroms=["chr3"], seed=0)
    table = data["table"]
    assert set(table["variety"]) == {"v1", "v2"}
    assert (table.groupby("variety")["label"].sum() == 4).all()
    assert data["tokens"].shape == (len(table), 6) and (data["lengths"] == 6).all()
    assert set(table.loc[table["chrom"] == "chr2", "split"]) == {"val"}
    first = table.iloc[0]
    genome = sequence.Genome(sheet.parent / "tiny.fa")
    expected = genome.fetch(first.chrom, first.start, first.end).replace("R", "N")
    assert sequence.decode(data["tokens"][0]) == expected


def test_from_genome_errors_name_the_sheet_and_what_is_missing(sheet, tmp_path):
    with pytest.raises(ValueError, match="no sample of mark 'H3K9ac'; its marks are"):
        prepare.from_genome(sheet, "H3K9ac", 6, 1.0, ["chr2"], ["chr3"], 0)
    with pytest.raises(ValueError, match=r"held-out chromosome\(s\) \['chr9'\] are not in"):
        prepare.from_genome(sheet, "H3K4me3", 6, 1.0, ["chr9"], ["chr3"], 0)
    with pytest.raises(ValueError, match="needs val_chroms and test_chroms"):
        prepare.from_genome(sheet, "H3K4me3", 6, 1.0, [], [], 0)
    bad = tmp_path / "bad.tsv"
    bad.write_text("variety\tfasta\n")
    with pytest.raises(ValueError, match="bad.tsv: sample sheet lacks column"):
        prepare.read_sample_sheet(bad)
