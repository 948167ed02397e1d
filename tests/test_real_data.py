"""Reduced learning checks on the real rice data in ../shared/data (or $SEQ2EPI_DATA); skipped without it."""


import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from seq2epi.analysis.baselines import KmerLogistic
from seq2epi.data import intervals, prepare
from seq2epi.data.datasets import WindowDataset
from seq2epi.data.sequence import Genome, gc_content, pad_batch
from seq2epi.model.predict import predict
from seq2epi.model.train import TrainConfig, fit
from seq2epi.model.transformer import ModelConfig, NucleicTransformer


def central(tokens, lengths, width: int):
    """The central `width` bp of each sequence (all of a shorter one), re-padded."""
    offset = np.maximum(lengths - width, 0) // 2
    return pad_batch([t[o : o + min(n, width)] for t, o, n in zip(tokens, offset, lengths, strict=True)])


def test_tiny_transformer_learns_h3k4me3_beside_the_kmer_baseline(shared_data, tmp_path):
    """300 train-file sequences (240 fit, 60 validation) and 300 test-file sequences of SMEP H3K4me3, cropped
    to their central 200 bp so attention stays cheap on CPU. Measured: test AUROC 0.84-0.85 over four model
    seeds, k-mer logistic 0.86, GC content 0.85 (SMEP negatives are adjacent windows; see the data README)."""
    smep = shared_data / "rice_smep"
    data = prepare.from_csv(smep / "H3K4me3_train.csv", smep / "H3K4me3_test.csv", val_fraction=0.2, seed=0,
                            max_sequences=300, max_test_sequences=300)
    split, labels = data["split"], data["labels"]
    tokens, lengths = central(data["tokens"], data["lengths"], 200)
    part = {name: (tokens[split == name], lengths[split == name], labels[split == name])
            for name in ("train", "val", "test")}
    assert [len(part[name][0]) for name in part] == [240, 60, 300]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread
    try:
        torch.manual_seed(0)
        model = NucleicTransformer(ModelConfig(ninp=32, nhead=4, nhid=64, nlayers=1, kmers=(7,)))
        cfg = TrainConfig(epochs=5, batch_size=16, schedule="constant", lr=1e-3, seed=0)
        fit(model, WindowDataset(*part["train"]), WindowDataset(*part["val"]), cfg, tmp_path, progress=False)
        test_tokens, test_lengths, y = part["test"]
        auroc = roc_auc_score(y, predict(model, test_tokens, test_lengths))
    finally:
        torch.set_num_threads(threads)
    baseline = KmerLogistic(k_max=6, C=0.01).fit(*part["train"])
    baseline_auroc = roc_auc_score(y, baseline.score(test_tokens, test_lengths))
    assert auroc > 0.75, f"transformer test AUROC {auroc:.3f} (k-mer logistic {baseline_auroc:.3f})"
    assert baseline_auroc > 0.75


def test_smep_marks_merge_into_one_multi_task_dataset(shared_data):
    marks = ("H3K4me3", "H3K27me3", "H3K9ac")
    smep = shared_data / "rice_smep"
    data = prepare.from_csv_multi({m: smep / f"{m}_train.csv" for m in marks},
                                  {m: smep / f"{m}_test.csv" for m in marks}, val_fraction=0.1, seed=0,
                                  max_sequences=100, max_test_sequences=100)
    assert data["marks"] == list(marks) and data["labels"].shape == (600, 3)
    assert (data["table"]["n_marks"] == 1).all()  # SMEP shares no sequence between marks
    assert (~np.isnan(data["labels"])).sum(0).tolist() == [200, 200, 200]


def test_gc_matched_background_on_the_rice_genome_subset(shared_data):
    genome = Genome(shared_data / "rice_irgsp1_subset" / "genome.fa")
    bed = shared_data / "rice_smep" / "windows_in_irgsp1_subset.bed"
    smep = pd.read_csv(bed, sep="\t").rename(columns={"#chrom": "chrom"})
    is_k4 = smep["mark"] == "H3K4me3"
    peaks, others = smep[is_k4 & (smep["label"] == 1)], smep[~is_k4]  # H3K4me3 positives; other marks
    matched = intervals.gc_matched_background(peaks, genome, 500, 200, seed=0, exclude=others)
    random = intervals.background_windows(pd.concat([peaks, others]), genome.chrom_sizes, 500, 200, seed=0)
    positive_gc = [gc_content(genome.tokens(*w)) for w in intervals.summit_windows(
        peaks, 500, genome.chrom_sizes).values]
    random_gc = [gc_content(genome.tokens(*w)) for w in random[["chrom", "start", "end"]].values]
    assert not intervals.overlaps(matched, others).any() and not intervals.overlaps(matched, peaks).any()
    assert abs(matched["gc"].mean() - np.mean(positive_gc)) < 0.01
    assert np.mean(random_gc) < np.mean(positive_gc) - 0.03
