"""What the records weigh in git: the median record, the total, the largest file, and each record's bytes by
kind.

    python benchmarks/record_size.py                      # executed/ of this checkout
    python benchmarks/record_size.py /tmp/exec_copy --out benchmarks/records.md

A record is counted without artifacts/ (git ignores it). Kinds: `png` (files under figures/ and any other
.png), `notebook base64` (the images embedded in the executed .ipynb outputs, as stored), `notebook text`
(the rest of the .ipynb), `html`, and `other` (parameters, history, metrics, predictions, …).
"""

import argparse
import datetime
import json
import statistics
from pathlib import Path

from seq2epi.lab.io import atomic_path
from seq2epi.lab.parameters import project_root

KINDS = ["png", "notebook base64", "notebook text", "html", "other"]


def embedded_image_bytes(notebook: Path) -> int:
    """Characters of base64 image data in an executed notebook's outputs (one byte each in the file)."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return sum(len("".join(text) if isinstance(text, list) else text)
               for cell in cells for output in cell.get("outputs", [])
               for kind, text in output.get("data", {}).items() if kind.startswith("image/"))


def record_files(record: Path) -> list[Path]:
    """A record's files as git keeps them: everything but artifacts/."""
    return [p for p in record.rglob("*") if p.is_file() and "artifacts" not in p.relative_to(record).parts]


def bytes_by_kind(record: Path) -> dict[str, int]:
    sizes = dict.fromkeys(KINDS, 0)
    for path in record_files(record):
        size = path.stat().st_size
        if path.suffix == ".png":
            sizes["png"] += size
        elif path.suffix == ".ipynb":
            images = embedded_image_bytes(path)
            sizes["notebook base64"] += images
            sizes["notebook text"] += size - images
        elif path.suffix == ".html":
            sizes["html"] += size
        else:
            sizes["other"] += size
    return sizes


def measure(executed: Path) -> tuple[list[dict], dict]:
    """One row per record (its bytes by kind and in all) and the summary over them."""
    folders = sorted(p for p in executed.iterdir() if p.is_dir() and (p / "parameters.yaml").exists())
    rows = [{"record": p.name, **bytes_by_kind(p)} for p in folders]
    for row in rows:
        row["total"] = sum(row[k] for k in KINDS)
    files = [f for p in folders for f in record_files(p)]
    largest = max(files, key=lambda f: f.stat().st_size)
    shared = sum(f.stat().st_size for f in executed.iterdir() if f.is_file())  # INDEX.md, stylesheets
    summary = {"records": len(rows), "median record": statistics.median(r["total"] for r in rows),
               "total": sum(r["total"] for r in rows) + shared,
               "largest file": f"{largest.relative_to(executed)} ({largest.stat().st_size / 1e6:.2f} MB)",
               **{f"all {kind}": sum(r[kind] for r in rows) for kind in KINDS}}
    return rows, summary


def megabytes(value) -> str:
    return f"{value / 1e6:.3f}" if isinstance(value, (int, float)) and value > 1000 else str(value)


def markdown(rows: list[dict], summary: dict) -> str:
    lines = ["| measure | MB |", "|---|---|", *(f"| {k} | {megabytes(v)} |" for k, v in summary.items()), "",
             "| record | " + " | ".join(KINDS) + " | total |", "|" + "---|" * (len(KINDS) + 2)]
    lines += ["| " + " | ".join([row["record"], *(megabytes(row[k]) for k in [*KINDS, "total"])]) + " |"
              for row in sorted(rows, key=lambda r: -r["total"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executed", nargs="?", default=str(project_root() / "executed"),
                        help="the folder of records (default: this checkout's executed/)")
    parser.add_argument("--out", help="markdown file to write")
    args = parser.parse_args()
    rows, summary = measure(Path(args.executed))
    table = markdown(rows, summary)
    print(table)
    if args.out:
        text = (f"# Record sizes\n\nMeasured {datetime.date.today()} with "
                f"`python benchmarks/record_size.py {args.executed}` (MB = 10^6 bytes; records without "
                f"artifacts/).\n\n{table}\n")
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
