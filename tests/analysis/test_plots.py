import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from seq2epi.analysis import plots

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _saves(fig: Figure, tmp_path, name: str = "fig") -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _history(n: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    epoch = np.arange(1, n + 1)
    return pd.DataFrame({
        "epoch": epoch, "train_loss": 0.5 / epoch, "val_loss": 0.5 / epoch + 0.05,
        "val_auc": np.array([0.90, 0.93, 0.95, 0.94, 0.92])[:n], "val_acc": rng.uniform(0.8, 0.9, n),
        "val_sens": 0.85, "val_spec": 0.85, "val_mcc": 0.7,
    })


def _scores(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)


def test_plot_history(tmp_path):
    figs = plots.plot_history(_history())
    assert set(figs) == {"val_auc", "loss", "val_acc"}
    ax = figs["loss"].axes[0]
    assert len(ax.lines) == 3  # train, val, best-epoch marker
    assert _legend(ax)[:2] == ["train_loss", "val_loss"]
    assert "best epoch 3" in _legend(figs["val_auc"].axes[0])[-1]
    for name, fig in figs.items():
        _saves(fig, tmp_path, name)


def test_plot_history_missing_column():
    with pytest.raises(ValueError, match="val_auc"):
        plots.plot_history(_history().drop(columns="val_auc"))


def test_plot_roc_pr(tmp_path):
    fig = plots.plot_roc_pr({"transformer": _scores(seed=0), "GC content": _scores(seed=1)})
    roc, pr = fig.axes
    assert len(roc.lines) == 3 and len(pr.lines) == 3  # two models + chance line
    assert all("AUROC" in t for t in _legend(roc)) and all("AUPRC" in t for t in _legend(pr))
    _saves(fig, tmp_path)


def test_plot_confusion(tmp_path):
    fig = plots.plot_confusion({"tp": 40, "fp": 10, "tn": 45, "fn": 5})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0].startswith("45") and texts[-1].startswith("40")  # rows = true label: tn first, tp last
    assert fig.axes[0].get_ylabel() == "true label"
    _saves(fig, tmp_path)
    with pytest.raises(ValueError, match="fn"):
        plots.plot_confusion({"tp": 1, "fp": 1, "tn": 1})


def test_plot_track(tmp_path):
    starts = np.arange(1000, 9000, 200)
    track = pd.DataFrame({"chrom": "chr1", "start": starts, "end": starts + 200,
                          "score": np.linspace(0, 1, len(starts))})
    track = track.drop(index=[10, 11])  # a gap between bins
    genes = pd.DataFrame({"chrom": ["chr1", "chr1", "chr2"], "start": [1500, 5000, 0],
                          "end": [3000, 7000, 900], "strand": ["+", "-", "+"], "name": ["A", "B", "other"]})
    peaks = pd.DataFrame({"chrom": "chr1", "start": [2000, 6000], "end": [2500, 6400]})
    labels = pd.DataFrame({"chrom": "chr1", "start": [1900, 4000], "end": [2600, 4700], "label": [1, 0]})
    fig = plots.plot_track(track, ("chr1", 0, 10_000), genes=genes, peaks=peaks, labels=labels,
                           extra={"variety B": track.assign(score=track["score"] / 2)})
    assert len(fig.axes) == 5
    assert [t.get_text() for t in fig.axes[0].texts] == ["A", "B"]  # chr2 gene left out
    assert fig.axes[-1].get_xlabel() == "chr1 position (kb)"
    _saves(fig, tmp_path)
    assert len(plots.plot_track(track, ("chr1", 0, 10_000)).axes) == 1


def test_plot_track_bad_input():
    with pytest.raises(ValueError, match="score"):
        plots.plot_track(pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10]}), ("chr1", 0, 10))
    with pytest.raises(ValueError, match="empty"):
        plots.plot_track(pd.DataFrame(columns=["chrom", "start", "end", "score"]), ("chr1", 10, 10))


def test_plot_compare(tmp_path):
    fig = plots.plot_compare({"kmers=10": _history(), "kmers=13": _history(4)}, "val_auc")
    assert len(fig.axes[0].lines) == 2 and _legend(fig.axes[0]) == ["kmers=10", "kmers=13"]
    _saves(fig, tmp_path)
    with pytest.raises(ValueError, match="val_mse"):
        plots.plot_compare({"a": _history()}, "val_mse")


def test_plot_compare_bars(tmp_path):
    table = pd.DataFrame({"kmers": [10, 13, 20], "val_auc": [0.93, 0.93, 0.94], "val_acc": [0.89, 0.9, 0.9]})
    fig = plots.plot_compare_bars(table, "kmers", ["val_auc", "val_acc"])
    assert sum(len(bars) for bars in fig.axes[0].containers) == 6
    assert _legend(fig.axes[0]) == ["10", "13", "20"]
    _saves(fig, tmp_path)


def test_plot_learning_curve(tmp_path):
    table = pd.DataFrame({"mark": ["H3K4me3"] * 4 + ["H3K9ac"] * 2, "curve": ["a", "a", "b", "b", "a", "a"],
                          "train_size": [250, 500] * 3, "auroc": np.linspace(0.7, 0.9, 6)})
    table = table.assign(auroc_low=table["auroc"] - 0.02, auroc_high=table["auroc"] + 0.02)
    fig = plots.plot_learning_curve(table, "train_size")
    assert [ax.get_title() for ax in fig.axes] == ["H3K4me3", "H3K9ac"]
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_xscale() == "log"
    _saves(fig, tmp_path)
    with pytest.raises(ValueError, match="curve"):
        plots.plot_learning_curve(table.drop(columns="curve"), "train_size")


def test_plot_attention(tmp_path):
    weights = np.random.default_rng(0).dirichlet(np.ones(16), size=16)
    fig = plots.plot_attention(weights, title="layer 1")
    assert len(fig.axes) == 2  # map + colorbar
    assert fig.axes[0].get_xlabel() == "key position" and fig.axes[0].get_title() == "layer 1"
    _saves(fig, tmp_path)
    with pytest.raises(ValueError, match="square"):
        plots.plot_attention(np.ones((3, 4)))


def test_plot_scores_by_label(tmp_path):
    y, score = _scores()
    fig = plots.plot_scores_by_label(y, score)
    assert [t.split(" ")[0] for t in _legend(fig.axes[0])] == ["negative", "positive"]
    _saves(fig, tmp_path)


def test_plot_distributions(tmp_path):
    rng = np.random.default_rng(0)
    values = {"H3K4me3": rng.random(50), "H3K9ac": np.r_[rng.random(20), np.nan]}
    fig = plots.plot_distributions(values, "probability", {"H3K4me3": 0.6}, xlim=(0, 1))
    assert [ax.get_title() for ax in fig.axes] == ["H3K4me3 (n=50)", "H3K9ac (n=20)"]
    assert len(fig.axes[0].lines) == 1 and not fig.axes[1].lines  # the threshold drawn where given
    _saves(fig, tmp_path)
    with pytest.raises(ValueError, match="empty"):
        plots.plot_distributions({}, "probability")


# ---- variety maps ----------------------------------------------------------------------------------------


def _map(n_var: int = 6, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    starts = np.concatenate([np.arange(0, 20_000, 200), np.arange(0, 8_000, 200)])
    bins = pd.DataFrame({"chrom": ["chr1"] * 100 + ["chr2"] * 40, "start": starts, "end": starts + 200})
    scores = np.random.default_rng(seed).uniform(0, 0.3, (n_var, len(bins)))
    scores[1::2, 20:40] = 0.9  # odd varieties share a marked block
    return scores, bins, [f"v{i}" for i in range(n_var)]


def test_plot_variety_map(tmp_path):
    scores, bins, samples = _map()
    genes = pd.DataFrame({"chrom": "chr1", "start": [3000, 9000], "end": [6000, 12000], "strand": ["+", "-"],
                          "name": ["A", "B"]})
    fig = plots.plot_variety_map(scores, bins, samples, ("chr1", 2000, 15_000), genes=genes)
    assert len(fig.axes) == 3  # genes, map, colorbar
    genes_ax, map_ax, colorbar = fig.axes
    assert [t.get_text() for t in genes_ax.texts] == ["A", "B"]
    rows = [t.get_text() for t in map_ax.get_yticklabels()]
    assert sorted(rows) == samples and {r[-1] for r in rows[:3]} in ({"0", "2", "4"}, {"1", "3", "5"})
    assert map_ax.get_xlabel() == "chr1 position (kb)" and colorbar.get_ylabel() == "P(mark)"
    assert map_ax.get_xlim() == (2000, 15_000)
    _saves(fig, tmp_path)
    fig = plots.plot_variety_map(scores, bins, samples, ("chr2", 0, 8000), order=np.array([5, 0]))
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["v5", "v0"]
    many = np.repeat(scores, 10, axis=0)
    fig = plots.plot_variety_map(many, bins, [f"v{i}" for i in range(60)], ("chr1", 0, 20_000))
    assert fig.axes[0].get_yticklabels() == [] and fig.axes[0].get_ylabel() == "60 varieties"


def test_plot_variety_map_bad_input():
    scores, bins, samples = _map()
    with pytest.raises(ValueError, match="chr3"):
        plots.plot_variety_map(scores, bins, samples, ("chr3", 0, 1000))
    with pytest.raises(ValueError, match="6 samples"):
        plots.plot_variety_map(scores[:, :10], bins, samples, ("chr1", 0, 1000))


def test_plot_genome_overview(tmp_path):
    scores, bins, samples = _map()
    fig = plots.plot_genome_overview(scores, bins, samples, bin_size=1000)
    assert len(fig.axes) == 3  # chr1, chr2, colorbar
    chr1, chr2, _ = fig.axes
    assert [ax.get_title() for ax in (chr1, chr2)] == ["chr1", "chr2"]
    assert chr1.get_position().width > 2 * chr2.get_position().width  # 20 kb against 8 kb
    assert chr1.images[0].get_array().shape == (6, 20)
    assert sorted(t.get_text() for t in chr1.get_yticklabels()) == samples
    _saves(fig, tmp_path)


def test_plot_reliability(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(y * 0.6 + rng.random(300) * 0.4, 0, 1)
    fig = plots.plot_reliability({"before": (y, p), "after": (y, np.full(300, y.mean()))})
    assert _legend(fig.axes[0])[0].startswith("before (ECE ")
    _saves(fig, tmp_path)


def test_plot_pretraining_draws_loss_and_accuracy():
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.3, 1.1], "val_loss": [1.35, 1.2],
                            "val_acc": [0.3, 0.4]})
    fig = plots.plot_pretraining(history)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="val_acc"):
        plots.plot_pretraining(history.drop(columns="val_acc"))


# ---- many varieties: differences from the reference, PCA ----


def test_plot_variety_differences(tmp_path):
    scores, bins, samples = _map()
    scores[0] = 0.2  # the reference row
    genes = pd.DataFrame({"chrom": "chr1", "start": [3000], "end": [6000], "strand": ["+"], "name": ["A"]})
    fig = plots.plot_variety_differences(scores, bins, samples, ("chr1", 2000, 15_000), genes=genes)
    genes_ax, var_ax, abs_ax, diff_ax, abs_bar, diff_bar = fig.axes
    assert var_ax.get_ylabel() == "variance" and abs_bar.get_ylabel() == "P(mark)"
    assert diff_bar.get_ylabel() == "P(mark) − v0"
    rows = [t.get_text() for t in abs_ax.get_yticklabels()]
    assert rows == [t.get_text() for t in diff_ax.get_yticklabels()] and sorted(rows) == samples
    image = diff_ax.images[0]
    low, high = image.get_clim()
    assert low == -high and high == pytest.approx(np.abs(scores[:, 10:75] - 0.2).max())
    assert image.get_cmap().name.startswith("RdBu_r")
    assert np.all(image.get_array()[rows.index("v0")] == 0)
    assert diff_ax.get_xlabel() == "chr1 position (kb)"
    _saves(fig, tmp_path)


def test_plot_variety_differences_draws_thousands_of_rows_as_group_means():
    scores, bins, _ = _map()
    many = np.repeat(scores, 500, axis=0)  # 3,000 varieties
    fig = plots.plot_variety_differences(many, bins, [f"v{i}" for i in range(3000)], ("chr1", 0, 20_000))
    var_ax, abs_ax, diff_ax, *_ = fig.axes
    assert abs_ax.images[0].get_array().shape == (600, 100)
    assert diff_ax.get_ylabel() == "3,000 varieties (means of 5 rows)"


def test_plot_genome_overview_of_differences():
    scores, bins, samples = _map()
    fig = plots.plot_genome_overview(scores, bins, samples, bin_size=1000, reference_row=0)
    chr1, _, colorbar = fig.axes
    low, high = chr1.images[0].get_clim()
    assert low == -high > -1 and colorbar.get_ylabel() == "P(mark) − v0"


def test_plot_variety_pca(tmp_path):
    pca = pd.DataFrame({"sample": ["reference", "a", "b", "c"], "PC1": [0, 1, 2, 3.0], "PC2": [0, 1, 0, 1.0]})
    labels = pd.Series({"a": "indica", "b": "indica", "z": "aus"}, name="population")
    fig = plots.plot_variety_pca(pca, np.array([0.6, 0.25]), labels)
    ax = fig.axes[0]
    assert sorted(_legend(ax)) == ["indica (2)", "reference", "unlabelled (1)"]
    assert ax.get_xlabel() == "PC1 (60.0% of variance)"
    assert ax.get_legend().get_title().get_text() == "population"
    _saves(fig, tmp_path)
    fig = plots.plot_variety_pca(pca, np.array([0.6, 0.25]))
    assert _legend(fig.axes[0]) == ["varieties (3)", "reference"]


def test_save_writes_the_figure_and_shows_the_saved_file_itself(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    plots.save(fig, tmp_path / "line.png")
    assert shown[0].data == (tmp_path / "line.png").read_bytes()  # the notebook shows the file's bytes
    assert not plt.fignum_exists(fig.number)  # closed: the inline backend does not draw it again
