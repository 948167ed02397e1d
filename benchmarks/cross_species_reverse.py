"""Across species, the other way: a SMEP-trained record's marks scored on a genome-wide record's test block.

    python benchmarks/cross_species_reverse.py smep_multitask arabidopsis_chr1 --pair H3K4me3=active \
        --pair H3K9ac=active --pair H3K27me3=polycomb --out benchmarks/cross_species_reverse.md

The test windows of the genome-wide Arabidopsis record are rebuilt from the data with its own parameters
(chr1:20-25 Mb tiled every `eval_stride` bp; the target read over the central `centre_bin` bp), and the SMEP
record's model reads the central window of its own size of each (400 bp for smep_multitask, the labelled
centre inside). Each SMEP mark is scored against the chromatin-state target named beside it (`active`, states
1-2, for H3K4me3 and H3K9ac; `polycomb`, state 5, for H3K27me3). Beside it on the same windows: GC content of
that central window (its better direction), and the genome-wide record's own test AUROC for the target
(transformer and k-mer LR, from its metrics.json). The SMEP model never saw Arabidopsis.
"""

import argparse
import datetime

import numpy as np
from cross_species import auroc, interval  # the forward direction's formatting, beside this script

from seq2epi.data import prepare, sequence
from seq2epi.lab import metrics, parameters
from seq2epi.lab.io import atomic_path
from seq2epi.lab.records import Record


def block_windows(genomewide: Record, data) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The genome-wide record's test windows (tokens [n, window]), their targets [n, targets] and names."""
    p = genomewide.params
    built = prepare.from_genomewide(
        data / p["genome_fasta"], p["window"], p["val_chroms"], p["test_chroms"], p["seed"],
        data / p["segmentation_bed"], p["label_map"], p["label_states"],
        prepare.peak_target_files(p["peak_targets"], data), p["label_bin"], p["centre_bin"], p["eval_stride"],
        baseline_windows=1, train_genome_bp=p["train_genome_bp"])
    test = built["split"] == "test"
    return built["tokens"][test], built["labels"][test], built["marks"]


def central(tokens: np.ndarray, width: int) -> np.ndarray:
    """The central `width` bases of each window (all of it when the window is no longer)."""
    start = max(0, (tokens.shape[1] - width) // 2)
    return tokens[:, start : start + width]


def rows(smep: Record, genomewide: Record, pairs: list[tuple[str, str]], data, seed: int) -> list[str]:
    tokens, targets, names = block_windows(genomewide, data)
    predictor = smep.predictor()
    inside = central(tokens, predictor.window)
    scores = predictor(inside)
    gc_all = sequence.gc_content(inside)
    own = (genomewide.metrics or {}).get("marks", {})
    smep_link = f"[{smep.name}](../executed/{smep.name}/)"
    gw_link = f"[{genomewide.name}](../executed/{genomewide.name}/)"
    lines = []
    for mark, target in pairs:
        if mark not in predictor.marks or target not in names:
            raise ValueError(f"{mark}={target}: {smep.name} predicts {predictor.marks} and {genomewide.name} "
                             f"labels {names}")
        y = targets[:, names.index(target)]
        known = ~np.isnan(y)
        y, score, gc = y[known].astype(int), scores[known, predictor.marks.index(mark)], gc_all[known]
        gc = gc if metrics.binary_metrics(y, gc)["auroc"] >= 0.5 else -gc
        pair, n = f"{mark} → `{target}`", int(known.sum())
        lines += [f"| {pair} | {smep_link} `{mark}` ({predictor.window} bp) | {n} | "
                  f"{auroc(y, score, seed)} |",
                  f"| {pair} | GC content of the same {predictor.window} bp (its better direction) | {n} | "
                  f"{auroc(y, gc, seed)} |"]
        for model, key in (("transformer", "transformer"), ("k-mer LR", "kmer_logistic")):
            if key in own.get(target, {}):
                test = own[target][key]
                lines.append(f"| {pair} | {gw_link} {model} (trained on chr1, its own test) | "
                             f"{test.get('n', '')} | {interval(test['auroc'], test['ci95']['auroc'])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("smep", help="the SMEP-trained record (name or experiment id)")
    parser.add_argument("genomewide", help="the genome-wide record whose test block is scored")
    parser.add_argument("--pair", action="append", required=True, help="MARK=target, e.g. H3K4me3=active")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="markdown file to write")
    args = parser.parse_args()
    smep, genomewide, data = Record.find(args.smep), Record.find(args.genomewide), parameters.data_dir()
    pairs = [tuple(p.split("=", 1)) for p in args.pair]
    lines = ["| SMEP mark → target | model | test windows | test AUROC [95 % CI] |", "|---|---|---|---|",
             *rows(smep, genomewide, pairs, data, args.seed)]
    report = "\n".join(lines)
    print(report)
    if args.out:
        command = (f"python benchmarks/cross_species_reverse.py {args.smep} {args.genomewide} "
                   + " ".join(f"--pair {p}" for p in args.pair))
        about = __doc__.split("\n\n", 2)[2]
        with atomic_path(args.out) as tmp:
            tmp.write_text(f"# Across species: {smep.name} on the test block of {genomewide.name}\n\n"
                           f"{about}\nMeasured {datetime.date.today()} with\n\n"
                           f"    {command} --out {args.out}\n\n"
                           f"{report}\n")


if __name__ == "__main__":
    main()
