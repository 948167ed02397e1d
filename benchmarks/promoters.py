"""Promoters against the rest of the genome: a check on windows no model here was trained on.

    python benchmarks/promoters.py negatives_h3k4me3_scratch ... --out benchmarks/promoters.md

H3K4me3 marks active promoters. The 1 kb upstream of every gene's TSS in the IRGSP-1.0 subset is scored
against intergenic 1 kb windows of the same subset (at least 2 kb from any gene) by each record's transformer
(each 1 kb tiled with the record's window and stride: max, and mean, over the windows) and by GC content and
the k-mer regression fitted on the record's own training split. Beside each model: its AUROC on the record's
own test split (metrics.json: SMEP's for the rice records, the held-out block of chr1 for a genome-wide
Arabidopsis record, whose first target is scored), so a model that learnt the peak-vs-flank contrast but not
the mark shows as high there and low here. A rice record is fair here only if its training kept the subset's
SMEP windows out (`exclude_bed`) and any background negatives off the genes' region (`background_exclude`).
"""

import argparse
import datetime

import numpy as np
import pandas as pd

from seq2epi.analysis import baselines, scoring
from seq2epi.data import datasets, intervals, readers, sequence
from seq2epi.lab import metrics, parameters
from seq2epi.lab.io import atomic_path
from seq2epi.lab.records import DATASET, Record

SMEP_KEYS = {"transformer (max over windows)": "transformer",  # each model's key in metrics.json
             "transformer (mean over windows)": "transformer", "GC content": "gc_content",
             "k-mer LR": "kmer_logistic"}


def windows(data, upstream: int, per_promoter: int, seed: int) -> tuple[pd.DataFrame, sequence.Genome]:
    genome = sequence.Genome(data / "rice_irgsp1_subset" / "genome.fa")
    genes = intervals.read_gff_genes(data / "rice_irgsp1_subset" / "genes.gff")
    promoters = intervals.promoter_windows(genes, genome.chrom_sizes, upstream).assign(label=1)
    background = intervals.intergenic_windows(genes, genome.chrom_sizes, upstream,
                                              per_promoter * len(promoters), seed)
    both = pd.concat([promoters, background.assign(name="intergenic", label=0)], ignore_index=True)
    return both, genome


def model_scores(found: Record, seqs: list[str]) -> tuple[dict, list[str]]:
    """Each model's score of `seqs`: the record's transformer, and GC content and the k-mer regression fitted
    on its training split (k and C chosen on its validation split, as 03 does); and the record's marks."""
    predictor = found.predictor()
    entries = [readers.Entry(str(i), s) for i, s in enumerate(seqs)]
    scored = pd.concat(t for t, _ in scoring.score_sequences(
        predictor, entries, predictor.marks, predictor.thresholds, predictor.window, predictor.stride,
        predictor.min_length))
    dataset = datasets.load_dataset(found.path / DATASET)
    labels = dataset["labels"].reshape(len(dataset["labels"]), -1)[:, 0]  # the first mark's
    parts = {s: (dataset["tokens"][rows], dataset["lengths"][rows], labels[rows])
             for s in ("train", "val") if (rows := (dataset["split"] == s) & ~np.isnan(labels)).any()}
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    kmer, _ = baselines.select_kmer_logistic(parts["train"], parts["val"])
    mark = predictor.marks[0]
    return {"transformer (max over windows)": scored[mark].to_numpy(),
            "transformer (mean over windows)": scored[f"{mark}_mean"].to_numpy(),
            "GC content": baselines.GCContent().fit(*parts["train"]).score(tokens, lengths),
            "k-mer LR": kmer.score(tokens, lengths)}, predictor.marks


def training(params: dict) -> str:
    """What a record's training negatives and start were, in a few words."""
    if params.get("input") == "genomewide":
        return f"genome-wide {params.get('genome_fasta', '').split('/')[0]} ({params['mark']}), from scratch"
    n = params.get("background_n", 0)
    negatives = f"SMEP flanks + {n:,} {params['background']} background" if n else "SMEP flanks only"
    return negatives + (", pretrained" if params.get("init_checkpoint") else ", from scratch")


def rows(record: str, y, seqs: list[str], seed: int) -> list[str]:
    found = Record.find(record)
    scores, marks = model_scores(found, seqs)
    smep = found.metrics["marks"][marks[0]]
    link = f"[{found.name}](../executed/{found.name}/)"
    out = []
    for name, score in scores.items():
        test = smep[SMEP_KEYS[name]]
        here = metrics.bootstrap_ci(y, score, n_boot=2000, seed=seed)["auroc"]
        out.append(f"| {link} | {training(found.params)} | {name} | "
                   f"{interval(test['auroc'], test['ci95']['auroc'])} | "
                   f"{interval(metrics.binary_metrics(y, score)['auroc'], here)} |")
    return out


def interval(value: float, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", help="record folders or experiment ids with their checkpoints")
    parser.add_argument("--upstream", type=int, default=1000)
    parser.add_argument("--per-promoter", type=int, default=10, help="intergenic windows per promoter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="markdown file to write")
    args = parser.parse_args()
    data = parameters.data_dir()
    table, genome = windows(data, args.upstream, args.per_promoter, args.seed)
    seqs = [genome.fetch(c, s, e) for c, s, e in table[["chrom", "start", "end"]].itertuples(index=False)]
    y = table["label"].to_numpy()
    lines = ["| record | training | model | own test AUROC [95 % CI] | TSS vs intergenic AUROC [95 % CI] |",
             "|---|---|---|---|---|"]
    for record in args.records:
        lines += rows(record, y, seqs, args.seed)
    report = "\n".join(lines)
    print(report)
    if args.out:
        command = f"python benchmarks/promoters.py {' '.join(args.records)} --out {args.out}"
        about = __doc__.split("\n\n", 2)[2]
        text = (f"# Promoters against intergenic DNA (rice IRGSP-1.0 subset)\n\n{about}\n"
                f"{int(y.sum())} promoters, {int((1 - y).sum())} intergenic windows of {args.upstream} bp. "
                f"Measured {datetime.date.today()} with\n\n    {command}\n\n{report}\n")
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
