import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from seq2epi.data.sequence import (
    N_TOKENS,
    PAD,
    Genome,
    decode,
    encode,
    gc_content,
    iter_fasta,
    pad_batch,
    reverse_complement,
)
from seq2epi.lab.io import compression

DATA = Path(__file__).parents[1] / "data"
CHR1 = "ACGTACGTNNACGTRYACGTACGTTTGGCCAAGGTTCCAAGGCCNNACGT"


@pytest.fixture
def tiny_fa(tmp_path):
    """tiny.fa copied to a writable directory without its .fai, so pyfaidx builds the index there."""
    return Path(shutil.copy(DATA / "tiny.fa", tmp_path / "tiny.fa"))


def test_encode_tokens_and_n_for_everything_else():
    tokens = encode("ACGTacgtNnRYKM-é")
    assert tokens.dtype == np.uint8
    assert tokens.tolist() == [0, 1, 2, 3, 0, 1, 2, 3] + [4] * 8
    assert N_TOKENS == 6 and PAD == 5


def test_encode_decode_round_trip_keeps_length():
    seq = "ACGTNNACGT" * 100
    assert decode(encode(seq)) == seq
    assert decode(encode("acgtRY")) == "ACGTNN"
    assert decode(np.array([0, 1, PAD, PAD])) == "AC"
    with pytest.raises(ValueError, match="0..5"):
        decode([0, 6])


def test_reverse_complement_1d():
    assert decode(reverse_complement(encode("AACGTN"))) == "NACGTT"
    tokens = encode("ACCGTTAN")
    assert np.array_equal(reverse_complement(reverse_complement(tokens)), tokens)


def test_reverse_complement_padded_keeps_pad_at_end():
    batch, lengths = pad_batch([encode("AAC"), encode("GTNCA"), encode("")])
    rc = reverse_complement(batch, lengths)
    assert rc.shape == (3, 5)
    assert [decode(row) for row in rc] == ["GTT", "TGNAC", ""]
    assert rc[0, 3:].tolist() == [PAD, PAD]
    assert np.array_equal(reverse_complement(batch), rc)
    assert np.array_equal(reverse_complement(rc, lengths), batch)


def test_pad_batch_lengths_and_too_long():
    batch, lengths = pad_batch([encode("ACG"), encode("T")], length=4)
    assert batch.dtype == np.uint8 and lengths.dtype == np.int32
    assert batch.tolist() == [[0, 1, 2, PAD], [3, PAD, PAD, PAD]]
    assert lengths.tolist() == [3, 1]
    with pytest.raises(ValueError, match="sequence 0 has 3 tokens"):
        pad_batch([encode("ACG")], length=2)


def test_gc_content_ignores_n_and_pad():
    batch, lengths = pad_batch([encode("GCNNAT"), encode("GGGC"), encode("NN")])
    gc = gc_content(batch, lengths)
    assert gc[:2].tolist() == [0.5, 1.0] and np.isnan(gc[2])
    assert gc_content(encode("GATTACA")) == pytest.approx(2 / 7)


def test_encode_maps_every_byte_of_a_long_sequence():
    tokens = encode("ACGTRYNacgt" * 1000)
    assert tokens[:11].tolist() == [0, 1, 2, 3, 4, 4, 4, 0, 1, 2, 3] and len(tokens) == 11000


def test_genome_builds_index_and_fetches_upper(tiny_fa):
    assert not tiny_fa.with_suffix(".fa.fai").exists()
    genome = Genome(tiny_fa)
    assert tiny_fa.with_suffix(".fa.fai").exists()
    assert genome.chrom_sizes == {"chr1": 50, "chr2": 25, "chr3": 10}
    assert genome.fetch("chr1", 0, 50) == CHR1
    assert genome.fetch("chr1", 18, 23) == "GTACG"
    assert genome.fetch("chr2", 0, 6) == "TTTTGG"
    assert genome.tokens("chr3", 3, 7).tolist() == [4, 4, 0, 1]


def test_genome_indexes_into_cache_when_folder_is_read_only(tiny_fa, monkeypatch):
    monkeypatch.setattr("seq2epi.data.sequence.os.access", lambda path, mode: False)
    genome = Genome(tiny_fa)
    assert genome.fetch("chr2", 20, 25) == "ACGTA"
    assert not tiny_fa.with_suffix(".fa.fai").exists()


def test_genome_errors_name_the_file(tiny_fa, tmp_path):
    genome = Genome(tiny_fa)
    with pytest.raises(ValueError, match=r"tiny\.fa.*'chrX'.*chr1, chr2, chr3"):
        genome.fetch("chrX", 0, 1)
    with pytest.raises(ValueError, match=r"tiny\.fa.*chr3:5-11"):
        genome.fetch("chr3", 5, 11)
    with pytest.raises(FileNotFoundError, match="missing.fa"):
        Genome(tmp_path / "missing.fa")


def test_duplicate_chromosome_names_name_the_file(tmp_path):
    path = tmp_path / "dup.fa"
    path.write_text(">chr01\nACGT\n>chr02\nAC\n>chr01 again\nGG\n")
    with pytest.raises(ValueError, match=r"dup.fa has more than one sequence named 'chr01'"):
        Genome(path)


def test_plain_gzip_is_read_through_a_bgzip_copy_with_a_warning(tmp_path):
    path = tmp_path / "tiny.fa.gz"
    with gzip.open(path, "wb") as f:
        f.write((DATA / "tiny.fa").read_bytes())
    with pytest.warns(UserWarning, match=r"tiny.fa.gz is plain gzip.*bgzip copy"):
        genome = Genome(path)
    assert genome.fetch("chr1", 0, 50) == CHR1
    assert compression(genome._fasta.filename) == "bgzip" and compression(path) == "gzip"


def test_empty_record_is_named_with_its_line(tmp_path):
    path = tmp_path / "empty.fa"
    path.write_text(">chr1\nACGT\n>chr2 nothing\n\n>chr3\nAC\n")
    message = r"empty.fa record 'chr2' \(line 3\) has no sequence"
    with pytest.raises(ValueError, match=message):
        list(iter_fasta(path))
    with pytest.raises(ValueError, match=message):
        Genome(path)


def test_bgzipped_fasta(tmp_path):
    bgzf = pytest.importorskip("Bio.bgzf")
    path = tmp_path / "tiny.fa.gz"
    with bgzf.BgzfWriter(path, "wb") as f:
        f.write((DATA / "tiny.fa").read_bytes())
    genome = Genome(path)
    assert genome.fetch("chr1", 0, 50) == CHR1


def test_real_rice_genome(shared_data, tmp_path):
    genome = Genome(shutil.copy(shared_data / "rice_irgsp1_subset" / "genome.fa", tmp_path / "genome.fa"))
    assert genome.chrom_sizes == {"chr01": 500_000, "chr02": 500_000, "chr03": 500_000}
    tokens = genome.tokens("chr01", 0, 500_000)
    assert tokens[0] == 4 and set(np.unique(tokens)) <= {0, 1, 2, 3, 4}
    assert 0.3 < gc_content(tokens) < 0.6


def test_bgzipped_fasta_reads_across_block_boundaries(tmp_path):
    bgzf = pytest.importorskip("Bio.bgzf")
    seq = "".join("ACGT"[(i * 7 + i // 5) % 4] for i in range(200_000))
    path = tmp_path / "long.fa.gz"
    with bgzf.BgzfWriter(str(path), "wb") as f:
        f.write(">c\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    genome = Genome(path)
    # every start in the first few BGZF blocks, among them one exactly on a block boundary
    for start in range(64_000, 65_000):
        assert genome.fetch("c", start, start + 3) == seq[start : start + 3]


def test_iter_fasta_keeps_case_reads_gzip_and_names_bad_lines(tmp_path):
    plain = tmp_path / "a.fa"
    plain.write_text(">chr1 desc\nACgt\nNN\n>chr2\nA\n")
    gz = tmp_path / "a.fa.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, gz):
        assert list(iter_fasta(path)) == [("chr1", "ACgtNN"), ("chr2", "A")]
    bad = tmp_path / "bad.fa"
    bad.write_text("ACGT\n>chr1\nA\n")
    with pytest.raises(ValueError, match="bad.fa line 1: sequence before the first"):
        list(iter_fasta(bad))
