"""The per-mark accuracy table of benchmarks/accuracy.md, read from the records' metrics.json.

    python benchmarks/accuracy.py smep_h3k4me3 smep_h3k27me3 smep_h3k9ac 0503_train1 ...
    python benchmarks/accuracy.py --curve lc_h3k4me3_scratch lc_h3k4me3_pretrained ...
    python benchmarks/accuracy.py --genes arabidopsis_chr1_genes

Each experiment's newest record (or a record folder's name) gives one row per model (transformer, GC content,
k-mer logistic regression, and the validation-fitted stack of transformer + k-mer LR where the record has it):
test AUROC / AUPRC / MCC with bootstrap 95 % intervals, beside the lab's target (AUROC 0.95, MCC 0.75), and
the transformer's validation AUROC at its chosen epoch (what selection saw). Where a record also scored the
test windows that overlap no training window, their AUROC and MCC (and how many they are) join each row.

With --genes, each per-gene record (input: genes) gives one row per mark and model (transformer, k-mer ridge,
GC content): test Spearman and Pearson with bootstrap 95 % intervals.

With --curve, each named record (or every record of a named experiment) is a point of a learning curve: one
row per mark, training size (`train_size`) and curve (records.learning_curve: each experiment's transformer
and stack, the baselines once).
"""

import argparse
from pathlib import Path

from seq2epi.lab import parameters, records

MODELS = {"transformer": "Nucleic Transformer", "gc_content": "GC content", "kmer_logistic": "k-mer LR",
          "stack": "stack (transformer + k-mer LR)"}
COLUMNS = ["mark", "model", "val AUROC", "test AUROC [95 % CI]", "test AUPRC [95 % CI]", "test MCC [95 % CI]",
           "gap to 0.95 / 0.75", "record, command"]
OVERLAP_FREE = ["overlap-free test AUROC [95 % CI]", "overlap-free test MCC [95 % CI]",
                "n overlap-free / test"]


def cell(metrics: dict, key: str) -> str:
    if key not in metrics:  # e.g. overlap-free windows of one class only
        return ""
    low, high = metrics["ci95"][key]
    return f"{metrics[key]:.3f} [{low:.3f}, {high:.3f}]"


def model_name(key: str, m: dict) -> str:
    if key == "kmer_logistic" and "k_max" in m:  # 1..k-mers, k and C chosen on validation
        edge = ", C at the grid's edge" if m.get("C_at_edge") else ""
        return f"{MODELS[key]} (1-{m['k_max']}{edge})"
    return MODELS[key]


def rows(record: records.Record) -> list[dict]:
    metrics = record.metrics
    command = f"`seq2epi run {record.params['experiment']}`"
    val_auc = record.history["val_auc"].max()
    out = []
    for mark, per_model in metrics["marks"].items():
        for key in (k for k in MODELS if k in per_model):
            m = per_model[key]
            gap = f"{m['auroc'] - 0.95:+.3f} / {m['mcc'] - 0.75:+.3f}" if key == "transformer" else ""
            val = f"{val_auc:.3f}" if key == "transformer" and len(metrics["marks"]) == 1 else ""
            link = f"[{record.name}](../executed/{record.name}/)" + (f" {command}" if gap else "")
            row = dict(zip(COLUMNS, [mark, model_name(key, m), val, cell(m, "auroc"), cell(m, "auprc"),
                                     cell(m, "mcc"), gap, link], strict=True))
            if "overlap_free" in m:
                free = m["overlap_free"]
                row.update(zip(OVERLAP_FREE, [cell(free, "auroc"), cell(free, "mcc"),
                                              f"{free['n']} / {m.get('n', metrics['n_test'])}"], strict=True))
            out.append(row)
    return out


def table(all_rows: list[dict]) -> str:
    """The markdown table; the overlap-free columns only when some record has them."""
    extra = OVERLAP_FREE if any(OVERLAP_FREE[0] in r for r in all_rows) else []
    columns = COLUMNS[:-1] + extra + COLUMNS[-1:]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r.get(c, "") for c in columns) + " |" for r in all_rows]
    return "\n".join(lines)


def curve_table(executed: Path, names: list[str], by: str = "train_size") -> str:
    """The learning-curve table: test AUROC and MCC per mark, point of the curve (`by`: train_size, or
    train_genome_bp for genome length) and curve, with each point's record and command."""
    paths = [[executed / n] if (executed / n).is_dir() else records.records_of(executed, n) for n in names]
    found = [records.read_record(p) for group in paths for p in group]
    curve = records.learning_curve(found, by).sort_values(["mark", by], kind="stable")
    what = "training windows" if by == "train_size" else by
    lines = [f"| mark | {what} | model | test AUROC [95 % CI] | test MCC [95 % CI] | "
             "overlap-free test AUROC | record, command |", "|" + "---|" * 7]
    asked = {record.name: record.params.get(by, 0) for record in found}  # 0: all
    for r in curve.itertuples(index=False):
        point = getattr(r, by)
        size = f"{int(point):,}" + ("" if asked[r.record] else " (all)")
        command = "" if r.model in records.BASELINES else \
            f" `seq2epi run {r.experiment} -p {by}={asked[r.record]}`"
        lines.append(f"| {r.mark} | {size} | {r.curve} | {r.auroc:.3f} [{r.auroc_low:.3f}, "
                     f"{r.auroc_high:.3f}] | {r.mcc:.3f} [{r.mcc_low:.3f}, {r.mcc_high:.3f}] | "
                     f"{r.overlap_free_auroc:.3f} | [{r.record}](../executed/{r.record}/){command} |")
    return "\n".join(lines)


GENE_MODELS = {"transformer": "Nucleic Transformer", "kmer_ridge": "k-mer ridge", "gc_content": "GC content"}


def genes_table(found: list[records.Record]) -> str:
    """Per-gene records (metrics.json `genes`): test Spearman and Pearson per mark and model."""
    lines = ["| mark | model | test genes | Spearman [95 % CI] | Pearson [95 % CI] | record, command |",
             "|" + "---|" * 6]
    for record in found:
        link = f"[{record.name}](../executed/{record.name}/) `seq2epi run {record.params['experiment']}`"
        for mark, models in record.metrics["genes"].items():
            for key, name in GENE_MODELS.items():
                m = models[key]
                spearman, pearson = (f"{m[k]:.3f} [{m[f'{k}_ci'][0]:.3f}, {m[f'{k}_ci'][1]:.3f}]"
                                     for k in ("spearman", "pearson"))
                lines.append(f"| {mark} | {name} | {m['n']} | {spearman} | {pearson} | {link} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--curve", action="store_true",
                        help="learning curves: records (or all records of experiments) by train_size")
    parser.add_argument("--genes", action="store_true", help="per-gene records: Spearman, Pearson per mark")
    parser.add_argument("--by", default="train_size", help="--curve's parameter (e.g. train_genome_bp)")
    args = parser.parse_args()
    executed = parameters.project_root() / "executed"
    if args.genes:
        print(genes_table([records.Record.find(name, executed) for name in args.experiments]))
        return
    if args.curve:
        print(curve_table(executed, args.experiments, args.by))
        return
    print(table([row for name in args.experiments for row in rows(records.Record.find(name, executed))]))


if __name__ == "__main__":
    main()
