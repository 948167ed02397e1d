"""Files in and out: atomic writes (the one os.replace), gzip/bgzip detection and text opening, a bgzip copy
of a plain-gzip file, and names that are safe as file names."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
from pysam import BGZFile

_UMASK = os.umask(0)  # read once (it can only be read by setting it): temporaries get the usual file mode
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A unique temporary path beside `path` that replaces it when the block ends without error: an
    interrupted write never leaves a file that looks complete, and two writers never share a temporary.
    The temporary ends with the file's name, so writers that infer a format from the suffix still do."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f"-{path.name}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, value) -> None:
    """`value` as indented JSON at `path`, atomically (numpy numbers as floats)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, default=float))


def compression(path) -> str:
    """How a file is compressed, by its first bytes (not its name): "bgzip" (BGZF: the extra field 'BC' in its
    block header), "gzip" (plain, no random access) or "" (none). The one place gzip is recognised."""
    with open(path, "rb") as f:
        head = f.read(18)
    if head[:2] != b"\x1f\x8b":
        return ""
    return "bgzip" if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC" else "gzip"


def open_text(path, newline: str | None = None, encoding: str | None = None):
    """A text handle on a plain, gzip or bgzip file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {path} does not exist.")
    opener = gzip.open if compression(path) else open
    return opener(path, "rt", newline=newline, encoding=encoding)


def cache_dir(path: Path) -> Path:
    """A temp folder of files derived from `path`, one per path, size and modification time."""
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / "seq2epi-fai" / key
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def bgzip_copy(path: Path) -> Path:
    """A bgzip copy of the plain-gzip file `path`, made once into a temp cache (random access needs BGZF)."""
    copy = cache_dir(path) / path.name
    if not copy.exists():
        with atomic_path(copy) as tmp, gzip.open(path, "rb") as source, BGZFile(str(tmp), "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    return copy


def safe_name(name: str) -> str:
    """`name` as a plain file name inside one folder: anything but letters, digits, '.', '-' and '_' becomes
    '_', as do leading dots (no '..', no hidden file); an empty name is '_'."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in str(name))
    bare = safe.lstrip(".")
    return "_" * (len(safe) - len(bare)) + bare or "_"


def safe_names(names: list[str]) -> dict[str, str]:
    """{name: safe_name}, names that collide (a/b, a_b) made unique by _2, _3, ... (case-insensitively, for
    file systems that ignore case)."""
    used, out = set(), {}
    for name in names:
        base = candidate = safe_name(name)
        k = 2
        while candidate.lower() in used:
            candidate, k = f"{base}_{k}", k + 1
        used.add(candidate.lower())
        out[name] = candidate
    return out


@contextlib.contextmanager
def table_writer(path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A writer of a TSV in parts (gzip when named .gz), the file appearing only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with atomic_path(path) as tmp, opener(tmp, "wt") as handle:
        header = [True]

        def write(frame: pd.DataFrame) -> None:
            frame.to_csv(handle, sep="\t", index=False, header=header[0], float_format="%.6g")
            header[0] = False

        yield write
