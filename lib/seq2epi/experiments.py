"""Experiments: merge and check parameters, execute the notebooks into a dated record, index the records."""

import ast
import datetime
import json
import os
import re
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import yaml
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

STAGES = ("01_data_prep", "02_train", "03_evaluate", "04_predict_genome")
COMPARE_STAGE = "05_compare"
INDEX_COLUMNS = ["date", "experiment", "record", "data", "mark", "ninp", "nlayers", "kmers", "epochs",
                 "best val AUC", "test AUROC", "test MCC", "status", "note"]


class ExperimentError(RuntimeError):
    """A notebook of an experiment failed; carries the executed notebook's path and the error line."""

    def __init__(self, notebook: Path, error: str):
        super().__init__(f"{notebook} failed: {error}")
        self.notebook, self.error = notebook, error


def project_root() -> Path:
    """The workbook: the nearest folder at or above the working directory with parameters/ and notebooks/."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "parameters").is_dir() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(f"no seq2epi workbook (parameters/ and notebooks/) at or above {Path.cwd()}")


def data_dir(value: str | None = None) -> Path:
    """Where experiments read data: the `data_dir` parameter, else $SEQ2EPI_DATA, else data/."""
    return Path(value or os.environ.get("SEQ2EPI_DATA") or "data").expanduser().resolve()


def declared_parameters(notebook: Path) -> dict:
    """The names and defaults of a notebook's `parameters` cell."""
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{notebook} has no cell tagged 'parameters'")
    declared = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            declared[node.targets[0].id] = ast.literal_eval(node.value)
    return declared


class _Loader(yaml.SafeLoader):
    """YAML that reads 1e-4 as a number (YAML 1.1 wants 1.0e-4), as people write learning rates."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$|^[-+]?[0-9][0-9_]*\.[0-9_]*$|"
               r"^[-+]?\.[0-9_]+$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def read_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` from the command line; the value is read as YAML (so 3, 0.1, [7, 13], true work)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"override {text!r} is not of the form key=value")
    return key.strip(), read_yaml(value)


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"no parameter file {path}")
    content = read_yaml(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path} must hold flat key: value pairs, found {type(content).__name__}")
    return content


def _check_type(key: str, value, default, source: str) -> None:
    if default is None or value is None:
        return
    expected = float if isinstance(default, float) else type(default)
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ValueError(f"{source}: parameter {key!r} = {value!r} is a {type(value).__name__}, "
                         f"expected a {expected.__name__} like the default {default!r}")


def load_parameters(experiment: str, root: Path, overrides: dict | None = None) -> dict:
    """base.yaml, then parameters/<experiment>.yaml, then overrides; unknown keys and wrong types raise."""
    base = _read_yaml(root / "parameters" / "base.yaml")
    declared = {}
    for stage in STAGES:
        declared.update(declared_parameters(root / "notebooks" / f"{stage}.ipynb"))
    params = dict(base)
    path = root / "parameters" / f"{experiment}.yaml"
    sources = [(path, _read_yaml(path)), ("-p override", overrides or {})]
    for source, values in sources:
        for key, value in values.items():
            if key not in declared:
                raise ValueError(f"{source}: unknown parameter {key!r}; the notebooks declare "
                                 f"{', '.join(sorted(declared))}")
            _check_type(key, value, base.get(key, declared[key]), str(source))
            params[key] = value
    params["data_dir"] = str(data_dir(params.get("data_dir")))
    params["experiment"] = experiment
    return params


def new_record_dir(executed: Path, name: str, today: datetime.date | None = None) -> Path:
    """executed/<YYYY-MM-DD>_<name>, with _2, _3 … when that record exists: a record is never overwritten."""
    stem = f"{(today or datetime.date.today()).isoformat()}_{name}"
    for n in range(1, 1000):
        folder = executed / (stem if n == 1 else f"{stem}_{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"too many records named {stem} in {executed}")


def render_html(notebook: Path) -> Path:
    """Render an executed notebook next to itself as HTML."""
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    html = notebook.with_suffix(".html")
    tmp = html.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html)
    return html


def execute(template: Path, record: Path, parameters: dict, progress: bool = True) -> Path:
    """Run one template notebook with papermill into the record (cwd = record) and render it as HTML."""
    output = record / template.name
    os.environ["SEQ2EPI_PROGRESS"] = "terminal" if progress else "off"  # bars: terminal, not record
    try:
        papermill.execute_notebook(str(template), str(output), parameters=parameters, cwd=str(record),
                                   progress_bar=progress and {"desc": template.stem}, kernel_name="python3",
                                   extra_arguments=["--IPKernelApp.log_level=CRITICAL"])  # no TCP warning
    except PapermillExecutionError as err:
        raise ExperimentError(output, f"{err.ename}: {err.evalue}".strip()) from None
    finally:
        if output.exists():
            render_html(output)
    return output


def run_experiment(experiment: str, root: Path, stages=STAGES, overrides: dict | None = None,
                   progress: bool = True) -> Path:
    """Execute the experiment's notebooks into a new record and refresh executed/INDEX.md; with
    `resume: true`, continue the experiment's newest unfinished record instead."""
    params = load_parameters(experiment, root, overrides)
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; the stages are {', '.join(STAGES)}")
    record = (params["resume"] and _unfinished_record(root / "executed", experiment)) or \
        new_record_dir(root / "executed", experiment)
    (record / "FAILED").unlink(missing_ok=True)
    (record / "parameters.yaml").write_text(yaml.safe_dump(params, sort_keys=True))
    try:
        for stage in (s for s in STAGES if s in stages):
            template = root / "notebooks" / f"{stage}.ipynb"
            names = declared_parameters(template)
            execute(template, record, {k: v for k, v in params.items() if k in names}, progress)
    except ExperimentError as err:
        (record / "FAILED").write_text(f"{err}\n")
        write_index(root / "executed")
        raise
    write_index(root / "executed")
    return record


def _records_of(executed: Path, experiment: str) -> list[Path]:
    """The records of one experiment, oldest first (by date, then by the _2, _3 … suffix)."""
    def order(record: Path) -> tuple[str, int]:
        suffix = record.name[len("YYYY-MM-DD_") + len(experiment):]
        return record.name[:10], int(suffix[1:] or 1)

    records = (p for p in executed.glob(f"*_{experiment}*") if _experiment_of(p) == experiment)
    return sorted(records, key=order)


def _unfinished_record(executed: Path, experiment: str) -> Path | None:
    """The newest record of the experiment if it has no metrics yet: the one `resume: true` continues."""
    records = _records_of(executed, experiment)
    return records[-1] if records and not (records[-1] / "metrics.json").exists() else None


def find_record(executed: Path, name: str) -> Path:
    """A record folder by its name, or the newest record of an experiment id."""
    if (executed / name).is_dir():
        return executed / name
    matches = _records_of(executed, name)
    if not matches:
        raise FileNotFoundError(f"no record of experiment {name!r} in {executed}")
    return matches[-1]


def _experiment_of(record: Path) -> str | None:
    params = record / "parameters.yaml"
    return (yaml.safe_load(params.read_text()) or {}).get("experiment") if params.exists() else None


def run_compare(names: list[str], by: str, root: Path, at_epoch: int = 0, progress: bool = True,
                ensemble: bool = False) -> Path:
    """Execute 05_compare over existing records into a record of its own (with `ensemble`, their mean too)."""
    records = [find_record(root / "executed", n) for n in names]
    record = new_record_dir(root / "executed", f"compare_{by}")
    params = {"records": [str(r.resolve()) for r in records], "by": by, "at_epoch": at_epoch,
              "ensemble": ensemble}
    (record / "parameters.yaml").write_text(yaml.safe_dump({**params, "experiment": f"compare_{by}"}))
    execute(root / "notebooks" / f"{COMPARE_STAGE}.ipynb", record, params, progress)
    write_index(root / "executed")
    return record


def summarize_record(record: Path) -> dict:
    """One INDEX.md row from a record's parameters.yaml, history.tsv and metrics.json."""
    params = yaml.safe_load((record / "parameters.yaml").read_text()) or {}
    samples = params.get("samples") or [{}]
    data = {"csv": params.get("train_csv"), "genome": params.get("sample_sheet") or samples[0].get("fasta"),
            "simulate": "simulated genome"}.get(params.get("input"), "")
    trained = (record / "02_train.ipynb").exists()
    if not (record / "01_data_prep.ipynb").exists():  # a map of another record's model
        data = params.get("predict_fasta", "")
    row = {"date": record.name[:10], "experiment": params.get("experiment", ""), "record": record.name,
           "data": data, "mark": params.get("mark", ""),
           "note": params.get("note", "")}
    for key in ("ninp", "nlayers", "kmers", "epochs"):
        row[key] = params.get(key, "") if trained else ""
    history = record / "history.tsv"
    if history.exists():
        best = pd.read_csv(history, sep="\t")["val_auc"].max()
        row["best val AUC"] = f"{best:.4f}"
    metrics = record / "metrics.json"
    if metrics.exists():
        test = json.loads(metrics.read_text()).get("transformer", {})
        row["test AUROC"] = f"{test.get('auroc', float('nan')):.4f}"
        row["test MCC"] = f"{test.get('mcc', float('nan')):.4f}"
    return row


def write_index(executed: Path) -> Path:
    """Rewrite executed/INDEX.md: one row per record, newest first."""
    rows = []
    for record in sorted((p for p in executed.iterdir() if (p / "parameters.yaml").exists()), reverse=True):
        row = summarize_record(record)
        complete = (record / "metrics.json").exists() or row["experiment"].startswith("compare_")
        mapped = (record / "04_predict_genome.html").exists()
        status = "complete" if complete else "map" if mapped else "partial"
        row["status"] = "failed" if (record / "FAILED").exists() else status
        rows.append(row)
    table = pd.DataFrame(rows, columns=INDEX_COLUMNS).fillna("")
    lines = ["# Lab records", "",
             "One row per record of `seq2epi run` / `seq2epi compare`; open its HTML for the notebook.", "",
             "| " + " | ".join(INDEX_COLUMNS) + " |", "|" + "---|" * len(INDEX_COLUMNS)]
    for _, row in table.iterrows():
        cells = [str(row[c]) for c in INDEX_COLUMNS]
        cells[INDEX_COLUMNS.index("record")] = f"[{row['record']}]({row['record']}/)"
        lines.append("| " + " | ".join(cells) + " |")
    index = executed / "INDEX.md"
    tmp = index.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, index)
    return index
