"""Experiments: execute the notebooks with papermill into a record, render them as HTML, index the record."""

import base64
import errno
import hashlib
import io
import os
import re
import sys
from pathlib import Path

import nbformat
import papermill
import yaml
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError
from PIL import Image

from seq2epi.lab import parameters, records
from seq2epi.lab.io import atomic_path
from seq2epi.lab.parameters import STAGES

COMPARE_STAGE = "05_compare"
# The kernel's own log lines ("running over TCP without encryption", "KeyboardInterrupt caught in kernel"
# after a failed cell) are not the experiment's news.
KERNEL_ARGUMENTS = ["--log-level=CRITICAL"]


class ExperimentError(RuntimeError):
    """A notebook of an experiment failed; carries the executed notebook's path and the error line."""

    def __init__(self, notebook: Path, error: str):
        super().__init__(f"{notebook} failed: {error}")
        self.notebook, self.error = notebook, error


STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", flags=re.S)
# nbconvert's loader of mermaid diagrams (11 kB in every HTML); no notebook draws one
MERMAID = re.compile(r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?</script>'
                     r"\s*<!-- End of mermaid configuration -->", flags=re.S)


def light_png(data: bytes) -> bytes:
    """An opaque PNG as a 256-colour palette PNG (a plot's colours fit; about a third of the bytes), or the
    PNG as it is when it is not opaque, already a palette or not made smaller."""
    image = Image.open(io.BytesIO(data))
    if image.mode == "P" or (image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] < 255):
        return data
    buffer = io.BytesIO()
    image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(buffer, "PNG", optimize=True)
    return min(data, buffer.getvalue(), key=len)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def link_figures(notebook: Path) -> int:
    """Make each PNG an executed notebook shows a link to the record's figures/ (the saved figure with the
    same picture, else written as figures/<notebook>-<n>.png), with every PNG there lightened (light_png);
    return how many images were linked. A figure is then stored once, shown by the notebook and its HTML."""
    figures = notebook.parent / "figures"
    saved = {hashlib.sha1(_lighten(p)).hexdigest(): p for p in sorted(figures.glob("*.png"))}
    nb = nbformat.read(notebook, as_version=4)
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    for n, out in enumerate(images, start=1):
        light = light_png(base64.b64decode(out.data.pop("image/png")))
        figure = saved.get(hashlib.sha1(light).hexdigest())
        if figure is None:
            figure = figures / f"{notebook.stem}-{n}.png"
            figures.mkdir(exist_ok=True)
            _write_bytes(figure, light)
        out.data["text/html"] = f'<img src="figures/{figure.name}" alt="{figure.stem}">'
    if images:
        with atomic_path(notebook) as tmp:
            nbformat.write(nb, tmp)
    return len(images)


def _lighten(png: Path) -> bytes:
    """Rewrite a PNG file as light_png and return its bytes."""
    data = png.read_bytes()
    light = light_png(data)
    if light is not data:
        _write_bytes(png, light)
    return light


def render_html(notebook: Path) -> Path:
    """Render an executed notebook next to itself as HTML, light: its figures are links to the record's PNGs
    (link_figures), the stylesheet is one file shared by the records (executed/nbconvert-<hash>.css,
    linked), and nbconvert's loader of mermaid diagrams is left out."""
    link_figures(notebook)
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    head, rest = body.split("</head>", 1)
    styles = list(STYLE.finditer(head))
    if styles:
        css = "\n".join(m.group(1) for m in styles)
        sheet = notebook.parent.parent / f"nbconvert-{hashlib.sha1(css.encode()).hexdigest()[:8]}.css"
        if not sheet.exists():
            with atomic_path(sheet) as tmp:
                tmp.write_text(css, encoding="utf-8")
        first = styles[0].start()
        head = f'{head[:first]}<link rel="stylesheet" href="../{sheet.name}">\n{STYLE.sub("", head[first:])}'
    html = notebook.with_suffix(".html")
    with atomic_path(html) as tmp:
        tmp.write_text(f"{MERMAID.sub('', head)}</head>{rest}", encoding="utf-8")
    return html


def rerender(record: Path) -> list[Path]:
    """Render a record's executed notebooks again (render_html), running nothing: older records get linked,
    lightened figures and the light HTML."""
    return [render_html(notebook) for notebook in sorted(record.glob("[0-9][0-9]_*.ipynb"))]


def execute(template: Path, record: Path, params: dict, progress: bool = True) -> Path:
    """Run one template notebook with papermill into the record (cwd = record) and render it as HTML."""
    output = record / template.name
    os.environ["SEQ2EPI_PROGRESS"] = "terminal" if progress else "off"  # bars: terminal, not record
    try:
        papermill.execute_notebook(str(template), str(output), parameters=params, cwd=str(record),
                                   progress_bar=progress and {"desc": template.stem}, kernel_name="python3",
                                   extra_arguments=KERNEL_ARGUMENTS)
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # the kernel caught the terminal's Ctrl-C
            raise KeyboardInterrupt from None
        raise ExperimentError(output, f"{err.ename}: {err.evalue}".strip()) from None
    finally:
        if output.exists():
            portable(output, {parameters.data_dir(params.get("data_dir")): "$SEQ2EPI_DATA",
                              record.parent.parent: "."})
            tidy(output)
            render_html(output)
    return output


def portable(notebook: Path, folders: dict[Path, str]) -> None:
    """Write each folder's machine path in an executed notebook (papermill's paths, printed file names) as
    its portable name, e.g. the data folder as $SEQ2EPI_DATA and the workbook as `.`: a record names no
    machine."""
    text = notebook.read_text(encoding="utf-8")
    spellings = {str(spelt): name for folder, name in folders.items()
                 for spelt in (Path(folder).absolute(), Path(folder).resolve())}  # a symlink and its target
    for spelt, name in sorted(spellings.items(), key=lambda item: -len(item[0])):
        text = re.sub(re.escape(spelt) + r"(?=[/\\\"'])", lambda _, name=name: name, text)  # not longer names
    with atomic_path(notebook) as tmp:
        tmp.write_text(text, encoding="utf-8")


PROGRESS_LINE = re.compile(r"\r|\d+%\|")  # a tqdm bar (drawn with carriage returns)
WARNING_LINE = re.compile(r"^\S+:\d+: (\w+Warning): (.*)$")  # "file:line: Category: message"


def tidy(notebook: Path) -> None:
    """Leave in an executed notebook's stderr what a reader needs: progress bars (any library's) are dropped,
    a warning becomes one line `Category: message` on stdout, without the kernel's file and source line, and
    tqdm's note that Jupyter widgets are missing goes."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") != "stream" or out.get("name") != "stderr":
                outputs.append(out)
                continue
            kept, warned, source_of_warning = [], [], False
            for line in out.get("text", "").split("\n"):
                warning = WARNING_LINE.match(line)
                if warning:
                    source_of_warning = True
                    if warning.group(1) != "TqdmWarning":
                        warned.append(f"{warning.group(1)}: {warning.group(2)}")
                elif source_of_warning and line.startswith("  "):
                    continue  # the source line warnings print under the warning
                elif line.strip() and not PROGRESS_LINE.search(line):
                    source_of_warning = False
                    kept.append(line)
            if warned:
                outputs.append(nbformat.v4.new_output("stream", name="stdout", text="\n".join(warned) + "\n"))
            if kept:
                outputs.append(nbformat.v4.new_output("stream", name="stderr", text="\n".join(kept) + "\n"))
        if "outputs" in cell:
            cell.outputs = outputs
    with atomic_path(notebook) as tmp:
        nbformat.write(nb, tmp)


# What a resumed run may change: how long it trains and how and where it computes, never what it learns from.
RESUMABLE = frozenset({"resume", "epochs", "device", "num_workers", "compile", "predict_batch_size", "note"})
BEST_CHECKPOINT = "artifacts/checkpoints/best.pt"
# Parameters naming another record (`<record or experiment id>[/<path in that record>]`), with the file the
# record must hold when no path is given; those in BY_NAME are kept as the record's name.
REFERENCES = {"init_checkpoint": BEST_CHECKPOINT, "checkpoint": BEST_CHECKPOINT,
              "compare_map": "variable_regions.tsv"}
BY_NAME = ("checkpoint", "compare_map")
DISK_FAULTS = {errno.EROFS: "the file system is read-only", errno.ENOSPC: "the disk is full",
               errno.EDQUOT: "the disk quota is used up"}


def resolve_reference(key: str, value: str, executed: Path) -> str:
    """A parameter naming another record as `<record or experiment id>[/<path>]` (an experiment id: its newest
    record), checked before anything runs → `checkpoint` (04 predicts as its spec says) and `compare_map` (a
    map record): the record's name; `init_checkpoint`: the path of the file (no path: its best checkpoint)
    from a record beside it. A path (`../…`, `/…`) stays as given."""
    if not value or value.startswith((".", "/")):
        return value
    name, _, inside = value.partition("/")
    try:
        record = records.Record.find(name, executed).path
    except (FileNotFoundError, ValueError):
        raise ValueError(f"parameter {key!r} = {value!r} names no record: expected a record folder or an "
                         f"experiment id with a record in {executed}") from None
    needed = inside or REFERENCES[key]
    if not (record / needed).is_file():
        why = " (artifacts stay on the machine that ran it)" if needed.startswith("artifacts/") else ""
        raise FileNotFoundError(f"parameter {key!r} = {value!r}: record {record.name} has no {needed}{why}")
    print(f"{key}: {value} is record {record.name}", file=sys.stderr)
    if key in BY_NAME and not inside:
        return record.name
    return f"../{record.name}/{needed}"


def resolve_references(params: dict, executed: Path) -> dict:
    """The parameters with their references to other records (REFERENCES) resolved, as a record keeps them."""
    resolved = {key: resolve_reference(key, params[key], executed) for key in REFERENCES if key in params}
    return {**params, **resolved}


def check_resumable(record: Path, params: dict, defaults: dict | None = None) -> None:
    """Refuse to continue a record under other parameters than its own (RESUMABLE keys aside), or one holding
    a symbolic link (resuming would write through it), before anything in it changes. A key the record lacks
    (added to the workbook since it ran) matches only its `defaults` value: the behaviour from before it."""
    links = [Path(folder, name) for folder, folders, files in os.walk(record) for name in folders + files
             if os.path.islink(os.path.join(folder, name))]
    if record.is_symlink() or links:
        link = links[0].relative_to(record) if links else "itself"
        raise ValueError(f"record {record.name} holds a symbolic link ({link}); resume continues only a "
                         "record that holds its own files: run without resume for a new record")
    stored, absent = records.read_parameters(record), "(absent)"
    stored = {**{k: v for k, v in (defaults or {}).items() if k in params}, **stored}
    changed = sorted(k for k in (set(stored) | set(params)) - RESUMABLE
                     if stored.get(k, absent) != params.get(k, absent))
    if changed:
        differences = "; ".join(f"{k}: {stored.get(k, absent)!r} there, {params.get(k, absent)!r} now"
                                for k in changed)
        raise ValueError(f"record {record.name} was run with other parameters ({differences}); resume "
                         f"continues a record only under its own (only {', '.join(sorted(RESUMABLE))} may "
                         "change): run without resume for a new record")


def _open_record(params: dict, executed: Path) -> Path:
    """The unfinished record that `resume: true` continues (checked first), else a new one."""
    unfinished = params["resume"] and records.unfinished_record(executed, params["experiment"])
    if unfinished:
        check_resumable(unfinished, params, parameters.base_defaults(executed.parent))
    record = unfinished or records.new_record_dir(executed, params["experiment"])
    for mark in records.MARKS:
        (record / mark).unlink(missing_ok=True)
    with atomic_path(record / "parameters.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(params, sort_keys=True))
    return record


def _run_stages(record: Path, params: dict, stages, root: Path, progress: bool) -> None:
    """Execute the asked stages into the record; a failed or interrupted one marks the record so."""
    idle = parameters.idle_stages(params)
    try:
        for stage in (s for s in STAGES if s in stages and s not in parameters.optional_stages(params)):
            if stage in idle:
                print(f"{stage}: skipped, {idle[stage]}", file=sys.stderr)
                continue
            template = root / "notebooks" / f"{stage}.ipynb"
            names = parameters.declared_parameters(template)
            execute(template, record, {k: v for k, v in params.items() if k in names}, progress)
    except ExperimentError as err:
        (record / "FAILED").write_text(f"{err}\n")
        raise
    except KeyboardInterrupt:
        (record / "INTERRUPTED").write_text("stopped from the terminal; continue it with -p resume=true\n")
        raise


def _disk_fault(err: OSError, executed: Path, record: Path | None) -> ValueError:
    """One sentence for a write the disk refused; the record, if there is one, is marked failed if it can."""
    where = err.filename or record or executed
    if record is None:
        return ValueError(f"cannot create a record in {executed}: {DISK_FAULTS[err.errno]} ({where}); "
                          "records need a writable executed/ with free space")
    try:
        (record / "FAILED").write_text(f"cannot write {where}: {DISK_FAULTS[err.errno]}\n")
    except OSError:
        pass  # a full or read-only disk may refuse the mark too: the index still shows the record unfinished
    return ValueError(f"record {record.name} failed: cannot write {where}: {DISK_FAULTS[err.errno]}")


def _refresh_index(executed: Path) -> None:
    """executed/INDEX.md, or one warning line when the disk refuses it (`seq2epi list` rewrites it)."""
    try:
        records.write_index(executed)
    except OSError as err:
        if err.errno not in DISK_FAULTS:
            raise
        print(f"warning: {executed / 'INDEX.md'} not refreshed: {DISK_FAULTS[err.errno]}", file=sys.stderr)


def run_experiment(experiment: str, root: Path, stages=STAGES, overrides: dict | None = None,
                   progress: bool = True) -> Path:
    """Execute the experiment's notebooks into a new record and refresh executed/INDEX.md; with
    `resume: true`, continue the experiment's newest unfinished record instead, only under its own
    parameters. A stage with nothing to do is skipped; a failed or interrupted run is marked so in the
    index, and so is a run the disk refused (read-only, full), in one sentence."""
    params = parameters.load_parameters(experiment, root, overrides)
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; the stages are {', '.join(STAGES)}")
    executed = root / "executed"
    params = resolve_references(params, executed)
    record = None
    try:
        record = _open_record(params, executed)
        _run_stages(record, params, stages, root, progress)
    except OSError as err:
        if err.errno not in DISK_FAULTS:
            raise
        raise _disk_fault(err, executed, record) from None
    finally:
        _refresh_index(executed)
    return record


def run_compare(names: list[str], by: str, root: Path, at_epoch: int = 0, progress: bool = True,
                ensemble: bool = False) -> Path:
    """Execute 05_compare over existing records into a record of its own (with `ensemble`, their mean too)."""
    if not re.fullmatch(r"[A-Za-z_]\w*", by):
        raise ValueError(f"--by {by!r} is not a parameter name (e.g. kmers, train_seed, experiment)")
    executed = root / "executed"
    found = [records.Record.find(n, executed) for n in names]
    outside = [str(r.path) for r in found if r.path.resolve().parent != executed.resolve()]
    if outside:
        raise ValueError(f"{', '.join(outside)}: compare takes records of {executed}, by name or experiment "
                         "id.")
    marks = {r.name: r.mark for r in found}
    if by not in ("mark", "marks") and len(set(marks.values())) > 1:
        named = ", ".join(f"{name}: {mark}" for name, mark in marks.items())
        print(f"warning: these records predict different marks ({named}); comparing them by {by} also "
              "compares marks", file=sys.stderr)
    record = records.new_record_dir(executed, f"compare_{by}")
    params = {"records": [r.name for r in found], "by": by, "at_epoch": at_epoch, "ensemble": ensemble}
    with atomic_path(record / "parameters.yaml") as tmp:
        tmp.write_text(yaml.safe_dump({**params, "experiment": f"compare_{by}"}))
    try:
        execute(root / "notebooks" / f"{COMPARE_STAGE}.ipynb", record, params, progress)
    finally:
        records.write_index(executed)
    return record
