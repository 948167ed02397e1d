import base64
import errno
import hashlib
import io
import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from conftest import classification_metrics, model_metrics

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
            marks = {"H3K4me3": {"transformer": model_metrics(0.9, 0.6)}}
            (record / "metrics.json").write_text(json.dumps(classification_metrics(marks)))

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


def _fingerprint(record: Path) -> dict:
    """Every file of a record with its bytes' hash and its modification time."""
    return {str(p.relative_to(record)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(record.rglob("*")) if p.is_file()}


@pytest.fixture
def unfinished(workbook, executed_stages):
    """A record of smoke that stopped after 01 (no metrics.json): the one resume continues."""
    return experiments.run_experiment("smoke", workbook, stages=["01_data_prep"])


@pytest.mark.parametrize("override, changed", [
    ({"ninp": 32}, "ninp: 16 there, 32 now"),
    ({"train_csv": "rice_smep/H3K27me3_train.csv"},
     "train_csv: 'rice_smep/H3K4me3_train.csv' there, 'rice_smep/H3K27me3_train.csv' now"),
    ({"kmers": [3], "data_dir": "elsewhere"},
     "data_dir: None there, 'elsewhere' now; kmers: [5] there, [3] now")])
def test_resume_refuses_a_changed_parameter_and_leaves_the_record_untouched(workbook, unfinished, override,
                                                                             changed):
    (unfinished / "INTERRUPTED").write_text("stopped\n")
    before = _fingerprint(unfinished)
    with pytest.raises(ValueError) as err:
        experiments.run_experiment("smoke", workbook, overrides={"resume": True, **override})
    assert str(err.value).startswith(f"record {unfinished.name} was run with other parameters ({changed}); "
                                     "resume continues a record only under its own (only compile, device, ")
    assert str(err.value).endswith("may change): run without resume for a new record")
    assert _fingerprint(unfinished) == before
    assert [p.name for p in (workbook / "executed").iterdir() if p.is_dir()] == [unfinished.name]


def test_resume_may_change_what_does_not_change_the_model_or_its_data(workbook, unfinished, executed_stages):
    assert experiments.RESUMABLE >= {"epochs", "device", "num_workers", "predict_batch_size", "resume"}
    overrides = {"resume": True, "epochs": 3, "device": "cpu", "num_workers": 0, "predict_batch_size": 8}
    resumed = experiments.run_experiment("smoke", workbook, stages=["02_train"], overrides=overrides)
    assert resumed == unfinished
    assert yaml.safe_load((unfinished / "parameters.yaml").read_text())["epochs"] == 3
    assert executed_stages == ["01_data_prep", "02_train"]


def test_a_key_added_since_the_record_ran_resumes_at_its_default_and_refuses_another(workbook, unfinished):
    stored = yaml.safe_load((unfinished / "parameters.yaml").read_text())
    del stored["eval_stride"]  # as if the record ran before the key existed
    (unfinished / "parameters.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(ValueError, match="eval_stride: 1000 there, 500 now"):  # it ran at the default
        experiments.run_experiment("smoke", workbook, stages=["01_data_prep"],
                                   overrides={"resume": True, "eval_stride": 500})
    resumed = experiments.run_experiment("smoke", workbook, stages=["01_data_prep"],
                                         overrides={"resume": True})
    assert resumed == unfinished


def test_resume_refuses_a_record_holding_a_symlink(workbook, unfinished, tmp_path):
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"weights")
    (unfinished / "artifacts").mkdir()
    (unfinished / "artifacts" / "last.pt").symlink_to(outside)
    before = _fingerprint(unfinished)
    with pytest.raises(ValueError, match=rf"^record {unfinished.name} holds a symbolic link "
                                         r"\(artifacts/last.pt\); resume continues only a record that holds"):
        experiments.run_experiment("smoke", workbook, overrides={"resume": True})
    assert _fingerprint(unfinished) == before and outside.read_bytes() == b"weights"


@pytest.fixture
def pretrained(workbook):
    """Two records of pretrain_plants, each with its encoder; the experiment id names the newer one."""
    made = []
    for name in ("2026-11-01_pretrain_plants", "2026-12-02_pretrain_plants"):
        (workbook / "executed" / name / "artifacts" / "pretrain").mkdir(parents=True)
        (workbook / "executed" / name / "artifacts" / "pretrain" / "best.pt").write_bytes(b"w")
        (workbook / "executed" / name / "parameters.yaml").write_text("experiment: pretrain_plants\n")
        made.append(name)
    return made


@pytest.mark.parametrize("reference, resolved", [
    ("pretrain_plants/artifacts/pretrain/best.pt",
     "../2026-12-02_pretrain_plants/artifacts/pretrain/best.pt"),
    ("2026-11-01_pretrain_plants/artifacts/pretrain/best.pt",
     "../2026-11-01_pretrain_plants/artifacts/pretrain/best.pt"),
    ("../elsewhere/best.pt", "../elsewhere/best.pt")])
def test_a_reference_to_another_record_is_resolved_printed_and_kept(workbook, pretrained, executed_stages,
                                                                    capsys, reference, resolved):
    record = experiments.run_experiment("smoke", workbook, stages=["02_train"],
                                        overrides={"init_checkpoint": reference})
    assert yaml.safe_load((record / "parameters.yaml").read_text())["init_checkpoint"] == resolved
    if not reference.startswith("."):
        assert f"init_checkpoint: {reference} is record {resolved.split('/')[1]}" in capsys.readouterr().err


@pytest.mark.parametrize("reference, message", [
    ("pretrain_planets", r"parameter 'init_checkpoint' = 'pretrain_planets' names no record: expected a "
                         r"record folder or an experiment id with a record in .*executed$"),
    ("pretrain_plants", r"parameter 'init_checkpoint' = 'pretrain_plants': record 2026-12-02_pretrain_plants "
                        r"has no artifacts/checkpoints/best.pt \(artifacts stay on the machine that ran "
                        r"it\)$")])
def test_a_missing_reference_is_one_sentence_before_a_record_is_made(workbook, pretrained, reference,
                                                                     message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        experiments.run_experiment("smoke", workbook, overrides={"init_checkpoint": reference})
    assert sorted(p.name for p in (workbook / "executed").iterdir() if p.is_dir()) == pretrained


def test_compare_map_is_checked_before_a_record_is_made_and_kept_as_a_name(workbook, executed_stages):
    old_map = workbook / "executed" / "2026-11-25_rice_3k_cultivars"
    old_map.mkdir()
    (old_map / "parameters.yaml").write_text("experiment: rice_3k_cultivars\n")
    with pytest.raises(FileNotFoundError, match=r"parameter 'compare_map' = 'rice_3k_cultivars': record "
                                                r"2026-11-25_rice_3k_cultivars has no variable_regions.tsv$"):
        experiments.run_experiment("smoke", workbook, overrides={"compare_map": "rice_3k_cultivars"})
    assert [p.name for p in (workbook / "executed").iterdir() if p.is_dir()] == [old_map.name]
    (old_map / "variable_regions.tsv").write_text("chrom\tstart\tend\n")
    record = experiments.run_experiment("smoke", workbook, stages=["01_data_prep"],
                                        overrides={"compare_map": "rice_3k_cultivars"})
    assert yaml.safe_load((record / "parameters.yaml").read_text())["compare_map"] == old_map.name


def test_every_reference_of_the_parameter_files_names_a_record_not_a_dated_path():
    for path in sorted((REPO / "parameters").glob("*.yaml")):
        values = yaml.safe_load(path.read_text())
        for key in experiments.REFERENCES:
            assert not str(values.get(key, "")).startswith((".", "/")), f"{path.name}: {key}"


def test_a_full_disk_is_one_sentence_and_a_failed_record(workbook, monkeypatch):
    def full(template, record, params, progress=True):
        raise OSError(errno.ENOSPC, "No space left on device", str(record / f"{template.stem}.ipynb"))

    monkeypatch.setattr(experiments, "execute", full)
    with pytest.raises(ValueError) as err:
        experiments.run_experiment("smoke", workbook)
    [record] = [p for p in (workbook / "executed").iterdir() if p.is_dir()]
    assert str(err.value) == (f"record {record.name} failed: cannot write {record}/01_data_prep.ipynb: the "
                              "disk is full")
    assert (record / "FAILED").exists()
    assert "| failed |" in (workbook / "executed" / "INDEX.md").read_text()


def test_a_read_only_executed_is_one_sentence(workbook, monkeypatch, capsys):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(workbook / "executed" / "x"))

    monkeypatch.setattr(experiments.records, "new_record_dir", read_only)
    monkeypatch.setattr(experiments.records, "write_index", read_only)
    with pytest.raises(ValueError) as err:
        experiments.run_experiment("smoke", workbook)
    assert str(err.value) == (f"cannot create a record in {workbook / 'executed'}: the file system is "
                              f"read-only ({workbook / 'executed' / 'x'}); records need a writable executed/ "
                              "with free space")
    assert "INDEX.md not refreshed: the file system is read-only" in capsys.readouterr().err


def test_portable_names_a_symlinked_data_folder_by_its_portable_name(tmp_path):
    (tmp_path / "disk" / "data").mkdir(parents=True)
    (tmp_path / "data").symlink_to(tmp_path / "disk" / "data")
    notebook = tmp_path / "n.ipynb"
    notebook.write_text(f'{{"a": "{tmp_path}/data/x.csv", "b": "{tmp_path}/disk/data/y.csv"}}')
    experiments.portable(notebook, {tmp_path / "data": "$SEQ2EPI_DATA"})
    assert notebook.read_text() == '{"a": "$SEQ2EPI_DATA/x.csv", "b": "$SEQ2EPI_DATA/y.csv"}'
