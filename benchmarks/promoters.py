"""Promoters against the rest of the genome: a check on windows no model here was trained on.

    python benchmarks/promoters.py rice_subset_h3k4me3 --out benchmarks/promoters.md

H3K4me3 marks active promoters. The 1 kb upstream of every gene's TSS in the IRGSP-1.0 subset is scored
against intergenic 1 kb windows of the same subset (at least 2 kb from any gene) by the record's transformer
(each 1 kb tiled with the record's window and stride: max over the windows) and by GC content and the k-mer
regression fitted on the record's own training split (its SMEP windows, the subset's windows held out).
"""

import argparse
import datetime

import pandas as pd

from seq2epi import baselines, datasets, intervals, metrics, parameters, scoring, sequence
from seq2epi.records import atomic_path


def windows(data, upstream: int, per_promoter: int, seed: int) -> tuple[pd.DataFrame, sequence.Genome]:
    genome = sequence.Genome(data / "rice_irgsp1_subset" / "genome.fa")
    genes = intervals.read_gff_genes(data / "rice_irgsp1_subset" / "genes.gff")
    promoters = intervals.promoter_windows(genes, genome.chrom_sizes, upstream).assign(label=1)
    background = intervals.intergenic_windows(genes, genome.chrom_sizes, upstream,
                                              per_promoter * len(promoters), seed)
    both = pd.concat([promoters, background.assign(name="intergenic", label=0)], ignore_index=True)
    return both, genome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="a record folder or experiment id with its checkpoint")
    parser.add_argument("--upstream", type=int, default=1000)
    parser.add_argument("--per-promoter", type=int, default=10, help="intergenic windows per promoter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="markdown file to write")
    args = parser.parse_args()
    data = parameters.data_dir()
    table, genome = windows(data, args.upstream, args.per_promoter, args.seed)
    seqs = [genome.fetch(c, s, e) for c, s, e in table[["chrom", "start", "end"]].itertuples(index=False)]
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    y = table["label"].to_numpy()

    scorer = scoring.load_scorer(args.record)
    entries = [scoring.Entry(str(i), s) for i, s in enumerate(seqs)]
    scored = pd.concat(t for t, _ in scoring.score_sequences(
        scorer.predictor(), entries, scorer.marks, scorer.thresholds, scorer.window, scorer.stride,
        scorer.min_length))
    dataset = datasets.load_dataset(scorer.record / "artifacts" / "dataset.npz")
    parts = {s: (dataset["tokens"][dataset["split"] == s], dataset["lengths"][dataset["split"] == s],
                 dataset["labels"][dataset["split"] == s]) for s in ("train", "val")}
    kmer, _ = baselines.select_kmer_logistic(parts["train"], parts["val"])
    scores = {"transformer (max over windows)": scored[scorer.marks[0]].to_numpy(),
              "transformer (mean over windows)": scored[f"{scorer.marks[0]}_mean"].to_numpy(),
              "GC content": baselines.GCContent().fit(*parts["train"]).score(tokens, lengths),
              f"k-mer LR (k <= {kmer.k_max})": kmer.score(tokens, lengths)}
    rows = []
    for name, score in scores.items():
        ci = metrics.bootstrap_ci(y, score, n_boot=2000, seed=args.seed)["auroc"]
        rows.append(f"| {name} | {metrics.binary_metrics(y, score)['auroc']:.3f} | "
                    f"[{ci[0]:.3f}, {ci[1]:.3f}] |")
    report = "\n".join(["| model | AUROC | 95 % CI |", "|---|---|---|", *rows])
    print(report)
    if args.out:
        command = f"python benchmarks/promoters.py {args.record} --out {args.out}"
        about = __doc__.split("\n", 3)[3]
        text = (f"# Promoters against intergenic DNA (rice IRGSP-1.0 subset)\n\n{about}\n"
                f"Record `{scorer.record.name}`; {int(y.sum())} promoters, {int((1 - y).sum())} intergenic "
                f"windows of {args.upstream} bp. Measured {datetime.date.today()} with\n\n    {command}\n\n"
                f"{report}\n")
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
