from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from seq2epi.data.genes import gene_targets, read_gene_table, split_genes, tss_windows
from seq2epi.data.genomewide import chrom_tokens
from seq2epi.data.sequence import decode

DATA = Path(__file__).parents[1] / "data"
SIZES = {"chr1": 50, "chr2": 25, "chr3": 10}
MARKS = ["H3K4me1", "H3K4me3"]


@pytest.fixture
def genes():
    return read_gene_table(DATA / "genes_rpkm.tsv", MARKS, SIZES)


def test_read_gene_table_types_the_columns(genes):
    assert list(genes.columns) == ["gene_id", "chrom", "start", "end", "strand", *MARKS]
    assert genes["start"].tolist() == [20, 2, 1, 15] and genes["strand"].tolist() == ["+", "-", "+", "-"]
    assert genes["H3K4me3"].tolist() == [0, 7.5, 2, 1]


def test_tss_windows_read_five_to_three_prime_on_the_genes_strand(genes):
    # chr1 17-24 CGT|ACGT (TSS = start 20); chr2 6-13 GGCCCCA reverse-complemented (TSS = end - 1 = 9);
    # chr2 -2..5 runs off the start, chr2 20..27 off the end (N there)
    got = tss_windows(genes, chrom_tokens(DATA / "tiny.fa"), upstream=3, downstream=4)
    assert got.dtype == np.uint8 and got.shape == (4, 7)
    assert [decode(row) for row in got] == ["CGTACGT", "TGGGGCC", "NNTTTTG", "NNTACGT"]
    tss_only = tss_windows(genes, chrom_tokens(DATA / "tiny.fa"), upstream=0, downstream=1)
    # chr1[20] and chr2[1] on +; on -, the complements of chr2[9] (C) and chr2[23] (T)
    assert [decode(row) for row in tss_only] == ["A", "G", "T", "A"]


def test_gene_targets_are_log1p(genes):
    targets = gene_targets(genes, MARKS)
    assert targets.dtype == np.float32
    np.testing.assert_allclose(targets, np.log1p(genes[MARKS].to_numpy()), rtol=1e-6)


def test_split_genes_by_tss_and_drops_training_windows_reaching_held_out(genes):
    split = split_genes(genes, ["chr2:12-24"], ["chr1"], upstream=3, downstream=4)
    assert split.tolist() == ["test", "drop", "train", "val"]
    # the TSS of a minus-strand gene is end - 1: chr2:9-10 holds gene 2's, chr2:10-12 only its window
    assert split_genes(genes, ["chr2:9-10"], [], 3, 4).tolist() == ["train", "val", "train", "train"]
    assert split_genes(genes, ["chr2:10-12"], [], 3, 4).tolist() == ["train", "drop", "train", "train"]
    with pytest.raises(ValueError, match="overlap"):
        split_genes(genes, ["chr2:0-12"], ["chr2:10-20"], 3, 4)


@pytest.mark.parametrize("old, new, message", [
    ("\tstrand\t", "\tsense\t", r"genes.tsv line 1: expected columns .* missing \['strand'\]"),
    ("\t+\t1.5", "\t.\t1.5", r"genes.tsv line 2: strand must be \+ or -, got '.'"),
    ("7.5", "NA", r"genes.tsv line 3: H3K4me3 must be a non-negative number, got 'NA'"),
    ("\t0.5\t", "\t-0.5\t", r"genes.tsv line 4: H3K4me1 must be a non-negative number, got '-0.5'"),
    ("g4\tchr2", "g4\tchr9", r"genes.tsv line 5: chromosome 'chr9' is not in the genome"),
    ("15\t24", "15\t26", r"genes.tsv line 5: gene g4 ends at 26, past the end of chr2 \(25 bp\)"),
    ("\t20\t30\t", "\t20.5\t30\t", r"genes.tsv line 2: start must be an integer, got '20.5'"),
    ("\t20\t30\t", "\t30\t20\t", r"genes.tsv line 2: expected 0 <= start < end, got start=30 end=20"),
])
def test_bad_gene_tables_are_refused_naming_the_line(tmp_path, old, new, message):
    text = (DATA / "genes_rpkm.tsv").read_text()
    assert old in text
    path = tmp_path / "genes.tsv"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ValueError, match=message):
        read_gene_table(path, MARKS, SIZES)


def test_real_genes_split_by_block(shared_data):
    folder = shared_data / "arabidopsis_tair10_chr1"
    genes = read_gene_table(folder / "gene_h3k4_rpkm.tsv", ["H3K4me1", "H3K4me2", "H3K4me3"],
                            {"NC_003070.9": 30_427_671})
    split = split_genes(genes, ["NC_003070.9:15000000-20000000"], ["NC_003070.9:20000000-25000000"],
                        upstream=1000, downstream=1000)
    counts = Counter(split.tolist())
    print(f"\nchr1 genes by split (TSS -1000/+1000): {dict(sorted(counts.items()))}")
    assert len(genes) == 7878 and sum(counts.values()) == 7878
    assert counts["train"] > counts["val"] > 500 and counts["test"] > 500 and counts["drop"] <= 4
