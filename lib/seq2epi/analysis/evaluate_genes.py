"""The per-gene test protocol (genes mode): the transformer's outputs beside a k-mer ridge and GC content on
the genes of the held-out blocks, Spearman and Pearson per mark with bootstrap 95 % intervals."""

import numpy as np
import pandas as pd

from seq2epi.analysis import baselines
from seq2epi.data import genes as gene_tables
from seq2epi.data import intervals, sequence
from seq2epi.lab import metrics, metrics_file


def _gc_sign(tokens, lengths, y) -> float:
    """+1 or -1: the direction GC content follows a target on the training genes (as GCContent's sign)."""
    rho = metrics.spearman(y, sequence.gc_content(tokens, lengths))
    return 1.0 if not np.isfinite(rho) or rho >= 0 else -1.0


def evaluate_genes(parts: dict, outputs: dict, marks: list[str], n_boot: int = 1000, seed: int = 0
                   ) -> tuple[dict, dict]:
    """Test Spearman and Pearson (with intervals) per mark of the transformer, a k-mer ridge (k and alpha
    chosen on validation) and GC content (its sign fitted on training genes).

    `parts` maps train/val/test to (tokens, lengths, targets [n, marks]); `outputs` maps val/test to the
    transformer's raw outputs [n, marks]. Returns the metrics {mark: {model: {...}}} and the test scores
    {model: [n, marks]} for the figures.
    """
    ridge, choice = baselines.select_kmer_ridge(parts["train"], parts["val"])
    test_tokens, test_lengths, y_test = parts["test"]
    gc = sequence.gc_content(test_tokens, test_lengths)
    train_tokens, train_lengths, y_train = parts["train"]
    scores = {"transformer": np.asarray(outputs["test"]).reshape(len(y_test), -1),
              "kmer_ridge": ridge.score(test_tokens, test_lengths).reshape(len(y_test), -1),
              "gc_content": np.stack([_gc_sign(train_tokens, train_lengths, y_train[:, t]) * gc
                                      for t in range(len(marks))], 1)}
    results = {}
    for t, mark in enumerate(marks):
        results[mark] = {name: metrics.regression_metrics(y_test[:, t], score[:, t], n_boot, seed)
                         for name, score in scores.items()}
        results[mark]["kmer_ridge"].update({key: choice[key] for key in ("k_max", "alpha", "alpha_at_edge")})
    return results, scores


def write_gene_metrics(path, results: dict, parts: dict, best_epoch: int, precision: str) -> dict:
    """03_evaluate_genes' metrics.json: evaluate_genes' results under `genes`, the validation-chosen epoch,
    the genes of each split and the precision used; checked against the schema and written atomically
    (metrics_file.write_metrics), returned."""
    summary = {"genes": results, "best_epoch": int(best_epoch),
               **{f"n_{name}": int(len(parts[name][2])) for name in ("train", "val", "test")},
               "precision": precision}
    return metrics_file.write_metrics(path, summary)


def gene_table(results: dict) -> pd.DataFrame:
    """One row per (mark, model): Spearman and Pearson [95 % CI] on the test genes."""
    def cell(m: dict, key: str) -> str:
        low, high = m[f"{key}_ci"]
        return f"{m[key]:.3f} [{low:.3f}, {high:.3f}]"

    return pd.DataFrame([{"mark": mark, "model": name, "genes": m["n"], "spearman": cell(m, "spearman"),
                          "pearson": cell(m, "pearson")}
                         for mark, models in results.items() for name, m in models.items()])


def gene_predictions(table: pd.DataFrame, split: np.ndarray, outputs: dict, marks: list[str]) -> pd.DataFrame:
    """Every validation and test gene, its measured (log1p) value and the transformer's output per mark."""
    frames = []
    for name in ("val", "test"):
        genes = table[split == name].reset_index(drop=True)
        frame = genes[["gene_id", "chrom", "start", "end", "strand"]].assign(split=name)
        out = np.asarray(outputs[name]).reshape(len(frame), -1)
        for t, mark in enumerate(marks):
            frame[f"label_{mark}"] = np.log1p(genes[mark].to_numpy(float))
            frame[f"score_{mark}"] = out[:, t]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def track_at_genes(tracks: dict[str, pd.DataFrame], genes: pd.DataFrame, marks: list[str], upstream: int,
                   downstream: int, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Each gene's mean track score per target over its TSS region beside its measured values (log1p), and
    the Spearman and Pearson of every (target, mark) pair with bootstrap intervals: how a genome-wide model's
    track ranks genes by a mark it never saw per gene."""
    table = genes[["gene_id", "chrom", "start", "end", "strand"]].copy()
    regions = gene_tables.tss_spans(genes, upstream, downstream)
    for target, track in tracks.items():
        table[f"score_{target}"] = intervals.window_scores(track, regions)
    for mark in marks:
        table[f"log1p_{mark}"] = np.log1p(genes[mark].to_numpy(float))
    results = {}
    for target in tracks:
        for mark in marks:
            both = table[[f"score_{target}", f"log1p_{mark}"]].dropna()
            results.setdefault(mark, {})[target] = metrics.regression_metrics(
                both.iloc[:, 1].to_numpy(), both.iloc[:, 0].to_numpy(), n_boot, seed)
    return table, results


def test_genes_at_tracks(tracks: dict[str, pd.DataFrame], gene_table, marks: list[str],
                         chrom_sizes: dict[str, int], val_regions: list[str], test_regions: list[str],
                         upstream: int, downstream: int) -> tuple[pd.DataFrame, dict]:
    """track_at_genes on the genes of a gene table (gene_tables.read_gene_table) whose TSS lies in the test
    regions: the genome-wide tracks read where a per-gene value was measured but never trained on."""
    genes = gene_tables.read_gene_table(gene_table, marks, chrom_sizes)
    split = gene_tables.split_genes(genes, val_regions, test_regions, upstream, downstream)
    return track_at_genes(tracks, genes[split == "test"], marks, upstream, downstream)
