"""Experiments: execute the notebooks with papermill into a record, render them as HTML, index the record."""

import base64
import hashlib
import os
import re
import sys
from pathlib import Path

import nbformat
import papermill
import yaml
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

from seq2epi import parameters, records
from seq2epi.parameters import STAGES

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
EMBEDDED_PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"')


def render_html(notebook: Path) -> Path:
    """Render an executed notebook next to itself as HTML, light: the stylesheet is one file shared by the
    records (executed/nbconvert-<hash>.css, linked), and a figure the record holds in figures/ is linked
    rather than embedded a second time (an image the record did not save stays embedded)."""
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    head, rest = body.split("</head>", 1)
    styles = list(STYLE.finditer(head))
    if styles:
        css = "\n".join(m.group(1) for m in styles)
        sheet = notebook.parent.parent / f"nbconvert-{hashlib.sha1(css.encode()).hexdigest()[:8]}.css"
        if not sheet.exists():
            with records.atomic_path(sheet) as tmp:
                tmp.write_text(css, encoding="utf-8")
        first = styles[0].start()
        head = f'{head[:first]}<link rel="stylesheet" href="../{sheet.name}">\n{STYLE.sub("", head[first:])}'
    saved = {hashlib.sha1(p.read_bytes()).hexdigest(): f"figures/{p.name}"
             for p in (notebook.parent / "figures").glob("*.png")}

    def link_saved(match: re.Match) -> str:
        digest = hashlib.sha1(base64.b64decode(match.group(1))).hexdigest()
        return f'src="{saved[digest]}"' if digest in saved else match.group(0)

    html = notebook.with_suffix(".html")
    with records.atomic_path(html) as tmp:
        tmp.write_text(f"{head}</head>{EMBEDDED_PNG.sub(link_saved, rest)}", encoding="utf-8")
    return html


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
    for folder, name in sorted(folders.items(), key=lambda item: -len(str(item[0]))):
        path = re.escape(str(Path(folder).resolve()))
        text = re.sub(path + r"(?=[/\\\"'])", lambda _, name=name: name, text)  # not a longer name
    with records.atomic_path(notebook) as tmp:
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
    with records.atomic_path(notebook) as tmp:
        nbformat.write(nb, tmp)


def run_experiment(experiment: str, root: Path, stages=STAGES, overrides: dict | None = None,
                   progress: bool = True) -> Path:
    """Execute the experiment's notebooks into a new record and refresh executed/INDEX.md; with
    `resume: true`, continue the experiment's newest unfinished record instead. A stage with nothing to
    do is skipped; a failed or interrupted run is marked so in the index."""
    params = parameters.load_parameters(experiment, root, overrides)
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; the stages are {', '.join(STAGES)}")
    executed = root / "executed"
    record = (params["resume"] and records.unfinished_record(executed, experiment)) or \
        records.new_record_dir(executed, experiment)
    for mark in records.MARKS:
        (record / mark).unlink(missing_ok=True)
    with records.atomic_path(record / "parameters.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(params, sort_keys=True))
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
    finally:
        records.write_index(executed)
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
    with records.atomic_path(record / "parameters.yaml") as tmp:
        tmp.write_text(yaml.safe_dump({**params, "experiment": f"compare_{by}"}))
    try:
        execute(root / "notebooks" / f"{COMPARE_STAGE}.ipynb", record, params, progress)
    finally:
        records.write_index(executed)
    return record
