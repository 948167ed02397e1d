"""Thin notebooks: a template orchestrates and shows; what it computes lives in lib, with tests."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_CODE_LINES = 90  # per template, its parameters cell left out
MAX_CELL_LINES = 25


def code_cells(template: Path) -> list[int]:
    """The non-blank lines of each code cell of a template, its parameters cell left out."""
    cells = json.loads(template.read_text())["cells"]
    return [sum(1 for line in "".join(c["source"]).splitlines() if line.strip()) for c in cells
            if c["cell_type"] == "code" and "parameters" not in c.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("template", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_a_template_is_thin(template):
    lines = code_cells(template)
    assert max(lines) <= MAX_CELL_LINES, f"{template.name}: a code cell of {max(lines)} lines"
    assert sum(lines) <= MAX_CODE_LINES, f"{template.name}: {sum(lines)} code lines"


def test_every_template_resolves_its_device_in_one_place():
    for template in sorted((REPO / "notebooks").glob("*.ipynb")):
        text = template.read_text()
        assert "cuda.is_available" not in text, template.name
        if '"device = ' in text or "device = \\\"auto\\\"" in text:
            assert "resolve_device(device)" in text, template.name
