"""Across species: a record's target scored on another species' labelled windows.

    python benchmarks/cross_species.py arabidopsis_chr1 --pair active=H3K4me3 --pair active=H3K9ac \
        --pair polycomb=H3K27me3 --out benchmarks/cross_species.md

A genome-wide Arabidopsis record (chromatin states of chr1) scores the rice SMEP test windows of each mark
with the target named beside it (`active`, states 1-2, for H3K4me3 and H3K9ac; `polycomb`, state 5, for
H3K27me3): each window tiled with the record's window and stride (SMEP windows, 128-799 bp, are shorter than a
1-kb window and are read whole), max and mean over the windows. Beside it, on the same windows: GC content
alone (its direction as measured there, so at least 0.5), and the SMEP record's own transformer and k-mer LR
(trained on SMEP, from its metrics.json) where one is committed. The Arabidopsis model never saw rice or SMEP.
"""

import argparse
import datetime

import numpy as np

from seq2epi.analysis import scoring
from seq2epi.data import datasets, readers, sequence
from seq2epi.lab import metrics, parameters
from seq2epi.lab.io import atomic_path
from seq2epi.lab.records import Record


def interval(value: float, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def auroc(y, score, seed: int) -> str:
    return interval(metrics.binary_metrics(y, score)["auroc"],
                    metrics.bootstrap_ci(y, score, n_boot=2000, seed=seed)["auroc"])


def smep_rows(mark: str) -> list[str]:
    """The SMEP record of the mark (experiment smep_<mark>, newest): its own test AUROC per model."""
    try:
        found = Record.find(f"smep_{mark.lower()}")
    except (FileNotFoundError, ValueError):
        return []
    test = (found.metrics or {}).get("marks", {}).get(mark, {})
    models = {"transformer": "transformer", "k-mer LR": "kmer_logistic"}
    return [f"| {mark} | SMEP-trained {name} ([{found.name}](../executed/{found.name}/)) | "
            f"{interval(test[key]['auroc'], test[key]['ci95']['auroc'])} |"
            for name, key in models.items() if key in test]


def rows(found: Record, target: str, mark: str, data, seed: int) -> list[str]:
    table = datasets.read_labeled_csv(data / "rice_smep" / f"{mark}_test.csv")
    predictor = found.predictor()
    if target not in predictor.marks:
        raise ValueError(f"record {found.name} predicts {predictor.marks}, not {target!r}")
    entries = [readers.Entry(str(i), s) for i, s in enumerate(table["sequence"])]
    scored = np.concatenate([t[[target, f"{target}_mean"]].to_numpy() for t, _ in scoring.score_sequences(
        predictor, entries, predictor.marks, predictor.thresholds, predictor.window, predictor.stride,
        predictor.min_length)])
    y = table["label"].to_numpy()
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in table["sequence"]])
    gc = sequence.gc_content(tokens, lengths)
    gc = gc if metrics.binary_metrics(y, gc)["auroc"] >= 0.5 else -gc
    link = f"[{found.name}](../executed/{found.name}/)"
    return [f"| {mark} | {link} `{target}` (max over windows) | {auroc(y, scored[:, 0], seed)} |",
            f"| {mark} | {link} `{target}` (mean over windows) | {auroc(y, scored[:, 1], seed)} |",
            f"| {mark} | GC content (its better direction) | {auroc(y, gc, seed)} |", *smep_rows(mark)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="the record (name or experiment id) whose targets score the windows")
    parser.add_argument("--pair", action="append", required=True, help="target=MARK, e.g. active=H3K4me3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="markdown file to write")
    args = parser.parse_args()
    found, data = Record.find(args.record), parameters.data_dir()
    lines = ["| SMEP mark | model | test AUROC [95 % CI] |", "|---|---|---|"]
    for pair in args.pair:
        target, _, mark = pair.partition("=")
        lines += rows(found, target, mark, data, args.seed)
    report = "\n".join(lines)
    print(report)
    if args.out:
        pairs = " ".join(f"--pair {p}" for p in args.pair)
        command = f"python benchmarks/cross_species.py {args.record} {pairs}"
        about = __doc__.split("\n\n", 2)[2]
        with atomic_path(args.out) as tmp:
            tmp.write_text(f"# Across species: {found.name} on rice SMEP test windows\n\n{about}\n"
                           f"Measured {datetime.date.today()} with\n\n    {command} --out {args.out}\n\n"
                           f"{report}\n")


if __name__ == "__main__":
    main()
