"""The per-gene protocol: transformer beside a k-mer ridge and GC, and a genome track read at genes' TSS."""

import json

import numpy as np
import pandas as pd
import pytest

from seq2epi.analysis import evaluate_genes
from seq2epi.lab import metrics_file


def _gene_parts(seed: int = 0, n: int = 120, length: int = 60):
    """Random gene windows whose first target rises with their count of the 3-mer GGC, the second with GC."""
    rng = np.random.default_rng(seed)
    parts = {}
    for name in ("train", "val", "test"):
        tokens = rng.integers(0, 4, (n, length)).astype(np.uint8)
        text = ["".join("ACGT"[b] for b in row) for row in tokens]
        motif = np.array([s.count("GGC") for s in text], float)
        gc = np.isin(tokens, (1, 2)).mean(1)
        y = np.stack([motif + rng.normal(0, 0.3, n), 4 * gc + rng.normal(0, 0.05, n)], 1).astype(np.float32)
        parts[name] = (tokens, np.full(n, length), y)
    return parts


def test_evaluate_genes_scores_each_model_per_mark_with_intervals():
    parts = _gene_parts()
    truth = {name: parts[name][2] for name in ("val", "test")}
    results, scores = evaluate_genes.evaluate_genes(parts, truth, ["motif", "gc"], n_boot=200, seed=0)
    assert set(results) == {"motif", "gc"}
    for mark in results:
        assert set(results[mark]) == {"transformer", "kmer_ridge", "gc_content"}
        assert results[mark]["transformer"]["spearman"] > 0.99  # the truth itself
        low, high = results[mark]["kmer_ridge"]["spearman_ci"]
        assert low <= results[mark]["kmer_ridge"]["spearman"] <= high
    assert results["motif"]["kmer_ridge"]["spearman"] > 0.7  # a 3-mer count is what a k-mer ridge sees
    assert {"k_max", "alpha", "alpha_at_edge"} <= set(results["motif"]["kmer_ridge"])
    json.dumps(results)  # metrics.json holds them
    assert metrics_file.schema_problem({"genes": results, "best_epoch": 1, "n_train": 120, "n_val": 120,
                                        "n_test": 120, "precision": "float32"}) is None
    assert results["gc"]["gc_content"]["spearman"] > 0.9
    assert scores["gc_content"].shape == (120, 2)
    table = evaluate_genes.gene_table(results)
    assert len(table) == 6 and table["spearman"].str.contains(r"\[").all()


def test_gene_metrics_are_written_through_the_schema_with_each_splits_count(tmp_path):
    parts = _gene_parts(n=30)
    truth = {name: parts[name][2] for name in ("val", "test")}
    results, _ = evaluate_genes.evaluate_genes(parts, truth, ["motif", "gc"], n_boot=20, seed=0)
    written = evaluate_genes.write_gene_metrics(tmp_path / "metrics.json", results, parts, 4, "float32")
    assert written == metrics_file.read_metrics(tmp_path / "metrics.json")
    assert (written["best_epoch"], written["n_train"], written["n_val"], written["n_test"]) == (4, 30, 30, 30)
    assert written["genes"]["gc"]["kmer_ridge"]["k_max"] == results["gc"]["kmer_ridge"]["k_max"]
    results["gc"]["transformer"]["spearman"] = "high"
    with pytest.raises(ValueError, match="key genes.gc.transformer.spearman is a string, expected a number"):
        evaluate_genes.write_gene_metrics(tmp_path / "metrics.json", results, parts, 4, "float32")


def test_the_gc_baseline_follows_the_direction_it_had_on_training_genes():
    parts = _gene_parts(1)
    for name in parts:  # the target now falls as GC rises
        tokens, lengths, y = parts[name]
        parts[name] = (tokens, lengths, -y)
    results, _ = evaluate_genes.evaluate_genes(parts, {n: parts[n][2] for n in ("val", "test")},
                                               ["motif", "gc"], n_boot=50)
    assert results["gc"]["gc_content"]["spearman"] > 0.9


def test_track_at_genes_means_each_targets_bins_over_the_tss_region():
    genes = pd.DataFrame({"gene_id": ["a", "b", "c", "d"], "chrom": "c", "start": [100, 1100, 2100, 3100],
                          "end": [400, 1400, 2400, 3400], "strand": "+", "K4": [1.0, 3.0, 7.0, 15.0]})
    starts = np.arange(0, 4000, 100)
    track = pd.DataFrame({"chrom": "c", "start": starts, "end": starts + 100, "score": starts / 4000})
    tracks = {"active": track, "flat": track.assign(score=-track["score"])}
    table, results = evaluate_genes.track_at_genes(tracks, genes, ["K4"], 100, 100, n_boot=20)
    np.testing.assert_allclose(table["score_active"], [0.0125, 0.2625, 0.5125, 0.7625])
    np.testing.assert_allclose(table["log1p_K4"], np.log1p(genes["K4"]))
    assert results["K4"]["active"]["spearman"] == 1.0 and results["K4"]["flat"]["spearman"] == -1.0
