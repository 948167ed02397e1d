"""The package's layout: README's module map lists every module, and no module-level import runs upward."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "lib" / "seq2epi"
ORDER = ["lab", "data", "model", "analysis", ""]  # "" : cli.py and experiments.py on top


def modules() -> set[str]:
    found = {p.relative_to(LIB).with_suffix("").as_posix() for p in LIB.rglob("*.py")}
    return {m for m in found if not m.endswith("__init__") and m != "__main__"}


def level(folder: str) -> int:
    """A folder's place in the import order (the top, cli and experiments, last)."""
    return ORDER.index(folder if folder in ORDER else "")


def test_readme_lists_every_module_once_and_nothing_else():
    text = (REPO / "README.md").read_text()
    block = text[text.index("## Layout"):]
    block = block[block.index("```") + 3:]
    listed = re.findall(r"^(\S+)\s", block[:block.index("```")], flags=re.M)
    assert sorted(listed) == sorted(modules())


def upward_imports(module: str, source: str) -> list[str]:
    """The module-level `seq2epi` imports of `module` (e.g. "model/predict") from a folder above its own."""
    here = level(module.split("/")[0] if "/" in module else "")
    found = []
    for node in ast.parse(source).body:  # module level only: a lazy import inside a function may reach up
        if isinstance(node, ast.ImportFrom) and node.module == "seq2epi":  # the root: cli, experiments or
            targets = [f"seq2epi.{a.name}" for a in node.names if a.name != "__version__"]  # the version
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seq2epi."):
            targets = [node.module]
        elif isinstance(node, ast.Import):  # `import seq2epi` reads the version alone
            targets = [a.name for a in node.names if a.name.startswith("seq2epi.")]
        else:
            continue
        found += [t for t in targets if level((t.split(".") + [""])[1]) > here]
    return found


def test_no_module_level_import_runs_upward():
    upward = {m: found for m in sorted(modules())
              if (found := upward_imports(m, (LIB / f"{m}.py").read_text()))}
    assert not upward


def test_an_upward_import_is_seen_and_a_lazy_one_is_not():
    assert upward_imports("model/predict", "from seq2epi.analysis import plots\n") == ["seq2epi.analysis"]
    assert upward_imports("lab/records", "def f():\n    from seq2epi.model import predict\n") == []
    assert upward_imports("analysis/maps", "from seq2epi.data import tiling\n") == []
    assert upward_imports("data/prepare", "from seq2epi import cli\n") == ["seq2epi.cli"]
    assert upward_imports("lab/records", "import seq2epi\nfrom seq2epi import __version__\n") == []
