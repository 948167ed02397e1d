import base64
import io
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from seq2epi import experiments

REPO = Path(__file__).resolve().parents[1]
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
                       "awAAAABJRU5ErkJggg==")  # one pixel


@pytest.fixture
def workbook(tmp_path):
    """A copy of the workbook's notebooks and parameters, so that records land in a temporary executed/."""
    for folder in ("notebooks", "parameters"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "executed").mkdir()
    return tmp_path


@pytest.fixture
def executed_stages(monkeypatch):
    """Replace papermill by a stand-in that records the stages run (03 leaves metrics, as the real one)."""
    stages = []

    def execute(template, record, params, progress=True):
        stages.append(template.stem)
        (record / f"{template.stem}.ipynb").write_text("{}")
        if template.stem == "03_evaluate":
            (record / "metrics.json").write_text('{"transformer": {"auroc": 0.9, "mcc": 0.6}}')

    monkeypatch.setattr(experiments, "execute", execute)
    return stages


def test_templates_are_committed_without_outputs():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in code), path


def test_bad_parameters_are_refused_before_a_record_is_created(workbook):
    (workbook / "parameters" / "bad.yaml").write_text("epochs: -1\n")
    with pytest.raises(ValueError, match="'epochs' = -1 is impossible"):
        experiments.run_experiment("bad", workbook)
    with pytest.raises(ValueError, match="is not a parameter file"):
        experiments.run_experiment("../parameters/bad", workbook)
    assert not any((workbook / "executed").iterdir())


def test_a_record_stores_data_dir_as_given_never_a_machine_path(workbook, executed_stages, monkeypatch):
    monkeypatch.setenv("SEQ2EPI_DATA", "/machine/data")
    record = experiments.run_experiment("smoke", workbook, stages=["01_data_prep"])
    assert yaml.safe_load((record / "parameters.yaml").read_text())["data_dir"] is None
    assert "/machine" not in (record / "parameters.yaml").read_text()


def test_a_stage_with_nothing_to_do_is_skipped_and_the_index_says_so(workbook, executed_stages, capsys):
    record = experiments.run_experiment("smep_h3k4me3", workbook)
    assert executed_stages == ["01_data_prep", "02_train", "03_evaluate"]
    assert "04_predict_genome: skipped, no genome to predict" in capsys.readouterr().err
    assert not (record / "04_predict_genome.ipynb").exists()
    assert "| complete, 04 skipped |" in (workbook / "executed" / "INDEX.md").read_text()


def test_a_run_stopped_from_the_terminal_is_marked_interrupted(workbook, monkeypatch):
    def stopped(template, record, params, progress=True):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "execute", stopped)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment("smoke", workbook)
    [record] = [p for p in (workbook / "executed").iterdir() if p.is_dir()]
    assert (record / "INTERRUPTED").exists()
    assert "| interrupted |" in (workbook / "executed" / "INDEX.md").read_text()


def test_compare_stores_record_names_and_warns_about_different_marks(workbook, executed_stages, capsys):
    for experiment in ("smep_h3k4me3", "smep_h3k27me3"):
        experiments.run_experiment(experiment, workbook, stages=["01_data_prep"])
    record = experiments.run_compare(["smep_h3k4me3", "smep_h3k27me3"], "kmers", workbook)
    params = yaml.safe_load((record / "parameters.yaml").read_text())
    today = record.name[:10]
    assert params["records"] == [f"{today}_smep_h3k4me3", f"{today}_smep_h3k27me3"]
    assert "predict different marks (" in capsys.readouterr().err
    assert executed_stages[-1] == "05_compare"
    with pytest.raises(ValueError, match="is not a parameter name"):
        experiments.run_compare(["smep_h3k4me3"], "../x", workbook)


def plot_png(colour="tab:blue") -> bytes:
    """An opaque matplotlib figure as PNG bytes, as a notebook saves one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 0.5], color=colour)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def image_output(png: bytes):
    return nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode(),
                                                         "text/plain": "<Figure>"})


def test_html_links_the_shared_stylesheet_and_every_figure(tmp_path):
    record = tmp_path / "executed" / "2021-05-03_a"
    (record / "figures").mkdir(parents=True)
    saved, unsaved = plot_png(), plot_png("tab:red")
    (record / "figures" / "curve.png").write_bytes(saved)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot()", outputs=[
        image_output(saved), image_output(unsaved)])])
    nbformat.write(nb, record / "02_train.ipynb")
    html = experiments.render_html(record / "02_train.ipynb").read_text()
    [sheet] = (tmp_path / "executed").glob("nbconvert-*.css")
    assert f'<link rel="stylesheet" href="../{sheet.name}">' in html and sheet.stat().st_size > 100_000
    assert "<style" not in html.split("</head>")[0] and "mermaid" not in html
    assert 'src="figures/curve.png"' in html and 'src="figures/02_train-2.png"' in html
    assert "base64" not in html and "base64" not in (record / "02_train.ipynb").read_text()
    assert len(html) < 50_000
    assert sorted(p.name for p in (record / "figures").iterdir()) == ["02_train-2.png", "curve.png"]
    assert (record / "figures" / "curve.png").read_bytes() == experiments.light_png(saved)
    assert experiments.light_png(unsaved) == (record / "figures" / "02_train-2.png").read_bytes()


def test_rerender_is_idempotent_and_keeps_what_a_reader_sees(tmp_path):
    from PIL import Image

    record = tmp_path / "executed" / "2021-05-03_a"
    (record / "figures").mkdir(parents=True)
    png = plot_png()
    (record / "figures" / "curve.png").write_bytes(png)
    for stage in ("01_data_prep", "03_evaluate"):
        cell = nbformat.v4.new_code_cell("plot()", outputs=[image_output(png)])
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), record / f"{stage}.ipynb")
    assert [p.name for p in experiments.rerender(record)] == ["01_data_prep.html", "03_evaluate.html"]
    first = {p: p.read_bytes() for p in sorted(record.rglob("*.*"))}
    experiments.rerender(record)
    assert {p: p.read_bytes() for p in sorted(record.rglob("*.*"))} == first
    assert [p.name for p in (record / "figures").iterdir()] == ["curve.png"]
    assert 'src="figures/curve.png"' in (record / "03_evaluate.html").read_text()
    light = np.asarray(Image.open(record / "figures" / "curve.png").convert("RGB"), dtype=int)
    original = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    assert light.shape == original.shape and len(first[record / "figures" / "curve.png"]) < len(png)
    assert np.abs(light - original).max() < 24  # a palette of the plot's colours: nothing a reader sees


def test_light_png_leaves_a_transparent_or_tiny_png_as_it_is():
    assert experiments.light_png(PNG) == PNG  # one transparent-capable pixel: not made smaller


@pytest.mark.slow
def test_the_kernel_start_up_warning_stays_out_of_the_terminal(tmp_path, capfd):
    cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("print(x + 1)")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "t.ipynb")
    (tmp_path / "executed" / "r").mkdir(parents=True)
    output = experiments.execute(tmp_path / "t.ipynb", tmp_path / "executed" / "r", {"x": 41}, progress=False)
    assert '"42\\n"' in output.read_text()
    assert "without encryption" not in capfd.readouterr().err


def test_portable_writes_machine_paths_as_their_portable_names(tmp_path):
    from seq2epi.experiments import portable

    data, root = tmp_path / "data", tmp_path / "lab"
    notebook = tmp_path / "n.ipynb"
    text = f"read {data}/a.csv into {root}/executed/r/x, not {data}x/b"
    notebook.write_text(f'{{"text": "{text}", "d": "{data}"}}')
    portable(notebook, {data: "$SEQ2EPI_DATA", root: "."})
    text = f"read $SEQ2EPI_DATA/a.csv into ./executed/r/x, not {data}x/b"
    expected = f'{{"text": "{text}", "d": "$SEQ2EPI_DATA"}}'
    assert notebook.read_text() == expected


def test_tidy_keeps_one_line_per_warning_and_no_progress_bar(tmp_path):
    import nbformat

    from seq2epi.experiments import tidy

    bars = "\repoch 1/2:   0%|          | 0/29 [00:00<?, ?it/s]\repoch 1/2: 100%|##| 29/29\r          \n"
    warning = ("/tmp/ipykernel_1/2.py:3: UserWarning: 4 of 300 sequences share a 31-bp stretch\n"
               "  data = prepare.from_csv(train, test)\n"
               "./.venv/lib/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n"
               "  from .autonotebook import tqdm as notebook_tqdm\n")
    cell = nbformat.v4.new_code_cell("fit()", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=bars + warning),
        nbformat.v4.new_output("stream", name="stdout", text="epoch 1/2  val AUC 0.9\n"),
        nbformat.v4.new_output("stream", name="stderr", text="a real message\n")])
    path = tmp_path / "02_train.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    tidy(path)
    outputs = [(o.name, o.text) for o in nbformat.read(path, as_version=4).cells[0].outputs]
    assert outputs == [("stdout", "UserWarning: 4 of 300 sequences share a 31-bp stretch\n"),
                       ("stdout", "epoch 1/2  val AUC 0.9\n"), ("stderr", "a real message\n")]
