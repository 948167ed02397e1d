"""metrics.json: its declared schema (a classification record's `marks`, a per-gene record's `genes`), the
one writer and the one reader, each checking the file against it."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from seq2epi.lab import io


@dataclass(frozen=True)
class Scalar:
    """A JSON value of one of `types` (a bool is never a number), named `word` in messages."""

    types: tuple[type, ...]
    word: str

    def problem(self, value, key: str) -> str | None:
        if isinstance(value, bool) and bool not in self.types or not isinstance(value, self.types):
            return f"key {key} is {_kind(value)}, expected {self.word}"
        return None


@dataclass(frozen=True)
class Interval:
    """A [low, high] pair of numbers."""

    def problem(self, value, key: str) -> str | None:
        if not isinstance(value, list) or len(value) != 2 or any(NUMBER.problem(v, key) for v in value):
            return f"key {key} is {_kind(value)}, expected a [low, high] pair of numbers"
        return None


@dataclass(frozen=True)
class Fields:
    """An object with declared keys: each of `required` present, each of `optional` may be, no other."""

    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)

    def problem(self, value, key: str) -> str | None:
        if not isinstance(value, dict):
            return f"{_name(key)} is {_kind(value)}, expected an object"
        missing = [name for name in self.required if name not in value]
        if missing:
            return f"required key {_join(key, missing[0])} is missing"
        for name, item in value.items():
            shape = self.required.get(name, self.optional.get(name))
            if shape is None:
                return f"key {_join(key, name)} is not declared"
            found = shape.problem(item, _join(key, name))
            if found:
                return found
        return None


@dataclass(frozen=True)
class Each:
    """An object whose every key (a mark, a model) holds `shape`."""

    shape: object

    def problem(self, value, key: str) -> str | None:
        if not isinstance(value, dict):
            return f"{_name(key)} is {_kind(value)}, expected an object"
        return next((p for name, item in value.items() if (p := self.shape.problem(item, _join(key, name)))),
                    None)


def _kind(value) -> str:
    return {bool: "a bool", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _name(key: str) -> str:
    return f"key {key}" if key else "the top level"


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


NUMBER = Scalar((int, float), "a number")  # NaN included: JSON's NaN reads as a float
INT = Scalar((int,), "an integer")
BOOL = Scalar((bool,), "a bool")
STR = Scalar((str,), "a string")
INT_OR_NULL = Scalar((int, type(None)), "an integer or null")

# one model's test metrics at its validation-chosen threshold (lab/metrics.binary_metrics, bootstrap_ci)
_BINARY = {**{k: NUMBER for k in ("auroc", "auprc", "mcc", "acc", "sens", "spec", "threshold")},
           **{k: INT for k in ("tp", "fp", "tn", "fn")}, "ci95": Each(Interval())}
OVERLAP_FREE = Fields({"n": INT}, _BINARY)  # only the count when those windows lack a class
MODEL = Fields(_BINARY, {"n": INT, "overlap_free": OVERLAP_FREE,
                         "C": NUMBER, "k_max": INT, "C_at_edge": BOOL,  # kmer_logistic's choice
                         "weights": Each(NUMBER)})  # stack's
CALIBRATION = Fields({"temperature": NUMBER, "n_bins": INT, "before": Each(NUMBER), "after": Each(NUMBER)})
CORRELATION = Fields({"spearman": NUMBER, "pearson": NUMBER, "n": INT, "spearman_ci": Interval(),
                      "pearson_ci": Interval()},
                     {"k_max": INT, "alpha": NUMBER, "alpha_at_edge": BOOL})  # kmer_ridge's choice

SCHEMA = {
    # 03_evaluate (analysis/evaluate.write_metrics): the headline mark's models at the top level as well
    "classification": Fields(
        {"marks": Each(Each(MODEL)), "transformer": MODEL, "gc_content": MODEL, "kmer_logistic": MODEL,
         "best_epoch": INT, "n_test": INT, "threshold_criterion": STR},
        {"stack": MODEL, "n_train": INT, "precision": STR, "rc_average": BOOL,  # older records lack these
         "calibration": Each(CALIBRATION), "strand": Each(Each(MODEL)),
         "n_test_overlapping_train": INT_OR_NULL}),
    # 03_evaluate_genes (analysis/evaluate_genes.write_gene_metrics)
    "per-gene": Fields({"genes": Each(Each(CORRELATION)), "best_epoch": INT, "n_train": INT, "n_val": INT,
                        "n_test": INT, "precision": STR}),
}


def kind_of(metrics) -> str:
    """The kind of record a metrics object is of: per-gene when it holds `genes`, else classification."""
    return "per-gene" if isinstance(metrics, dict) and "genes" in metrics else "classification"


def schema_problem(metrics) -> str | None:
    """The first way `metrics` breaks the schema of its kind, as a phrase; None when it follows it."""
    return SCHEMA[kind_of(metrics)].problem(metrics, "")


def _check(path: Path, metrics) -> None:
    problem = schema_problem(metrics)
    if problem:
        raise ValueError(f"{path} does not follow the {kind_of(metrics)} metrics.json schema: {problem}.")


def write_metrics(path, metrics: dict) -> dict:
    """Check `metrics` against the schema and write it as `path`, atomically; returned as written (numpy
    numbers as plain floats and ints)."""
    path = Path(path)
    plain = json.loads(json.dumps(metrics, default=_plain))
    _check(path, plain)
    io.write_json(path, plain)
    return plain


def _plain(value):
    """A numpy number as the Python number it holds (an integer stays an integer)."""
    return value.item() if hasattr(value, "item") else float(value)


def read_metrics(path) -> dict:
    """A metrics.json, checked against the schema of its kind."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON (line {error.lineno}): expected a metrics.json object."
                         ) from None
    _check(path, metrics)
    return metrics
