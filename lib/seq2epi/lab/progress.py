"""Progress for the person at the terminal, one line per step for the record.

Under `seq2epi run` a notebook's stdout and stderr are its record, so a progress bar drawn there becomes a
wall of outputs. The runner sets SEQ2EPI_PROGRESS=terminal (`off` with --quiet): `bar` then draws on the
terminal that started the run (the kernel's original stderr, which ipykernel keeps as sys.stderr.fileno()
while it captures fd 2 into the notebook) and `log` prints its line into the record and onto that terminal.
Unset (a script, an interactive notebook), `bar` is a text bar on stderr and `log` a print. `meter` is a
bar advanced by hand; `plain_warnings` makes a notebook's warnings one line each, without the kernel's paths.
"""

import io
import os
import sys
import warnings
from collections.abc import Iterable, Iterator

from tqdm.std import tqdm

ENV = "SEQ2EPI_PROGRESS"
_MODES = ("", "terminal", "off")
_terminal = None  # the terminal stream, opened once per process
_last_cell = None  # the notebook cell that last wrote to the terminal


def mode() -> str:
    """SEQ2EPI_PROGRESS: "" (bars on stderr), "terminal" (bars on the run's terminal only) or "off"."""
    value = os.environ.get(ENV, "")
    if value not in _MODES:
        raise ValueError(f"${ENV} must be terminal, off or unset, got {value!r}")
    return value


def terminal():
    """The stream of the terminal that started the process, even inside a kernel that records stderr."""
    global _terminal
    if _terminal is None:
        try:
            fd = sys.stderr.fileno()  # ipykernel: a copy of the kernel's original fd 2, not the notebook
        except (AttributeError, ValueError, io.UnsupportedOperation):
            fd = sys.__stderr__.fileno()
        _terminal = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
    return _terminal


def _fresh_line(stream) -> None:
    """Step below the runner's per-cell bar the first time a notebook cell writes to the terminal."""
    global _last_cell
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    cell = getattr(shell, "execution_count", None)
    if cell is not None and cell != _last_cell:
        stream.write("\n")
    _last_cell = cell


def _tqdm(iterable, desc: str, total: int | None, enabled: bool, **kw) -> tqdm:
    how = mode() if enabled else "off"
    if how == "terminal":
        stream = terminal()
        _fresh_line(stream)
        return tqdm(iterable, desc=desc, total=total, file=stream, leave=False, dynamic_ncols=True,
                    disable=None, **kw)  # None: no bar when the terminal is a log file
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, disable=how == "off", **kw)


def bar(iterable: Iterable, desc: str = "", total: int | None = None, enabled: bool = True, **kw) -> Iterator:
    """`iterable` with a progress bar (tqdm; `kw` such as unit) that never reaches the record and vanishes
    when done. The bar iterates over `iterable` itself: pass the one iterator you use (a DataLoader's)."""
    return iter(_tqdm(iterable, desc, total, enabled, **kw))


def meter(total: int, desc: str = "", enabled: bool = True, **kw) -> tqdm:
    """A bar advanced by hand (`.update(n)`, `.close()` or `with`), for work counted in units other than the
    loop's items, e.g. windows predicted in batches; shown like `bar`'s."""
    return _tqdm(None, desc, total, enabled, **kw)


def log(line: str) -> None:
    """One line for the record (stdout), echoed to the run's terminal."""
    print(line, flush=True)
    if mode() == "terminal":
        stream = terminal()
        _fresh_line(stream)
        stream.write(line + "\n")


def plain_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line, `UserWarning: message`, without its file path and source line (a
    warnings.formatwarning, as the CLI uses on stderr)."""
    return f"{category.__name__}: {message}\n"


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(plain_warning(message, category, filename, lineno), end="", flush=True)


def plain_warnings() -> None:
    """Warnings print as one line on stdout, `UserWarning: message`, without the file path and source line
    they came from (a notebook kernel's are temporary files)."""
    warnings.showwarning = _print_warning
