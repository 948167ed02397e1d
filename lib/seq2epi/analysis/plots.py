"""Figures of the lab record: training curves, ROC/PR, confusion, tracks, comparisons, attention, maps,
score distributions."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrow
from matplotlib.ticker import FuncFormatter, MaxNLocator
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from seq2epi.analysis import maps
from seq2epi.lab import metrics

MAX_GENE_NAMES = 12  # gene names are written only when at most this many genes are in view


@contextmanager
def _style() -> Iterator[None]:
    """Seaborn ticks style for the figures made inside, without touching global rcParams."""
    with sns.axes_style("ticks"), sns.plotting_context("notebook", font_scale=0.9):
        yield


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; expected {columns}, got {list(df.columns)}.")


# ---- training curves -------------------------------------------------------------------------------------


def save(fig: Figure, path) -> None:
    """Save a record's figure (dpi 100, tight) and show the saved PNG itself in the notebook, so the record
    stores the picture once (the runner links the notebook's copy to the file)."""
    from IPython.display import Image, display

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(filename=str(path)))


def plot_history(history: pd.DataFrame, chosen: str = "val_auc") -> dict[str, Figure]:
    """The lab's per-run figures "val_auc", "loss" and "val_acc" (a regression: "val_spearman" and "loss");
    the best epoch (max of `chosen`, the selection column) marked."""
    _require(history, ["epoch", "train_loss", "val_loss", chosen], "history")
    if history.empty:
        raise ValueError("history has no rows; expected one row per epoch.")
    best = history.loc[history[chosen].idxmax()]
    panels = {chosen: [chosen], "loss": ["train_loss", "val_loss"]}
    if chosen == "val_auc":
        panels["val_acc"] = ["val_acc"]
    figs = {}
    with _style():
        for key, columns in panels.items():
            fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
            for col in columns:
                ax.plot(history["epoch"], history[col], marker="o", markersize=4, label=col)
            ax.axvline(best["epoch"], color="0.5", ls="--", lw=1,
                       label=f"best epoch {int(best['epoch'])} ({chosen} {best[chosen]:.3f})")
            ax.set(xlabel="epoch", ylabel=key.replace("_", " "))
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(frameon=False, fontsize="small")
            sns.despine(fig)
            figs[key] = fig
    return figs


def plot_compare(histories: dict[str, pd.DataFrame], metric: str) -> Figure:
    """One curve of `metric` against epoch per run (e.g. the lab's kmers comparison)."""
    with _style():
        fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
        for name, history in histories.items():
            _require(history, ["epoch", metric], f"history of run {name!r}")
            ax.plot(history["epoch"], history[metric], marker="o", markersize=4, label=str(name))
        ax.set(xlabel="epoch", ylabel=metric.replace("_", " "))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(title="run", frameon=False, fontsize="small")
        sns.despine(fig)
    return fig


def plot_compare_bars(table: pd.DataFrame, by: str, metrics: list[str]) -> Figure:
    """Grouped bars of each run's `metrics`, one colour per value of the varied parameter `by`."""
    _require(table, [by, *metrics], "comparison table")
    long = table.assign(**{by: table[by].astype(str)}).melt(id_vars=by, value_vars=metrics, var_name="metric")
    with _style():
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(metrics) * max(1, len(table)) ** 0.5, 3.5),
                               layout="constrained")
        sns.barplot(long, x="metric", y="value", hue=by, errorbar=None, ax=ax)
        for bars in ax.containers:
            ax.bar_label(bars, fmt="%.3f", fontsize="x-small", padding=2)
        ax.set(xlabel="", ylabel="value", ylim=(0, 1.12 * max(1e-9, long["value"].max())))
        ax.legend(title=by, frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
        sns.despine(fig)
    return fig


def plot_learning_curve(table: pd.DataFrame, by: str) -> Figure:
    """Test AUROC (95 % interval as a band) against `by` (e.g. training windows), one panel per mark and one
    line per curve (records.test_metrics rows with a `curve` name added)."""
    _require(table, ["mark", "curve", by, "auroc", "auroc_low", "auroc_high"], "learning-curve table")
    marks = list(dict.fromkeys(table["mark"]))
    with _style():
        fig, axes = plt.subplots(1, len(marks), figsize=(4.2 * len(marks) + 1.5, 3.6), sharey=True,
                                 layout="constrained", squeeze=False)
        for ax, mark in zip(axes[0], marks, strict=True):
            for curve, points in table[table["mark"] == mark].groupby("curve", sort=False):
                points = points.sort_values(by)
                line, = ax.plot(points[by], points["auroc"], marker="o", markersize=4, label=curve)
                ax.fill_between(points[by], points["auroc_low"], points["auroc_high"], alpha=0.07,
                                color=line.get_color(), lw=0)
            values = sorted(table[by].unique())
            ax.set(xscale="log" if values[0] > 0 else "linear", title=mark, xlabel=by.replace("_", " "))
            ax.set_xticks(values, [f"{v:,}" for v in values])
            ax.minorticks_off()
        axes[0, 0].set_ylabel("test AUROC")
        axes[0, -1].legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
        sns.despine(fig)
    return fig


# ---- evaluation ------------------------------------------------------------------------------------------


def plot_roc_pr(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """ROC and precision-recall panels, one line per {name: (y_true, y_score)}, AUROC/AUPRC in the legend."""
    with _style():
        fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
        for name, (y, score) in curves.items():
            y, score = np.asarray(y), np.asarray(score)
            fpr, tpr, _ = roc_curve(y, score)
            precision, recall, _ = precision_recall_curve(y, score)
            roc.plot(fpr, tpr, label=f"{name} (AUROC {roc_auc_score(y, score):.3f})")
            pr.plot(recall, precision, drawstyle="steps-post",
                    label=f"{name} (AUPRC {average_precision_score(y, score):.3f})")
        roc.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
        pr.axhline(y.mean(), color="0.6", ls="--", lw=1)  # chance: the positive fraction
        roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
        for ax in (roc, pr):
            ax.set(xlim=(0, 1), ylim=(0, 1.01))
        roc.legend(loc="lower right", frameon=False, fontsize="small")
        pr.legend(loc="lower left", frameon=False, fontsize="small")
        sns.despine(fig)
    return fig


def plot_confusion(metrics: dict) -> Figure:
    """Confusion matrix from tp, fp, tn, fn: rows the true label, cells the count and share of the row."""
    missing = [k for k in ("tp", "fp", "tn", "fn") if k not in metrics]
    if missing:
        raise ValueError(f"metrics lacks keys {missing}; expected tp, fp, tn and fn.")
    counts = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]], dtype=int)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    annot = np.array([[f"{n:,}\n{s:.1%}" for n, s in zip(row, srow, strict=True)]
                      for row, srow in zip(counts, shares, strict=True)])
    with _style():
        fig, ax = plt.subplots(figsize=(3.8, 3.4), layout="constrained")
        ticks = ["negative", "positive"]
        sns.heatmap(shares, annot=annot, fmt="", cmap="Blues", vmin=0, vmax=1, cbar=False, square=True,
                    linewidths=1, xticklabels=ticks, yticklabels=ticks, ax=ax)
        ax.set(xlabel="predicted label", ylabel="true label")
        ax.tick_params(length=0)
        ax.tick_params(axis="y", labelrotation=0)
    return fig


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], n_bins: int = 10) -> Figure:
    """Reliability diagram: observed positive rate against mean probability per bin, one line per
    {name: (y_true, y_prob)} with its ECE and Brier score, and the windows per bin below."""
    with _style():
        fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 5.2), height_ratios=(3, 1), sharex=True,
                                       layout="constrained")
        ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
        for name, (y, p) in curves.items():
            bins = metrics.reliability_bins(y, p, n_bins)
            label = f"{name} (ECE {metrics.ece(y, p, n_bins):.3f}, Brier {metrics.brier(y, p):.3f})"
            line = ax.plot(bins["mean_prob"], bins["frac_pos"], marker="o", ms=4, label=label)[0]
            hist.stairs(bins["count"], np.r_[bins["lower"], 1.0], color=line.get_color())
        ax.set(ylabel="observed positive rate", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", frameon=False, fontsize="small")
        hist.set(xlabel="predicted probability", ylabel="windows")
        sns.despine(fig)
    return fig


def plot_scores_by_label(y_true: np.ndarray, y_score: np.ndarray) -> Figure:
    """Histogram of predicted probability for each true label (densities, so both classes are visible)."""
    y_true, y_score = np.asarray(y_true).astype(int), np.asarray(y_score, dtype=float)
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_score has {y_score.shape}; expected equal.")
    word = {0: "negative", 1: "positive"}
    values, counts = np.unique(y_true, return_counts=True)
    names = {v: f"{word.get(v, v)} (n={n:,})" for v, n in zip(values, counts, strict=True)}
    df = pd.DataFrame({"score": y_score, "true label": pd.Series(y_true).map(names)})
    with _style():
        fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
        sns.histplot(df, x="score", hue="true label", bins=40, binrange=(0, 1), stat="density",
                     hue_order=sorted(names.values()), common_norm=False, element="step", ax=ax)
        ax.set(xlabel="predicted probability", xlim=(0, 1))
        sns.despine(fig)
    return fig


def plot_gene_scatter(y: np.ndarray, scores: dict[str, np.ndarray], marks: list[str], results: dict
                      ) -> Figure:
    """Measured value (rows: marks) against each model's score (columns), one dot per test gene, each panel
    titled with its Spearman."""
    y = np.asarray(y).reshape(len(y), -1)
    with _style():
        fig, axes = plt.subplots(len(marks), len(scores), figsize=(3.2 * len(scores), 2.8 * len(marks)),
                                 squeeze=False, layout="constrained")
        for t, mark in enumerate(marks):
            for ax, (name, score) in zip(axes[t], scores.items(), strict=True):
                ax.scatter(np.asarray(score)[:, t], y[:, t], s=4, alpha=0.4, color="C0", linewidths=0)
                ax.set_title(f"{mark}: {name}, Spearman {results[mark][name]['spearman']:.3f}", fontsize=9)
                ax.set(xlabel="score", ylabel=f"log1p {mark}" if ax is axes[t, 0] else "")
        sns.despine(fig)
    return fig


def plot_target_tracks(tracks: dict[str, pd.DataFrame], region: tuple[str, int, int],
                       genes: pd.DataFrame | None = None, peaks: pd.DataFrame | None = None,
                       states: pd.DataFrame | None = None) -> Figure:
    """plot_track of a multi-target record: every target's track over `region`, under the genes, the
    segmentation and the peaks."""
    (first, track), *others = tracks.items()
    return plot_track(track, region, genes=genes, peaks=peaks, states=states, extra=dict(others), name=first)


def plot_gene_track_scatter(per_gene: pd.DataFrame, mark: str, targets: list[str], results: dict) -> Figure:
    """A gene's measured `mark` (log1p) against each target's mean track score over its TSS region, one panel
    per target titled with the Spearman (track_at_genes' table and results)."""
    with _style():
        fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3), squeeze=False,
                                 layout="constrained")
        for ax, target in zip(axes[0], targets, strict=True):
            ax.scatter(per_gene[f"score_{target}"], per_gene[f"log1p_{mark}"], s=4, alpha=0.4, linewidths=0)
            ax.set_title(f"{target}: Spearman {results[mark][target]['spearman']:.3f}", fontsize=9)
            ax.set(xlabel=f"mean P({target}) at the TSS", ylabel=f"log1p {mark}" if ax is axes[0, 0] else "")
        sns.despine(fig)
    return fig


def plot_attention(weights: np.ndarray, title: str = "") -> Figure:
    """Heatmap of one attention map [L queries, L keys]."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(f"attention weights have shape {weights.shape}; expected a square [L, L] array.")
    with _style():
        fig, ax = plt.subplots(figsize=(5, 4.3), layout="constrained")
        im = ax.imshow(weights, cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=ax, label="attention weight", shrink=0.85)
        ax.set(xlabel="key position", ylabel="query position", title=title)
    return fig


def plot_distributions(values: dict[str, np.ndarray], xlabel: str, marks: dict[str, float] | None = None,
                       xlim: tuple[float, float] | None = None) -> Figure:
    """One histogram panel per {name: values} (NaN left out), a dashed line at marks[name] when given (e.g.
    the mark's threshold); shared x axis."""
    if not values:
        raise ValueError("values is empty; expected {name: array} with at least one entry.")
    with _style():
        fig, axes = plt.subplots(1, len(values), figsize=(3.6 * len(values), 3), sharex=True, squeeze=False,
                                 layout="constrained")
        for ax, (name, data) in zip(axes[0], values.items(), strict=True):
            data = np.asarray(data, dtype=float)
            data = data[~np.isnan(data)]
            sns.histplot(data, bins=40, binrange=xlim, element="step", ax=ax)
            if marks and name in marks:
                ax.axvline(marks[name], color="0.3", ls="--", lw=1)
            ax.set(title=f"{name} (n={len(data):,})", xlabel=xlabel, xlim=xlim)
        sns.despine(fig)
    return fig


# ---- genome tracks ---------------------------------------------------------------------------------------


def _in_region(df: pd.DataFrame, region: tuple[str, int, int], what: str) -> pd.DataFrame:
    _require(df, ["chrom", "start", "end"], what)
    chrom, start, end = region
    keep = (df["chrom"] == chrom) & (df["end"] > start) & (df["start"] < end)
    return df[keep].sort_values("start")


def _pack(starts: np.ndarray, ends: np.ndarray, gap: float) -> np.ndarray:
    """Greedy row per interval (sorted by start) so that intervals in one row are at least `gap` apart."""
    row_ends: list[float] = []
    rows = np.zeros(len(starts), dtype=int)
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        rows[i] = next((r for r, last in enumerate(row_ends) if last + gap <= s), len(row_ends))
        if rows[i] == len(row_ends):
            row_ends.append(e)
        row_ends[rows[i]] = e
    return rows


def _gene_rows(genes: pd.DataFrame, span: float) -> tuple[np.ndarray, bool]:
    """Row of each gene (room left for names when few genes are in view) and whether names are drawn."""
    named = 0 < len(genes) <= MAX_GENE_NAMES and "name" in genes.columns
    gap = span * (0.08 if named else 0.01)
    return _pack(genes["start"].to_numpy(), genes["end"].to_numpy(), gap), named


def _draw_genes(ax, genes: pd.DataFrame, span: float) -> None:
    rows, named = _gene_rows(genes, span)
    for row, gene in zip(rows, genes.itertuples(), strict=True):
        length = gene.end - gene.start
        minus = getattr(gene, "strand", "+") == "-"
        ax.add_patch(FancyArrow(gene.end if minus else gene.start, -row, -length if minus else length, 0,
                                width=0.35, head_width=0.6, head_length=min(length, span * 0.015),
                                length_includes_head=True, color="#2b5d8a", lw=0))
        if named:
            ax.text((gene.start + gene.end) / 2, -row + 0.35, str(gene.name), ha="center", va="bottom",
                    fontsize="x-small", clip_on=True)
    ax.set_ylim(-rows.max(initial=0) - 0.6, 1.2 if named else 0.6)
    ax.set_ylabel("genes", rotation=0, ha="right", va="center")


def _draw_intervals(ax, df: pd.DataFrame, name: str, colors=None) -> None:
    ax.broken_barh(list(zip(df["start"], df["end"] - df["start"], strict=True)), (0.1, 0.8),
                   facecolors=colors if colors is not None else "#c0504d")
    ax.set_ylim(0, 1)
    ax.set_ylabel(name, rotation=0, ha="right", va="center")


def _draw_states(ax, states: pd.DataFrame, span: float) -> None:
    """Segments coloured by state, the state written on segments wide enough to hold it."""
    names = sorted(set(states["state"].astype(str)), key=lambda s: (len(s), s))
    palette = dict(zip(names, sns.color_palette("tab10", len(names)).as_hex(), strict=True))
    _draw_intervals(ax, states, "states", [palette[s] for s in states["state"].astype(str)])
    for seg in states.itertuples():
        if seg.end - seg.start > span / 60:
            ax.text((seg.start + seg.end) / 2, 0.5, str(seg.state), ha="center", va="center",
                    fontsize="x-small", color="white", clip_on=True)


def _draw_score(ax, track: pd.DataFrame, name: str) -> None:
    """Step plot of the bins (NaN breaks the line across gaps between bins)."""
    starts, ends, score = (track[c].to_numpy(dtype=float) for c in ("start", "end", "score"))
    x, y = np.column_stack([starts, ends]).ravel(), np.repeat(score, 2)
    gaps = np.flatnonzero(starts[1:] > ends[:-1]) + 1
    x, y = np.insert(x, 2 * gaps, np.nan), np.insert(y, 2 * gaps, np.nan)
    ax.fill_between(x, y, color="#4c72b0", alpha=0.35, lw=0)
    ax.plot(x, y, color="#4c72b0", lw=0.8)
    ax.set_ylabel(name, rotation=0, ha="right", va="center")


def plot_track(track: pd.DataFrame, region: tuple[str, int, int], genes: pd.DataFrame | None = None,
               peaks: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
               extra: dict[str, pd.DataFrame] | None = None, states: pd.DataFrame | None = None,
               name: str = "score") -> Figure:
    """Genome-browser view of `region`: gene models, a segmentation, peaks, labelled windows, the score
    track (named `name`), `extra` tracks.

    `track` and each `extra` track have columns chrom, start, end, score; `labels` has chrom, start, end,
    label (positive windows dark, negative light); `states` has chrom, start, end, state (one colour per
    state, written on its segments); all are clipped to `region` = (chrom, start, end).
    """
    chrom, start, end = region
    if start >= end:
        raise ValueError(f"region {chrom}:{start}-{end} is empty; expected start < end.")
    scores = {name: _in_region(track, region, "track")}
    for name, df in (extra or {}).items():
        scores[name] = _in_region(df, region, f"extra track {name!r}")
    for name, df in scores.items():
        _require(df, ["score"], f"track {name!r}")
    span = end - start
    rows: list[tuple[str, str, pd.DataFrame, float]] = []  # kind, name, intervals, height
    if genes is not None:
        genes = _in_region(genes, region, "genes")
        rows.append(("genes", "genes", genes, 0.45 + 0.4 * (_gene_rows(genes, span)[0].max(initial=0) + 1)))
    if states is not None:
        _require(states, ["state"], "states")
        rows.append(("states", "states", _in_region(states, region, "states"), 0.35))
    if peaks is not None:
        rows.append(("intervals", "peaks", _in_region(peaks, region, "peaks"), 0.35))
    if labels is not None:
        _require(labels, ["label"], "labels")
        rows.append(("intervals", "windows", _in_region(labels, region, "labels"), 0.35))
    rows += [("score", name, df, 1.3) for name, df in scores.items()]

    unit, scale = ("Mb", 1e6) if span >= 2e6 else ("kb", 1e3)
    top = max([df["score"].max() for df in scores.values() if len(df)] + [1e-9])
    bottom = min([df["score"].min() for df in scores.values() if len(df)] + [0])
    top = 1 if bottom >= 0 and top <= 1 else top  # probabilities: keep the full 0-1 scale
    with _style():
        fig, axes = plt.subplots(len(rows), 1, sharex=True, figsize=(10, 0.6 + sum(h for *_, h in rows)),
                                 height_ratios=[h for *_, h in rows], layout="constrained", squeeze=False)
        for ax, (kind, name, df, _) in zip(axes[:, 0], rows, strict=True):
            if kind == "genes":
                _draw_genes(ax, df, span)
            elif kind == "states":
                _draw_states(ax, df, span)
            elif kind == "intervals":
                colors = np.where(df["label"] > 0.5, "#2f4f4f", "#c8c8c8") if "label" in df else None
                _draw_intervals(ax, df, name, colors)
            else:
                _draw_score(ax, df, name)
                ax.set_ylim(bottom, top * 1.05)
                sns.despine(ax=ax)
                continue
            ax.set_yticks([])
            ax.tick_params(axis="x", bottom=False)
            sns.despine(ax=ax, left=True, bottom=True)
        ax = axes[-1, 0]
        ax.set_xlim(start, end)
        digits = 0 if span >= 10 * scale else 1 if span >= scale else 3
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / scale:,.{digits}f}"))
        ax.set_xlabel(f"{chrom} position ({unit})")
    return fig


# ---- variety maps ----------------------------------------------------------------------------------------

MAX_ROW_LABELS = 40  # variety names are written only when at most this many rows are drawn
MAX_DRAWN_ROWS = 600  # more varieties are drawn as means of consecutive rows, in the drawn order


def _grid(scores: np.ndarray, starts: np.ndarray, step: int) -> tuple[np.ndarray, int, int]:
    """Columns of `scores` placed on a regular grid of `step` bp from the first start (NaN where no bin)."""
    first = int(starts.min())
    cols = (starts - first) // step
    img = np.full((len(scores), int(cols.max()) + 1), np.nan)
    img[:, cols] = scores
    return img, first, first + img.shape[1] * step


def _score_limits(scores: np.ndarray) -> tuple[float, float]:
    """0-1 for probabilities, else the scores' range."""
    low, high = np.nanmin(scores, initial=0), np.nanmax(scores, initial=1e-9)
    return min(low, 0), 1 if low >= 0 and high <= 1 else high


def _difference_limits(delta: np.ndarray) -> tuple[float, float]:
    """Limits symmetric about 0 that hold every difference."""
    reach = max(float(np.nanmax(np.abs(delta), initial=0)), 1e-3)
    return -reach, reach


def _row_group(n_rows: int) -> int:
    """How many consecutive rows one drawn row averages: at most MAX_DRAWN_ROWS rows are drawn."""
    return max(1, -(-n_rows // MAX_DRAWN_ROWS))


def _fit_rows(img: np.ndarray) -> np.ndarray:
    """img with consecutive rows averaged in groups of _row_group rows."""
    group = _row_group(len(img))
    if group == 1:
        return img
    padded = np.full((-(-len(img) // group) * group, img.shape[1]), np.nan)
    padded[: len(img)] = img
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group of NaN only stays NaN
        return np.nanmean(padded.reshape(-1, group, img.shape[1]), axis=1)


def _heatmap(ax, img: np.ndarray, x0: float, x1: float, limits: tuple[float, float], cmap: str = "viridis"):
    """The rows of img (averaged in groups past MAX_DRAWN_ROWS) as a heatmap over x0-x1; NaN light grey."""
    img = _fit_rows(img)
    cmap = plt.get_cmap(cmap).with_extremes(bad="0.85")
    return ax.imshow(img, cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto", interpolation="nearest",
                     extent=(x0, x1, len(img) - 0.5, -0.5))


def _label_rows(ax, names: np.ndarray) -> None:
    if len(names) <= MAX_ROW_LABELS:
        size = "x-small" if len(names) > 20 else "small"
        ax.set_yticks(range(len(names)), [str(n) for n in names], fontsize=size)
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
        group = _row_group(len(names))
        ax.set_ylabel(f"{len(names):,} varieties" + (f" (means of {group} rows)" if group > 1 else ""))


def _region_view(scores: np.ndarray, bins: pd.DataFrame, samples: list[str], region: tuple[str, int, int]
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """The map's scores and bins inside `region`."""
    chrom, start, end = region
    if start >= end:
        raise ValueError(f"region {chrom}:{start}-{end} is empty; expected start < end.")
    scores = maps.check_map(scores, bins, samples)
    keep = ((bins["chrom"] == chrom) & (bins["end"] > start) & (bins["start"] < end)).to_numpy()
    if not keep.any():
        raise ValueError(f"no bin of the map falls in region {chrom}:{start}-{end}; "
                         f"the map covers {sorted(set(bins['chrom']))}.")
    return scores[:, keep], bins[keep].reset_index(drop=True)


def _map_axes(region: tuple[str, int, int], genes: pd.DataFrame | None, heights: list[float]):
    """A figure of stacked panels sharing x over `region`, the genes' panel drawn on top when given."""
    chrom, start, end = region
    span = end - start
    if genes is not None:
        genes = _in_region(genes, region, "genes")
        heights = [0.45 + 0.4 * (_gene_rows(genes, span)[0].max(initial=0) + 1), *heights]
    fig, axes = plt.subplots(len(heights), 1, sharex=True, figsize=(10, 0.9 + sum(heights)),
                             height_ratios=heights, layout="constrained", squeeze=False)
    axes = list(axes[:, 0])
    if genes is not None:
        genes_ax = axes.pop(0)
        _draw_genes(genes_ax, genes, span)
        genes_ax.set_yticks([])
        genes_ax.tick_params(axis="x", bottom=False)
        sns.despine(ax=genes_ax, left=True, bottom=True)
    ax = axes[-1]
    ax.set_xlim(start, end)
    unit, scale = ("Mb", 1e6) if span >= 2e6 else ("kb", 1e3)
    digits = 0 if span >= 10 * scale else 1 if span >= scale else 3
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / scale:,.{digits}f}"))
    ax.set_xlabel(f"{chrom} position ({unit})")
    return fig, axes


def _map_height(n_rows: int) -> float:
    return float(np.clip(0.16 * n_rows, 1.2, 7))


def plot_variety_map(scores: np.ndarray, bins: pd.DataFrame, samples: list[str], region: tuple[str, int, int],
                     genes: pd.DataFrame | None = None, order: np.ndarray | None = None) -> Figure:
    """Varieties × bins heatmap of `region` under its genes; `order`: the rows to draw (default
    maps.row_order)."""
    view, view_bins = _region_view(scores, bins, samples, region)
    order = maps.row_order(view) if order is None else np.asarray(order)
    starts = view_bins["start"].to_numpy()
    img, x0, x1 = _grid(view[order], starts, int(np.median(view_bins["end"].to_numpy() - starts)))
    with _style():
        fig, (ax,) = _map_axes(region, genes, [_map_height(len(order))])
        im = _heatmap(ax, img, x0, x1, _score_limits(view))
        fig.colorbar(im, ax=ax, label="P(mark)", pad=0.01)
        _label_rows(ax, np.asarray(samples, dtype=object)[order])
    return fig


def plot_variety_differences(scores: np.ndarray, bins: pd.DataFrame, samples: list[str],
                             region: tuple[str, int, int], genes: pd.DataFrame | None = None,
                             reference_row: int = 0, order: np.ndarray | None = None) -> Figure:
    """What varies between varieties over `region`: genes, each bin's variance across varieties, the map of
    P(mark), and each variety's difference from the reference row (diverging colours, 0 white); both maps
    draw the rows in one order (default maps.row_order of the differences)."""
    view, view_bins = _region_view(scores, bins, samples, region)
    delta = maps.difference_from_reference(view, reference_row)
    order = maps.row_order(delta) if order is None else np.asarray(order)
    starts = view_bins["start"].to_numpy()
    step = int(np.median(view_bins["end"].to_numpy() - starts))
    names = np.asarray(samples, dtype=object)[order]
    variance = maps.bin_variance(view, view_bins, samples)
    height = _map_height(len(order))
    with _style():
        fig, (var_ax, abs_ax, diff_ax) = _map_axes(region, genes, [1.0, height, height])
        _draw_score(var_ax, variance, "variance")
        var_ax.set_ylim(0, max(float(np.nanmax(variance["score"], initial=0)), 1e-6) * 1.05)
        sns.despine(ax=var_ax)
        for ax, values, limits, cmap, label in (
                (abs_ax, view, _score_limits(view), "viridis", "P(mark)"),
                (diff_ax, delta, _difference_limits(delta), "RdBu_r", f"P(mark) − {samples[reference_row]}")):
            img, x0, x1 = _grid(values[order], starts, step)
            fig.colorbar(_heatmap(ax, img, x0, x1, limits, cmap), ax=ax, label=label, pad=0.01)
            _label_rows(ax, names)
    return fig


def plot_genome_overview(scores: np.ndarray, bins: pd.DataFrame, samples: list[str], bin_size: int,
                         order: np.ndarray | None = None, reference_row: int | None = None) -> Figure:
    """Genome-wide map: one panel per chromosome (width by length) of mean scores in `bin_size` bp blocks;
    with `reference_row`, each variety's difference from that row (diverging colours, 0 white)."""
    means, blocks = maps.aggregate(scores, bins, samples, bin_size)
    label, cmap, limits = "P(mark)", "viridis", _score_limits(means)
    if reference_row is not None:
        means = maps.difference_from_reference(means, reference_row)
        label, cmap, limits = f"P(mark) − {samples[reference_row]}", "RdBu_r", _difference_limits(means)
    order = maps.row_order(means) if order is None else np.asarray(order)
    starts = blocks["start"].to_numpy() // bin_size * bin_size
    chroms = list(dict.fromkeys(blocks["chrom"]))
    grids = [_grid(means[order][:, mask], starts[mask], bin_size)
             for mask in (blocks["chrom"].to_numpy() == c for c in chroms)]
    with _style():
        fig, axes = plt.subplots(1, len(chroms), sharey=True, width_ratios=[x1 - x0 for _, x0, x1 in grids],
                                 figsize=(12, 1.3 + _map_height(len(order))), layout="constrained",
                                 squeeze=False)
        fig.get_layout_engine().set(wspace=0.015)
        for ax, chrom, (img, x0, x1) in zip(axes[0], chroms, grids, strict=True):
            im = _heatmap(ax, img, x0, x1, limits, cmap)
            ax.set_title(str(chrom), fontsize="small")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=3, prune="both"))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e6:g}"))
            ax.tick_params(axis="x", labelsize="x-small")
            ax.tick_params(axis="y", length=0)
        _label_rows(axes[0, 0], np.asarray(samples, dtype=object)[order])
        fig.colorbar(im, ax=axes[0], label=label, pad=0.01)
        fig.supxlabel(f"position (Mb), mean of {bin_size:,} bp blocks", fontsize="small")
    return fig


def plot_variety_pca(pca: pd.DataFrame, explained: np.ndarray, labels: pd.Series | None = None) -> Figure:
    """Varieties on their first two principal components (maps.variety_pca), coloured by `labels`
    (variety -> population; varieties it lacks are "unlabelled"), the reference a black star."""
    _require(pca, ["sample", "PC1", "PC2"], "pca")
    is_reference = (pca["sample"] == maps.REFERENCE).to_numpy()
    points = pca[~is_reference]
    size = 30 if len(points) <= 200 else 8
    with _style():
        fig, ax = plt.subplots(figsize=(6, 4.8), layout="constrained")
        if labels is not None:
            hue = points["sample"].map(labels).replace("", np.nan).fillna("unlabelled")
            counts = hue.value_counts()
            hue = hue.map(lambda g: f"{g} ({counts[g]:,})")
            sns.scatterplot(x=points["PC1"], y=points["PC2"], hue=hue.rename(labels.name or "label"),
                            hue_order=sorted(hue.unique()), s=size, linewidth=0, alpha=0.8, ax=ax)
        else:
            ax.scatter(points["PC1"], points["PC2"], s=size, lw=0, alpha=0.8, color="#4c72b0",
                       label=f"varieties ({len(points):,})")
        ax.scatter(pca.loc[is_reference, "PC1"], pca.loc[is_reference, "PC2"], marker="*", s=160,
                   color="black", label=maps.REFERENCE)
        ax.set(xlabel=f"PC1 ({explained[0]:.1%} of variance)", ylabel=f"PC2 ({explained[1]:.1%} of variance)")
        ax.legend(frameon=False, fontsize="small", loc="center left", bbox_to_anchor=(1, 0.5),
                  title=None if labels is None else labels.name)
        sns.despine(fig)
    return fig


def plot_pretraining(history: pd.DataFrame) -> Figure:
    """Masked-token loss (train, validation) and validation accuracy per epoch of pretraining."""
    _require(history, ["epoch", "train_loss", "val_loss", "val_acc"], "pretraining history")
    with _style():
        fig, (loss, acc) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
        for col in ("train_loss", "val_loss"):
            loss.plot(history["epoch"], history[col], marker="o", markersize=4, label=col)
        acc.plot(history["epoch"], history["val_acc"], marker="o", markersize=4, color="C2")
        acc.axhline(0.25, color="0.5", ls="--", lw=1, label="chance")
        loss.set(xlabel="epoch", ylabel="masked-token loss")
        acc.set(xlabel="epoch", ylabel="val masked-token accuracy")
        for ax in (loss, acc):
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(frameon=False, fontsize="small")
        sns.despine(fig)
    return fig


def plot_population(store, region: tuple[str, int, int], scores: np.ndarray, bins: pd.DataFrame, stride: int,
                    genes: pd.DataFrame | None = None, labels: pd.Series | None = None) -> dict[str, Figure]:
    """04's figures of a variety map (a tracks.MatrixStore; `scores` [varieties, bins] its genome): the
    varieties' differences over `region`, the genome in blocks as P(mark) and as the difference, and the
    varieties on their first two principal components."""
    block = maps.overview_bin_size(bins, stride)
    return {"variety_map": plot_variety_differences(*store.read(*region), store.samples, region, genes=genes),
            "genome_overview": plot_genome_overview(scores, bins, store.samples, block),
            "genome_overview_difference": plot_genome_overview(scores, bins, store.samples, block,
                                                               reference_row=0),
            "variety_pca": plot_variety_pca(*maps.variety_pca(scores, store.samples), labels)}
