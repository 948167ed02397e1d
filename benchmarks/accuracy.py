"""The per-mark accuracy table of benchmarks/accuracy.md, read from the records' metrics.json.

    python benchmarks/accuracy.py smep_h3k4me3 smep_h3k27me3 smep_h3k9ac 0503_train1 ...

Each experiment's newest record (or a record folder's name) gives one row per model (transformer, GC content,
k-mer logistic regression): test AUROC / AUPRC / MCC with bootstrap 95 % intervals, beside the lab's target
(AUROC 0.95, MCC 0.75), and the transformer's validation AUROC at its chosen epoch (what selection saw).
"""

import argparse
from pathlib import Path

from seq2epi import parameters, records

MODELS = {"transformer": "Nucleic Transformer", "gc_content": "GC content", "kmer_logistic": "k-mer LR"}


def cell(metrics: dict, key: str) -> str:
    low, high = metrics["ci95"][key]
    return f"{metrics[key]:.3f} [{low:.3f}, {high:.3f}]"


def rows(path: Path) -> list[str]:
    record = records.read_record(path)
    metrics = record.metrics
    command = f"`seq2epi run {record.params['experiment']}`"
    val_auc = record.history["val_auc"].max()
    out = []
    for mark, per_model in metrics["marks"].items():
        for key, name in MODELS.items():
            m = per_model[key]
            if key == "kmer_logistic" and "k_max" in m:  # 1..k-mers, k chosen on validation
                name = f"{MODELS[key]} (1-{m['k_max']})"
            gap = f"{m['auroc'] - 0.95:+.3f} / {m['mcc'] - 0.75:+.3f}" if key == "transformer" else ""
            val = f"{val_auc:.3f}" if key == "transformer" and len(metrics["marks"]) == 1 else ""
            link = f"[{record.name}](../executed/{record.name}/)" + (f" {command}" if gap else "")
            out.append(f"| {mark} | {name} | {val} | {cell(m, 'auroc')} | {cell(m, 'auprc')} "
                       f"| {cell(m, 'mcc')} | {gap} | {link} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+")
    args = parser.parse_args()
    executed = parameters.project_root() / "executed"
    print("| mark | model | val AUROC | test AUROC [95 % CI] | test AUPRC [95 % CI] | test MCC [95 % CI] "
          "| gap to 0.95 / 0.75 | record, command |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.experiments:
        print("\n".join(rows(records.find_record(executed, name))))


if __name__ == "__main__":
    main()
