from pathlib import Path

import numpy as np
import pytest

from seq2epi.data.labels import GenomeLabels, build_labels, drawn_labels

DATA = Path(__file__).parents[1] / "data"
SIZES = {"chr1": 50, "chr2": 25, "chr3": 10}
MAP = {"active": [1, 2], "polycomb": ["5"]}
NAN = np.nan


def tiny_labels(**kw) -> GenomeLabels:
    """States of tests/data/states.bed as active/polycomb, wild-type leaf DHS, 10-bp bins."""
    args = dict(bin_size=10, segmentation=DATA / "states.bed", label_map=MAP,
                peaks={"dhs_leaf": (DATA / "dhs.bed", "wtleaf")})
    return build_labels(SIZES, **{**args, **kw})


def write(tmp_path, text, name="states.bed") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cover_is_the_binned_fraction_and_nan_outside_the_segmentation():
    labels = tiny_labels()
    assert labels.targets == ["active", "polycomb", "dhs_leaf"]
    np.testing.assert_array_equal(labels.cover["chr1"], np.array(
        [[1, 0, 0.5], [1, 0, 0.5], [0, 1, 0], [1, 0, 0], [NAN, NAN, NAN]], np.float32))
    # the last bin of chr2 is 5 bp long; 0-4 of the leaf DHS is 4 bp of bin 0
    np.testing.assert_allclose(labels.cover["chr2"], [[0, 0, 0.4], [1, 0, 0], [1, 0, 0]])
    assert np.isnan(labels.cover["chr3"]).all()
    assert labels.cover["chr1"].dtype == np.float32


def test_peak_extent_may_be_regions_or_whole_chromosomes():
    regions = tiny_labels(extent=["chr1"]).cover
    np.testing.assert_allclose(regions["chr1"][:, 2], [0.5, 0.5, 0, 0, 0.6])
    assert np.isnan(regions["chr2"][:, 2]).all()
    assert np.isnan(regions["chr1"][4, :2]).all()  # the segmentation's targets keep its extent
    whole = build_labels(SIZES, bin_size=10, peaks={"dhs_any": (DATA / "dhs.bed", "")}).cover
    np.testing.assert_allclose(whole["chr1"][:, 0], [0.5, 0.5, 0.5, 0.5, 0.6])
    np.testing.assert_allclose(whole["chr3"][:, 0], [0])


def test_at_reads_the_central_bins_half_or_more_and_nan_where_unlabelled():
    labels = tiny_labels()
    got = labels.at("chr1", np.array([10, 25, 35, 0, 45]), 20)
    np.testing.assert_array_equal(got, np.array(
        [[1, 0, 1], [1, 1, 0], [NAN] * 3, [NAN] * 3, [NAN] * 3], np.float32))
    np.testing.assert_array_equal(labels.at("chr1", np.array([24]), 10), [[0, 1, 0]])
    with pytest.raises(ValueError, match="multiple of bin_size=10"):
        labels.at("chr1", np.array([10]), 15)


def test_real_scale_cover_is_built_with_numpy_not_loops(tmp_path):
    size, seg = 30_000_000, 100
    starts = np.arange(0, 25_000_000, seg)
    lines = "".join(f"c\t{s}\t{s + seg}\t{1 + (s // seg) % 9}\n" for s in starts)
    labels = build_labels({"c": size}, segmentation=write(tmp_path, lines), label_map={"a": [1, 2]})
    cover = labels.cover["c"]
    assert cover.shape == (600_000, 1)
    assert np.isnan(cover[500_000:]).all() and not np.isnan(cover[:500_000]).any()
    assert abs(np.nanmean(cover) - 2 / 9) < 1e-3


@pytest.mark.parametrize("text, kw, message", [
    ("chr1\t0\t20\t1\n", dict(label_map={"a": [1, 7]}), r"states.bed: label_map target 'a' names state\(s\) "
                                                        r"\['7'\] that no line has"),
    ("chr1\t0\t20\t1\nchr1\t20\t30\t12\n", dict(label_states=list(range(1, 10))),
     r"states.bed line 2: state '12' is not one of the label_states"),
    ("chr1\t0\t20\t1\nchr1\t30\t40\t1\nchr1\t15\t25\t2\n", {},
     r"states.bed line 3: segment chr1:15-25 overlaps line 1 \(0-20\)"),
    ("chr9\t0\t20\t1\n", {}, r"states.bed line 1: chromosome 'chr9' is not in the genome"),
    ("chr1\t0\t20\t1\nchr2\t10\t30\t1\n", {}, r"states.bed line 2: the interval ends at 30, past the end"),
    ("chr1\t0\tten\t1\n", {}, r"states.bed line 1: end must be an integer, got 'ten'"),
    ("chr1\t20\t20\t1\n", {}, r"states.bed line 1: expected 0 <= start < end"),
    ("chr1\t0\t20\n", {}, r"states.bed line 1: expected at least 4 tab-separated columns"),
])
def test_bad_segmentation_is_refused_naming_file_and_line(tmp_path, text, kw, message):
    with pytest.raises(ValueError, match=message):
        build_labels(SIZES, bin_size=10, segmentation=write(tmp_path, text), **{"label_map": {"a": [1]},
                                                                                **kw})


def test_empty_peak_set_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"dhs.bed has no peak records named 'rootdhs'"):
        tiny_labels(peaks={"dhs_root": (DATA / "dhs.bed", "rootdhs")})
    with pytest.raises(ValueError, match=r"empty.bed has no peak records \(expected"):
        tiny_labels(peaks={"dhs": (write(tmp_path, "# nothing\n", "empty.bed"), "")})


def test_targets_must_be_named_once_and_exist():
    with pytest.raises(ValueError, match="named both in label_map and in peaks"):
        tiny_labels(peaks={"active": (DATA / "dhs.bed", "")})
    with pytest.raises(ValueError, match="no targets"):
        build_labels(SIZES, segmentation=DATA / "states.bed")


def test_drawn_labels_are_the_segmentation_and_the_first_peak_target():
    sizes = {"chr1": 50, "chr2": 30}
    states, peaks = drawn_labels(DATA / "states.bed", {"dhs_leaf": (DATA / "dhs.bed", "wtleaf")}, sizes)
    assert states.iloc[0].tolist() == ["chr1", 0, 20, "1"]
    assert peaks.values.tolist() == [["chr1", 5, 15], ["chr1", 42, 48], ["chr2", 0, 4]]
    assert drawn_labels(None, {}, sizes) == (None, None)
