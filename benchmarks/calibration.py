"""Temperature scaling of committed records' scores: fitted on validation, read on test.

    python benchmarks/calibration.py smep_h3k4me3 smep_h3k27me3 smep_h3k9ac --out benchmarks/calibration.md

Reads each record's predictions.tsv.gz (every validation and test score 03_evaluate saved), so records made
before 03 calibrated anything are scored the same way 03 now does (evaluate.calibrate_marks).
"""

import argparse
import datetime

from seq2epi.analysis import evaluate
from seq2epi.lab import records
from seq2epi.lab.io import atomic_path
from seq2epi.lab.parameters import project_root


def calibration_rows(name: str, n_bins: int) -> list[dict]:
    """One row per mark of a record: temperature, test ECE and Brier before and after scaling."""
    record = records.Record.find(name, project_root() / "executed")
    scores = record.predictions()
    marks = [c.removeprefix("score_") for c in scores.columns if c.startswith("score_")]
    parts = {split: scores[scores["split"] == split] for split in ("val", "test")}
    labels = {s: p[[f"label_{m}" for m in marks]].to_numpy(float) for s, p in parts.items()}
    probs = {s: p[[f"score_{m}" for m in marks]].to_numpy(float) for s, p in parts.items()}
    _, report = evaluate.calibrate_marks(labels, probs, marks, n_bins)
    return [{"record": record.path.name, "mark": mark, "T": r["temperature"],
             "ECE before": r["before"]["ece"], "ECE after": r["after"]["ece"],
             "Brier before": r["before"]["brier"], "Brier after": r["after"]["brier"],
             "n val": len(parts["val"]), "n test": len(parts["test"])} for mark, r in report.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", help="record folders or experiment ids (newest record)")
    parser.add_argument("--bins", type=int, default=10, help="equal-width bins of the ECE")
    parser.add_argument("--out", help="markdown file to write")
    args = parser.parse_args()
    rows = [row for name in args.records for row in calibration_rows(name, args.bins)]
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = (f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values())
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        command = f"python benchmarks/calibration.py {' '.join(args.records)} --out {args.out}"
        text = (f"# Calibration\n\nTemperature scaling (one T per mark) fitted on each record's "
                f"validation scores and read on its test scores: expected calibration error ({args.bins} "
                f"equal-width bins) and Brier score before and after. Measured {datetime.date.today()} "
                f"with\n\n    {command}\n\n{table}\n")
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
