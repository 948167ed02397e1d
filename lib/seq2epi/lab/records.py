"""Records: executed/<date>_<experiment>[_n]/ folders: create, find, read, summarise, index."""

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import seq2epi
from seq2epi.lab import io
from seq2epi.lab.metrics_file import read_metrics
from seq2epi.lab.parameters import idle_stages, project_root

INDEX_COLUMNS = ["date", "experiment", "record", "data", "mark", "ninp", "nlayers", "kmers", "epochs",
                 "best val AUC", "test AUROC", "test MCC", "status", "note"]
INDEX_HEAD = ["# Lab records", "",
              "One row per record of `seq2epi run` / `seq2epi compare`; open its HTML for the notebook.", ""]
CUT_KEYS = ("max_sequences", "max_test_sequences", "train_size", "train_genome_bp")  # a reduced run's data
MARKS = ("FAILED", "INTERRUPTED")  # files the runner leaves in a record that did not finish

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


def read_parameters(record: Path) -> dict:
    path = record / "parameters.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def record_order(record: Path) -> tuple[str, str, int]:
    """Date, experiment, then the _2, _3 … suffix as a number (so _9 comes before _13)."""
    experiment = read_parameters(record).get("experiment", "")
    rest = record.name[len("YYYY-MM-DD_"):]
    suffix = rest[len(experiment) + 1:] if experiment and rest.startswith(f"{experiment}_") else ""
    return record.name[:10], experiment or rest, int(suffix) if suffix.isdigit() else 1


def records_of(executed: Path, experiment: str) -> list[Path]:
    """The records of one experiment, oldest first."""
    found = executed.glob(f"*_{experiment}*")
    return sorted((p for p in found if read_parameters(p).get("experiment") == experiment), key=record_order)


def unfinished_record(executed: Path, experiment: str) -> Path | None:
    """The newest record of the experiment if it has no metrics yet: the one `resume: true` continues."""
    records = records_of(executed, experiment)
    return records[-1] if records and not (records[-1] / "metrics.json").exists() else None


CHECKPOINT = Path("artifacts") / "checkpoints" / "best.pt"  # the validation-chosen model, with its spec
CALIBRATION = CHECKPOINT.parent / "calibration.json"  # 03's temperatures, beside it (calibrate.FILENAME)
DATASET = Path("artifacts") / "dataset.npz"
DATASET_ARRAYS = ("tokens", "lengths", "labels", "split")  # what the training data's fingerprint hashes


def training_window(params: dict, dataset: dict | None) -> int:
    """The length the model saw in training: genome mode's window, or in csv mode the crop, or with no crop
    the longest training sequence of the dataset (datasets.load_dataset)."""
    if params.get("input") != "csv":
        return int(params.get("window", 200))
    if int(params.get("crop_length", 0)):
        return int(params["crop_length"])
    return int(dataset["lengths"][dataset["split"] == "train"].max())


def fingerprint(dataset: dict) -> str:
    """sha256 of the dataset's arrays (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name in DATASET_ARRAYS:
        array = np.ascontiguousarray(dataset[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def inference_spec(params: dict, dataset: dict | None) -> dict:
    """How the model trained on `dataset` (datasets.load_dataset; None: not kept) with `params` (a record's
    parameters.yaml) must be used: what 02_train stores in every checkpoint (03_evaluate adds the thresholds
    and temperatures to best.pt's)."""
    lengths = None if dataset is None else dataset["lengths"][dataset["split"] == "train"]
    marks = (dataset or {}).get("marks") or params.get("marks") or [params.get("mark", "score")]  # 01 wrote
    return {"marks": [str(m) for m in marks],
            "window": training_window(params, dataset),
            "fixed_length": None if lengths is None else bool(len(np.unique(lengths)) == 1),
            "kmers": [int(k) for k in params.get("kmers", [])],
            "predict_stride": int(params.get("predict_stride", 50)),
            "rc_average": bool(params.get("rc_average", False)),
            "precision": str(params.get("precision", "auto")),
            "parameters": json.loads(json.dumps(params, default=str)),  # plain types: torch.load reads them
            "data_sha256": None if dataset is None else fingerprint(dataset), "version": seq2epi.__version__,
            "thresholds": None, "temperature": None}


@dataclass
class Record:
    """A record folder and what it holds for reading: its parameters, epoch history and test metrics (None
    when absent); its layout; the spec its model is used by, and that model as a ready predictor."""

    path: Path
    params: dict
    history: pd.DataFrame | None
    metrics: dict | None

    @classmethod
    def find(cls, name: str | os.PathLike, executed: Path | None = None) -> "Record":
        """A record by its folder name in `executed` (the workbook's executed/ by default) or its path, or the
        newest record of an experiment id."""
        name = str(name)
        if Path(name).is_dir() and (Path(name) / "parameters.yaml").is_file():
            return read_record(Path(name))
        executed = Path(executed) if executed is not None else project_root() / "executed"
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"{name!r} is not a record or experiment name: expected a folder name in "
                             f"{executed}.")
        if (executed / name).is_dir():
            return read_record(executed / name)
        matches = records_of(executed, name)
        if not matches:
            raise FileNotFoundError(f"no record named {name!r} and no record of experiment {name!r} in "
                                    f"{executed}.")
        return read_record(matches[-1])

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def mark(self) -> str:
        return ", ".join(self.params.get("marks") or []) or self.params.get("mark", "")

    @property
    def notebooks(self) -> list[Path]:
        return sorted(self.path.glob("[0-9][0-9]_*.ipynb"))

    @property
    def html(self) -> list[Path]:
        return sorted(self.path.glob("[0-9][0-9]_*.html"))

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.tsv"

    @property
    def parameters_path(self) -> Path:
        return self.path / "parameters.yaml"

    def predictions(self) -> pd.DataFrame:
        """Every validation and test score (03_evaluate's predictions.tsv.gz)."""
        return pd.read_csv(self.path / "predictions.tsv.gz", sep="\t")

    def unfinished(self) -> str | None:
        """The first line of the FAILED or INTERRUPTED file of a run that did not finish, else None."""
        for mark in (m for m in MARKS if (self.path / m).exists()):
            reason = (self.path / mark).read_text().strip().splitlines() or ["no reason given"]
            return f"its {mark} file: {reason[0]}"
        return None

    def spec(self, checkpoint: dict | None = None) -> dict:
        """The checkpoint's inference spec; a checkpoint older than specs gets it from the record's files
        (parameters.yaml, dataset.npz, metrics.json, calibration.json). The checkpoint is read from the
        record when not given."""
        if checkpoint is None and self.checkpoint.is_file():
            import torch  # only when a checkpoint is read

            checkpoint = torch.load(self.checkpoint, map_location="cpu", weights_only=True, mmap=True)
        found = dict((checkpoint or {}).get("spec") or {})
        if "window" not in found:
            found = {**self._spec_from_files(), **{k: v for k, v in found.items() if v is not None}}
        if found.get("thresholds") is None and self.metrics is not None:
            found["thresholds"] = [self._threshold(mark) for mark in found["marks"]]
        if found.get("temperature") is None and (self.path / CALIBRATION).is_file():
            calibration = json.loads((self.path / CALIBRATION).read_text())
            if list(calibration["marks"]) != found["marks"]:
                raise ValueError(f"{self.path / CALIBRATION} calibrates marks {calibration['marks']}, but "
                                 f"record {self.name} predicts {found['marks']}.")
            found["temperature"] = [float(t) for t in calibration["temperature"]]
        return found

    def _spec_from_files(self) -> dict:
        dataset = self.path / DATASET
        if not dataset.is_file():
            if self.params.get("input") == "csv" and not int(self.params.get("crop_length", 0)):
                raise FileNotFoundError(f"record {self.name} trained on whole csv sequences (crop_length 0), "
                                        f"and its window is their longest, read from {dataset}, which is "
                                        "missing.")
            return inference_spec(self.params, None)
        with np.load(dataset, allow_pickle=False) as found:
            return inference_spec(self.params, {name: found[name] for name in DATASET_ARRAYS})

    def _threshold(self, mark: str) -> float:
        per_mark = self.metrics.get("marks", {}).get(mark, {}).get("transformer", {})
        value = per_mark.get("threshold", self.metrics.get("transformer", {}).get("threshold"))
        if value is None:
            raise ValueError(f"{self.metrics_path} holds no validation-chosen threshold for mark {mark!r} "
                             f"(expected marks.{mark}.transformer.threshold).")
        return float(value)

    def predictor(self, device: str = "cpu", batch_size: int | str = 256, window: int | None = None):
        """The record's model ready to predict (predict.Predictor): in eval mode on `device`, with the marks,
        window, stride, rc_average, thresholds and temperatures of its spec; `window` overrides the spec's
        within what the model takes."""
        from seq2epi.model import predict  # torch is imported only when a model is asked for

        return predict.Predictor.of_record(self, device, batch_size, window)


def test_metrics(record: Record, by: str) -> pd.DataFrame:
    """One row per mark and model of a record's metrics.json: test AUROC and MCC with their 95 % intervals,
    the overlap-free AUROC where scored, the training windows, and the record's value of the parameter `by`
    (e.g. train_size)."""
    rows = []
    for mark, models in (record.metrics or {}).get("marks", {}).items():
        for model, m in models.items():
            free = m.get("overlap_free", {})
            rows.append({"record": record.name, "experiment": record.params.get("experiment"), "mark": mark,
                         by: record.params.get(by), "model": model, "auroc": m["auroc"],
                         "auroc_low": m["ci95"]["auroc"][0], "auroc_high": m["ci95"]["auroc"][1],
                         "mcc": m["mcc"], "mcc_low": m["ci95"]["mcc"][0], "mcc_high": m["ci95"]["mcc"][1],
                         "overlap_free_auroc": free.get("auroc", float("nan")),
                         "n_train": record.metrics.get("n_train")})
    return pd.DataFrame(rows)


BASELINES = {"gc_content": "GC content", "kmer_logistic": "k-mer LR"}


def learning_curve(compared: list[Record], by: str) -> pd.DataFrame:
    """test_metrics of records of one dataset along `by`, each row named by its `curve`: the experiment for
    its transformer, "<experiment> stack" for its stack with the k-mer LR, and the baseline's name for a
    baseline (fitted on the same windows by every record of one `by` value, so kept once per value). A
    train_size of 0 (all) becomes the record's count of training windows."""
    table = pd.concat([test_metrics(r, by) for r in compared], ignore_index=True)
    if table.empty:
        return table
    if by == "train_size":  # 0 is all of them: the record's own count
        size = np.where(table[by] == 0, pd.to_numeric(table["n_train"], errors="coerce"), table[by])
        table[by] = size if np.isnan(size).any() else size.astype(int)
    baseline = table["model"].isin(list(BASELINES))
    own = table["experiment"] + table["model"].map({"stack": " stack"}).fillna("")
    table["curve"] = table["model"].map(BASELINES).where(baseline, own)
    keep = ~(baseline & table.duplicated(["mark", by, "curve"]))
    return table[keep & table["model"].isin(["transformer", "stack", *BASELINES])].reset_index(drop=True)


def _row_at(record: Record, by: str, at_epoch: int) -> dict:
    """A trained record's validation metrics at `at_epoch` (0: its best validation epoch), with its test
    AUROC and MCC when it was tested."""
    history = record.history
    if history is None:
        raise ValueError(f"record {record.name} has no history.tsv: it was not trained")
    if at_epoch and at_epoch not in set(history["epoch"]):
        raise ValueError(f"{record.name}/history.tsv has no epoch {at_epoch}; it has epochs 1-{len(history)}")
    epoch = at_epoch or history.loc[history["val_auc"].idxmax(), "epoch"]
    at = history.set_index("epoch", drop=False).loc[epoch]
    row = {"record": record.name, "mark": record.mark, by: str(record.params.get(by)),
           "epoch": int(at["epoch"]), **{c: at[c] for c in ("val_loss", "val_auc", "val_acc", "val_mcc")}}
    if record.metrics is not None:
        test = record.metrics["transformer"]
        row.update({"test_auroc": test["auroc"], "test_mcc": test["mcc"]})
    return row


def compare_at_epoch(compared: list[Record], by: str, at_epoch: int = 0) -> tuple[dict, pd.DataFrame]:
    """05's comparison: each record's history under a label naming its `by` value (and its mark when the
    records predict several), and a table of each at `at_epoch` (0: its best validation epoch)."""
    several_marks = len({record.mark for record in compared}) > 1
    runs, rows = {}, []
    for record in compared:
        rows.append(_row_at(record, by, at_epoch))
        label = f"{record.params['experiment']} ({by}={record.params.get(by)})"
        runs[f"{label} {record.mark}" if several_marks else label] = record.history
    return runs, pd.DataFrame(rows)


def model_record(checkpoint: str, here: Path | None = None) -> Record:
    """The record whose model a notebook running in the record `here` (default: the working directory)
    predicts with: another record named by `checkpoint` (its name or experiment id, beside `here`), else
    `here` itself."""
    here = Path.cwd() if here is None else Path(here)
    return Record.find(checkpoint, here.parent) if checkpoint else read_record(here)


def read_record(path: Path) -> Record:
    """A record folder's parameters, history and metrics (metrics.json checked against its schema)."""
    history, metrics = path / "history.tsv", path / "metrics.json"
    return Record(path, read_parameters(path),
                  pd.read_csv(history, sep="\t") if history.exists() else None,
                  read_metrics(metrics) if metrics.exists() else None)


def record_status(record: Record) -> str:
    """failed | interrupted | complete | map | scored | pretrained | partial; a stage the runner skipped is
    named."""
    for mark in MARKS:
        if (record.path / mark).exists():
            return mark.lower()
    if record.metrics is not None or record.params.get("experiment", "").startswith("compare_"):
        skipped = [stage[:2] for stage in idle_stages(record.params)
                   if not (record.path / f"{stage}.ipynb").exists()]
        return "complete" + "".join(f", {s} skipped" for s in skipped)
    if (record.path / "06_score.html").exists():
        return "scored"
    if (record.path / "04_predict_genome.html").exists():
        return "map"
    trained = (record.path / "02_train.ipynb").exists()
    return "pretrained" if (record.path / "00_pretrain.html").exists() and not trained else "partial"


def _data_of(record: Record) -> str:
    params = record.params
    samples = params.get("samples") or [{}]
    data = {"csv": params.get("train_csv"), "genome": params.get("sample_sheet") or samples[0].get("fasta"),
            "simulate": "simulated genome", "genes": params.get("gene_table"),
            "genomewide": params.get("segmentation_bed") or params.get("genome_fasta")}
    data = data.get(params.get("input"), "")
    if not (record.path / "01_data_prep.ipynb").exists():  # a map or scoring job with another record's model
        data = params.get("predict_fasta") or params.get("score_vcf") or params.get("score_input") or ""
    cuts = [f"{key} {params[key]}" for key in CUT_KEYS if params.get(key)]
    return f"{data} (cut: {', '.join(cuts)})" if cuts else data or ""


def summarize_record(path: Path) -> dict:
    """One INDEX.md row from a record's parameters.yaml, history.tsv and metrics.json."""
    record = read_record(path)
    params = record.params
    trained = (path / "02_train.ipynb").exists()
    row = {"date": path.name[:10], "experiment": params.get("experiment", ""), "record": path.name,
           "data": _data_of(record), "mark": params.get("mark", ""), "note": params.get("note", ""),
           "status": record_status(record)}
    for key in ("ninp", "nlayers", "kmers", "epochs"):
        row[key] = params.get(key, "") if trained else ""
    if record.history is not None and "val_auc" in record.history:
        row["best val AUC"] = f"{record.history['val_auc'].max():.4f}"
    elif record.history is not None and "val_spearman" in record.history:  # a regression: Spearman's rho
        row["best val AUC"] = f"ρ {record.history['val_spearman'].max():.4f}"
    if record.metrics is not None and "genes" in record.metrics:
        mark = params.get("mark") if params.get("mark") in record.metrics["genes"] else \
            next(iter(record.metrics["genes"]), None)
        rho = record.metrics["genes"].get(mark, {}).get("transformer", {}).get("spearman", float("nan"))
        row["test AUROC"] = f"ρ {rho:.4f} ({mark})"
    elif record.metrics is not None:
        test = record.metrics.get("transformer", {})
        row["test AUROC"] = f"{test.get('auroc', float('nan')):.4f}"
        row["test MCC"] = f"{test.get('mcc', float('nan')):.4f}"
    return row


def index_cell(value) -> str:
    """A value as one markdown table cell: `|` escaped, line breaks folded into spaces."""
    return " ".join(str(value).replace("\\", "\\\\").replace("|", "\\|").split())


def index_link(record: str) -> str:
    """A markdown link to a record folder that no space, `|`, bracket or parenthesis in its name breaks."""
    text = index_cell(record).replace("[", "\\[").replace("]", "\\]")
    return f"[{text}]({urllib.parse.quote(record)}/)"


@contextlib.contextmanager
def index_lock(executed: Path) -> Iterator[None]:
    """Hold an exclusive lock on the executed/ folder (fcntl): one rebuild of INDEX.md at a time, so the run
    that finishes last writes an index that holds every record."""
    fd = os.open(executed, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_index(executed: Path) -> Path:
    """Rebuild executed/INDEX.md from the records themselves, under index_lock: one row per record, newest
    first."""
    with index_lock(executed):
        records = [p for p in executed.iterdir() if (p / "parameters.yaml").exists()]
        rows = [summarize_record(p) for p in sorted(records, key=record_order, reverse=True)]
        table = pd.DataFrame(rows, columns=INDEX_COLUMNS).fillna("")
        lines = [*INDEX_HEAD, "| " + " | ".join(INDEX_COLUMNS) + " |", "|" + "---|" * len(INDEX_COLUMNS)]
        for _, row in table.iterrows():
            cells = [index_cell(row[c]) for c in INDEX_COLUMNS]
            cells[INDEX_COLUMNS.index("record")] = index_link(row["record"])
            lines.append("| " + " | ".join(cells) + " |")
        index = executed / "INDEX.md"
        with io.atomic_path(index) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    return index
