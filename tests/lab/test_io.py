"""Atomic writes, compression by first bytes, text opening, safe file names; os.replace in one place."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import seq2epi
from seq2epi.lab.io import atomic_path, compression, open_text, safe_name, safe_names, write_json


def test_atomic_path_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith("-metrics.json")
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_compression_by_first_bytes_not_name(tmp_path):
    bgzf = pytest.importorskip("Bio.bgzf")
    plain, gz, bgz = tmp_path / "a.gz", tmp_path / "b.fa", tmp_path / "c.fa"
    plain.write_text(">a\nA\n")
    gz.write_bytes(gzip.compress(b">a\nA\n"))
    with bgzf.BgzfWriter(bgz, "wb") as f:
        f.write(b">a\nA\n")
    assert [compression(p) for p in (plain, gz, bgz)] == ["", "gzip", "bgzip"]
    assert all(open_text(p).read() == ">a\nA\n" for p in (plain, gz, bgz))


def test_safe_names_stay_in_one_folder_and_are_unique():
    assert [safe_name(n) for n in ["IR64", "../../..", "a/b c", "", ".", "x.1-2_y"]] == \
        ["IR64", "___.._..", "a_b_c", "_", "_", "x.1-2_y"]
    assert safe_names(["a/b", "a_b", "A_B", "ok"]) == {"a/b": "a_b", "a_b": "a_b_2", "A_B": "A_B_3",
                                                       "ok": "ok"}


def test_os_replace_is_called_only_by_atomic_path():
    lib = Path(seq2epi.__file__).parent
    callers = sorted(str(p.relative_to(lib)) for p in lib.rglob("*.py") if "os.replace(" in p.read_text())
    assert callers == ["lab/io.py"] and (lib / "lab/io.py").read_text().count("os.replace(") == 1


def test_write_json_writes_numpy_numbers_whole(tmp_path):
    write_json(tmp_path / "m.json", {"auroc": np.float32(0.5), "n": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"auroc": 0.5, "n": 3}
