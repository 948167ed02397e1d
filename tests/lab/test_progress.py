import io
import warnings

import nbformat
import pytest

from seq2epi.lab import progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def term(monkeypatch) -> FakeTerminal:
    stream = FakeTerminal()
    monkeypatch.setattr(progress, "_terminal", stream)
    monkeypatch.setenv(progress.ENV, "terminal")
    return stream


def test_terminal_mode_draws_on_the_terminal_only(term, capsys):
    assert list(progress.bar(range(5), "items")) == [0, 1, 2, 3, 4]
    progress.log("epoch 1/1  val AUC 0.5")
    out, err = capsys.readouterr()
    assert out == "epoch 1/1  val AUC 0.5\n" and err == ""
    drawn = term.getvalue()
    assert "items:   0%| " in drawn and "0/5" in drawn  # drawn, then cleared (leave=False)
    assert drawn.split("\r")[-1] == "epoch 1/1  val AUC 0.5\n"


def test_terminal_mode_draws_nothing_on_a_log_file(monkeypatch, capsys):
    monkeypatch.setattr(progress, "_terminal", io.StringIO())
    monkeypatch.setenv(progress.ENV, "terminal")
    assert list(progress.bar(range(3), "items")) == [0, 1, 2]
    assert progress.terminal().getvalue() == ""


def test_off_and_disabled_show_nothing(term, monkeypatch, capsys):
    assert list(progress.bar(range(3), "items", enabled=False)) == [0, 1, 2]
    monkeypatch.setenv(progress.ENV, "off")
    assert list(progress.bar(range(3), "items")) == [0, 1, 2]
    progress.log("a line")
    assert term.getvalue() == ""
    assert capsys.readouterr() == ("a line\n", "")


def test_unset_draws_on_stderr(monkeypatch, capsys):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert list(progress.bar(iter(range(4)), "items", total=4)) == [0, 1, 2, 3]
    out, err = capsys.readouterr()
    assert out == "" and "0/4" in err


def test_bar_consumes_the_iterator_it_is_given_once(term):
    items = iter(range(4))
    assert list(progress.bar(items, "items", total=4)) == [0, 1, 2, 3]
    assert next(items, None) is None


def test_meter_is_advanced_by_hand_on_the_terminal(term, capsys):
    with progress.meter(1000, "windows", unit="win") as meter:
        for _ in range(4):
            meter.update(250)
        assert meter.n == 1000
    assert "windows:   0%" in term.getvalue() and "0/1000 [" in term.getvalue()
    assert capsys.readouterr() == ("", "")


def test_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv(progress.ENV, "yes")
    with pytest.raises(ValueError, match="SEQ2EPI_PROGRESS must be terminal, off or unset, got 'yes'"):
        progress.bar(range(2))


def test_plain_warnings_are_one_line_on_stdout(monkeypatch, capsys):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    progress.plain_warnings()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("3 windows rejected", stacklevel=1)
    assert capsys.readouterr() == ("UserWarning: 3 windows rejected\n", "")


@pytest.mark.slow
def test_under_papermill_the_bar_stays_out_of_the_record(tmp_path, monkeypatch, capfd):
    """The kernel captures fd 2 into the notebook; progress writes past it to the runner's stderr."""
    papermill = pytest.importorskip("papermill")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys\nfrom seq2epi.lab import progress\n"
        "progress._terminal = progress.terminal()\nprogress._terminal.isatty = lambda: True\n"
        "total = sum(progress.bar(range(50), 'batches'))\nprogress.log(f'total {total}')")])
    nbformat.write(nb, tmp_path / "in.ipynb")
    monkeypatch.setenv(progress.ENV, "terminal")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), progress_bar=False,
                               kernel_name="python3", extra_arguments=["--IPKernelApp.log_level=ERROR"])
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    assert [(o.name, o.text) for o in outputs] == [("stdout", "total 1225\n")]
    runner = capfd.readouterr().err
    assert "batches:   0%" in runner and "0/50" in runner and "total 1225\n" in runner
