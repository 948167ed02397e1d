"""FASTA, CSV and BED inputs into sequences: compression, ids made unique, labels, bad lines named."""

import gzip
from pathlib import Path

import pysam
import pytest

from seq2epi.data import readers
from seq2epi.data.sequence import Genome

DATA = Path(__file__).parents[1] / "data"


def test_fasta_plain_gzip_and_bgzip_read_alike(tmp_path):
    plain = list(readers.read_fasta(DATA / "scoring.fa"))
    assert [e.id for e in plain] == ["a", "b", "c", "a", "short"]
    assert len(plain[1].sequence) == 61 and plain[3].sequence == "ttggccaaggttccaaggccgg"
    with open(DATA / "scoring.fa", "rb") as f, gzip.open(tmp_path / "s.fa.gz", "wb") as g:
        g.write(f.read())
    pysam.tabix_compress(str(DATA / "scoring.fa"), str(tmp_path / "s.fa.bgz"))
    assert list(readers.read_fasta(tmp_path / "s.fa.gz")) == plain
    assert list(readers.read_fasta(tmp_path / "s.fa.bgz")) == plain


def test_fasta_record_without_sequence_names_it(tmp_path):
    (tmp_path / "e.fa").write_text(">one\nACGT\n>two\n>three\nACGT\n")
    with pytest.raises(ValueError, match=r"e.fa record 'two' \(line 3\) has no sequence"):
        list(readers.read_fasta(tmp_path / "e.fa"))


def test_duplicate_ids_are_kept_made_unique_and_warned():
    with pytest.warns(UserWarning, match=r"1 duplicate id.*record 4 'a' -> a_2"):
        ids = [e.id for e in readers.read_sequences(DATA / "scoring.fa")]
    assert ids == ["a", "b", "c", "a_2", "short"]


def test_csv_with_ids_and_labels(tmp_path):
    entries = list(readers.read_sequences(DATA / "scoring.csv"))
    assert [e.id for e in entries][:2] == ["p1", "p2"] and [e.label for e in entries] == [1, 1, 0, 1, 0, 0]
    (tmp_path / "bare.csv").write_text("Sequence\nACGTACGT\n")
    assert list(readers.read_sequences(tmp_path / "bare.csv")) == [readers.Entry("line2", "ACGTACGT", None)]


def test_csv_without_sequence_column_names_line_1(tmp_path):
    (tmp_path / "x.csv").write_text("id,seq\na,ACGT\n")
    with pytest.raises(ValueError, match=r"x.csv line 1: expected a column named sequence"):
        list(readers.read_sequences(tmp_path / "x.csv"))


def test_bed_regions_of_a_fasta():
    genome = Genome(DATA / "tiny.fa")
    entries = list(readers.read_sequences(DATA / "scoring.bed", DATA / "tiny.fa"))
    assert [e.id for e in entries] == ["first", "second", "third"] and [e.label for e in entries] == [1, 0, 1]
    assert entries[1].sequence == genome.fetch("chr1", 10, 50)
    with pytest.raises(ValueError, match="give the genome"):
        list(readers.read_sequences(DATA / "scoring.bed"))


def test_bed_region_off_the_genome_names_the_line(tmp_path):
    (tmp_path / "r.bed").write_text("chr1\t0\t10\nchr9\t0\t10\n")
    with pytest.raises(ValueError, match=r"r.bed line 2: chromosome 'chr9' is not in the FASTA"):
        list(readers.read_sequences(tmp_path / "r.bed", DATA / "tiny.fa"))

