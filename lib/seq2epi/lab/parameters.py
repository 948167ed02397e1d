"""Parameters: base.yaml + parameters/<experiment>.yaml + overrides, checked (declared, typed, in range)
before anything runs; `data_dir` resolved where data are read, never stored as a machine path."""

import ast
import datetime
import json
import math
import os
import re
from pathlib import Path

import yaml

STAGES = ("00_pretrain", "01_data_prep", "02_train", "03_evaluate", "03_evaluate_genes", "04_predict_genome",
          "06_score")

# Impossible numbers are refused before a record is created. Intervals as a mathematician writes them:
# "[1, inf)" means at least 1, "(0, 1)" strictly between 0 and 1; a list value is checked element-wise.
RANGES = {
    "val_fraction": "(0, 1)", "crop_length": "[0, inf)", "window": "[1, inf)",
    "negatives_per_positive": "(0, inf)", "max_sequences": "[0, inf)", "max_n_fraction": "[0, 1]",
    "sim_chroms": "[1, inf)", "sim_chrom_len": "[1, inf)",
    "ninp": "[1, inf)", "nhead": "[1, inf)", "nhid": "[1, inf)", "nlayers": "[1, inf)", "kmers": "[1, inf)",
    "dropout": "[0, 1)", "attention_dropout": "[0, 1)",
    "epochs": "[1, inf)", "batch_size": "[1, inf)", "lr": "(0, inf)", "lr_scale": "(0, inf)",
    "warmup": "[1, inf)", "weight_decay": "[0, inf)", "clip_grad": "(0, inf)", "num_workers": "[0, inf)",
    "nproc": "[1, inf)",
    "predict_batch_size": "[0, inf)", "attribution_n": "[0, inf)", "kmer_sequences": "[0, inf)",
    "predict_stride": "[1, inf)", "map_block": "[1, inf)", "population_varieties": "[0, inf)",
    "changed_delta": "(0, 1]", "max_test_sequences": "[0, inf)", "modisco_n": "[0, inf)",
    "train_size": "[0, inf)", "background_n": "[0, inf)", "background_margin": "[0, inf)",
    "calibration_bins": "[2, inf)",
    "pretrain_windows": "[1, inf)", "pretrain_window": "[1, inf)", "pretrain_epochs": "[1, inf)",
    "mask_fraction": "(0, 1)", "mask_span": "[1, inf)", "repeat_weight": "[0, 1]",
    "pretrain_exclude_margin": "[0, inf)", "kmer_features": "[0, 8]", "freeze_encoder_epochs": "[0, inf)",
}


# Keys whose default is null still have a type; and the elements of a list whose default is empty.
TYPES = {"data_dir": str, "attention_dropout": float, "train_seed": int}
ELEMENT_TYPES = {"pretrain_fasta": str, "pretrain_csv": str, "pretrain_exclude_regions": str, "marks": str,
                 "samples": dict, "background_exclude": str, "val_chroms": str, "test_chroms": str,
                 "val_varieties": str, "test_varieties": str, "predict_regions": str, "varieties": str,
                 "export_varieties": str}
RECIPES = "recipes"  # parameters/recipes/<name>.yaml: keys of base.yaml that experiments extend
EXTENDS = "extends"


def project_root() -> Path:
    """The workbook: the nearest folder at or above the working directory with parameters/ and notebooks/."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "parameters").is_dir() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(f"no seq2epi workbook (parameters/ and notebooks/) at or above {Path.cwd()}")


def data_dir(value: str | None = None, root: Path | None = None) -> Path:
    """Where experiments read data: the `data_dir` parameter, else $SEQ2EPI_DATA, else data/; a relative
    path is relative to the workbook (so a notebook running inside its record finds the same folder)."""
    path = Path(value or os.environ.get("SEQ2EPI_DATA") or "data").expanduser()
    return path if path.is_absolute() else ((root or project_root()) / path).resolve()


def optional_stages(params: dict) -> set[str]:
    """Stages an experiment does not ask for: 00_pretrain unless it names sequence to pretrain on; 06_score
    unless it names a record to score with, and then every other stage (a scoring job trains nothing); of the
    two evaluations, 03_evaluate_genes for a per-gene regression (input: genes) and 03_evaluate otherwise."""
    if params.get("score_record"):
        return set(STAGES) - {"06_score"}
    pretraining = params.get("pretrain_fasta") or params.get("pretrain_csv")
    evaluation = {"03_evaluate"} if params.get("input") == "genes" else {"03_evaluate_genes"}
    return {"06_score"} | evaluation | (set() if pretraining else {"00_pretrain"})


def idle_stages(params: dict) -> dict[str, str]:
    """Stages with nothing to do under these parameters, with the reason: the runner skips them."""
    if params.get("input") == "genes":
        return {"04_predict_genome": "a per-gene regression (its record holds no genome-wide model)"}
    if params.get("input") == "csv" and not params.get("predict_fasta"):
        return {"04_predict_genome": "no genome to predict (a CSV experiment without predict_fasta)"}
    return {}


def declared_parameters(notebook: Path) -> dict:
    """The names and defaults of a notebook's `parameters` cell."""
    cells = [c for c in json.loads(notebook.read_text())["cells"]
             if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{notebook} has no cell tagged 'parameters'")
    source = cells[0]["source"]
    declared = {}
    for node in ast.parse(source if isinstance(source, str) else "".join(source)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            declared[node.targets[0].id] = ast.literal_eval(node.value)
    return declared


def notebook_values(namespace: dict, stage: str, root: Path | None = None) -> dict:
    """The values a running notebook holds for the parameters its template (`stage`) declares, as a dict."""
    template = (root or project_root()) / "notebooks" / f"{stage}.ipynb"
    return {name: namespace[name] for name in declared_parameters(template)}


class _Loader(yaml.SafeLoader):
    """YAML that reads 1e-4 as a number (YAML 1.1 wants 1.0e-4), as people write learning rates."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$|^[-+]?[0-9][0-9_]*\.[0-9_]*$|"
               r"^[-+]?\.[0-9_]+$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def read_yaml(text: str, source: str):
    """Plain YAML values; a syntax error or a `!!python/...` tag: one sentence naming source, line, column."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        if isinstance(err, yaml.constructor.ConstructorError):
            tag = re.search(r"'(?:tag:yaml.org,2002:)?([^']+)'", err.problem or "")
            raise ValueError(f"{where}: the tag !!{tag.group(1) if tag else '?'} is refused; parameter files "
                             "hold plain values (numbers, text, lists)") from None
        raise ValueError(f"{where}: {err.problem or err.context} (not valid YAML)") from None
    except yaml.reader.ReaderError as err:
        raise ValueError(f"{source}, character {err.position + 1}: {err.reason} (not valid YAML)") from None


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` from the command line; the value is read as YAML (so 3, 0.1, [7, 13], true work)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"override {text!r} is not of the form key=value")
    return key.strip(), read_yaml(value, f"-p {text}")


def _read_file(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"no parameter file {path}")
    content = read_yaml(path.read_text(), str(path)) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path} must hold flat key: value pairs, found {type(content).__name__}")
    return content


def base_defaults(root: Path) -> dict:
    """The workbook's defaults: parameters/base.yaml."""
    return _read_file(root / "parameters" / "base.yaml")


def _type_name(value) -> str:
    return "date (quote it to make it text)" if isinstance(value, datetime.date) else type(value).__name__


def _is_a(value, expected: type) -> bool:
    """isinstance, where an int is a float and a bool is not an int."""
    if isinstance(value, bool):
        return expected is bool
    return isinstance(value, expected) or (expected is float and isinstance(value, int))


def _check_type(key: str, value, default, source: str) -> None:
    """Refuse a value of another type than the default's (or TYPES'), or a list element of another type than
    the default's elements (or ELEMENT_TYPES')."""
    if value is None or (default is None and key not in TYPES):
        return
    expected = TYPES.get(key) or (float if isinstance(default, float) else type(default))
    if not _is_a(value, expected):
        like = f" like the default {default!r}" if default is not None else ""
        shown = value.isoformat() if isinstance(value, datetime.date) else repr(value)
        raise ValueError(f"{source}: parameter {key!r} = {shown} is a {_type_name(value)}, "
                         f"expected a {expected.__name__}{like}")
    element = ELEMENT_TYPES.get(key) or (type(default[0]) if isinstance(default, list) and default else None)
    wrong = [item for item in value if not _is_a(item, element)] if element else []
    if wrong:
        raise ValueError(f"{source}: parameter {key!r} = {value!r} holds {wrong[0]!r}, a "
                         f"{_type_name(wrong[0])}; expected a list of {element.__name__}")


def check_range(key: str, value, source: str) -> None:
    """Refuse a number outside RANGES[key], naming where it came from."""
    if key not in RANGES or value is None:
        return
    left, low, high, right = re.fullmatch(r"([\[(])(\S+), (\S+)([\])])", RANGES[key]).groups()
    low, high = float(low), float(high) if high != "inf" else math.inf
    for number in value if isinstance(value, list) else [value]:
        above = number >= low if left == "[" else number > low
        below = number <= high if right == "]" else number < high
        if not (above and below):
            raise ValueError(f"{source}: parameter {key!r} = {value!r} is impossible; expected a number in "
                             f"{RANGES[key]}")


def check_experiment_name(experiment: str, root: Path) -> Path:
    """The parameter file of an experiment: a plain file stem in parameters/, nothing else."""
    path = root / "parameters" / f"{experiment}.yaml"
    if Path(experiment).name != experiment or experiment.startswith(".") or not path.is_file():
        known = sorted(p.stem for p in (root / "parameters").glob("*.yaml") if p.stem != "base")
        raise ValueError(f"experiment {experiment!r} is not a parameter file in {root / 'parameters'}; "
                         f"expected one of {', '.join(known)}")
    return path


def recipe_chain(path: Path, root: Path) -> list[Path]:
    """The recipes a parameter file extends, the most general first (a recipe may extend another)."""
    chain, current = [], path
    while True:
        name = _read_file(current).get(EXTENDS)
        if name is None:
            return chain
        recipe = root / "parameters" / f"{name}.yaml"
        if not isinstance(name, str) or not name.startswith(f"{RECIPES}/") or not recipe.is_file():
            known = sorted(f"{RECIPES}/{p.stem}" for p in (root / "parameters" / RECIPES).glob("*.yaml"))
            raise ValueError(f"{current}: extends {name!r}, which is not a recipe; expected one of "
                             f"{', '.join(known) or f'the files in parameters/{RECIPES}/'}")
        if recipe in chain or recipe == path:
            cycle = " -> ".join(p.stem for p in [path, *reversed(chain), recipe])
            raise ValueError(f"{current}: extends {name!r}, which extends it back ({cycle}); recipes may not "
                             "form a cycle")
        chain.insert(0, recipe)
        current = recipe


def _declared(root: Path) -> dict:
    declared = {}
    for stage in STAGES:
        declared.update(declared_parameters(root / "notebooks" / f"{stage}.ipynb"))
    return declared


def load_parameters(experiment: str, root: Path, overrides: dict | None = None) -> dict:
    """base.yaml, then the recipes parameters/<experiment>.yaml extends, then the file, then overrides;
    unknown keys, wrong types and impossible numbers raise. `data_dir` stays as given (None: resolved where
    the data are read)."""
    base_path = root / "parameters" / "base.yaml"
    base = _read_file(base_path)
    declared = _declared(root)
    params, source_of = dict(base), dict.fromkeys(base, str(base_path))
    path = check_experiment_name(experiment, root)
    layers = [(str(p), _read_file(p)) for p in (*recipe_chain(path, root), path)]
    for source, values in (*layers, ("-p override", overrides or {})):
        for key, value in values.items():
            if key == EXTENDS and source != "-p override":
                continue
            if key not in declared:
                raise ValueError(f"{source}: unknown parameter {key!r}; the notebooks declare "
                                 f"{', '.join(sorted(declared))}")
            _check_type(key, value, base.get(key, declared[key]), source)
            params[key], source_of[key] = value, source
    for key, value in params.items():
        check_range(key, value, source_of.get(key, "the notebooks"))
    params["experiment"] = experiment
    return params
