import numpy as np
import pandas as pd
import pytest

from seq2epi.data.tiling import (
    bin_windows,
    centred_bins,
    centred_start,
    clip_regions,
    map_regions,
    n_windows,
    sequence_windows,
    tile,
    track_windows,
    window_starts,
)

MAP_SIZES = {"chrA": 1000, "chrB": 430, "chrC": 60}


def test_window_starts_fit_inside_the_region():
    np.testing.assert_array_equal(window_starts(120, 400, 100, 30), [120, 150, 180, 210, 240, 270, 300])
    assert window_starts(0, 99, 100, 10).size == 0 and window_starts(0, 99, 100, 10).dtype == np.int64
    assert n_windows(1000, 200, 50) == 17 and n_windows(99, 100, 10) == 0
    with pytest.raises(ValueError, match="stride must be a positive"):
        window_starts(0, 100, 10, 0)
    with pytest.raises(ValueError, match="window must be a positive"):
        n_windows(100, 0, 5)


def test_centred_bins_are_stride_wide_and_clipped_to_the_chromosome():
    bins = centred_bins("c", np.array([0, 50, 100]), window=100, stride=50, size=200)
    assert bins.values.tolist() == [["c", 25, 75], ["c", 75, 125], ["c", 125, 175]]
    # a stride wider than the window: the first bin is clipped at 0, the last at the chromosome end
    bins = centred_bins("c", np.array([0, 100]), window=20, stride=100, size=120)
    assert bins.values.tolist() == [["c", 0, 60], ["c", 60, 120]]


@pytest.mark.parametrize("window, stride", [(100, 50), (20, 100), (7, 3), (200, 200)])
def test_bin_windows_inverts_centred_bins(window, stride):
    size = 1000
    starts = window_starts(0, size, window, stride)
    bins = centred_bins("c", starts, window, stride, size).assign(sample="v1")
    windows = bin_windows(bins, window, stride)
    np.testing.assert_array_equal(windows["start"], starts)
    np.testing.assert_array_equal(windows["end"], starts + window)
    assert list(windows.columns) == ["chrom", "start", "end", "sample"]


def test_tile_whole_genome_and_regions():
    with pytest.warns(UserWarning, match=r"\['b'\]"):
        windows = tile({"a": 250, "b": 90}, window=100, stride=50)
    assert windows.values.tolist() == [["a", 0, 100], ["a", 50, 150], ["a", 100, 200], ["a", 150, 250]]
    regions = pd.DataFrame({"chrom": ["a"], "start": [120], "end": [999]})
    assert tile({"a": 250}, 100, 30, regions)["start"].tolist() == [120, 150]


def test_clip_regions_errors():
    with pytest.raises(ValueError, match="region 0 .*shorter than the 100 bp window"):
        clip_regions({"a": 250}, 100, pd.DataFrame({"chrom": ["a"], "start": [200], "end": [400]}))
    with pytest.raises(ValueError, match="zz"):
        tile({"a": 250}, 100, 50, pd.DataFrame({"chrom": ["zz"], "start": [0], "end": [200]}))
    assert clip_regions({"a": 250}, 100, pd.DataFrame({"chrom": ["a"], "start": [-5], "end": [999]})) == [
        ("a", 0, 250)]


def test_map_regions_split_the_tiling_without_gap_or_overlap():
    regions = map_regions(MAP_SIZES, 100, 50, 200)  # four windows a region
    assert regions.values.tolist() == [["chrA", 0, 250], ["chrA", 200, 450], ["chrA", 400, 650],
                                       ["chrA", 600, 850], ["chrA", 800, 1000], ["chrB", 0, 250],
                                       ["chrB", 200, 400]]  # chrC is shorter than a window
    parts = [tile(MAP_SIZES, 100, 50, regions.iloc[[i]]) for i in range(len(regions))]
    together = pd.concat(parts, ignore_index=True)
    assert together.equals(tile({"chrA": 1000, "chrB": 430}, 100, 50))
    with pytest.raises(ValueError, match="1 <= stride <= size"):
        map_regions(MAP_SIZES, 100, 50, 20)


def test_sequence_windows_cover_every_base():
    assert sequence_windows(12, 20, 5).tolist() == [0]
    assert sequence_windows(30, 20, 5).tolist() == [0, 5, 10]
    assert sequence_windows(33, 20, 5).tolist() == [0, 5, 10, 13]  # the last window ends at base 33



def test_centred_start_and_the_track_windows_holding_a_span():
    assert centred_start(100, 101, 20) == 90 and centred_start(100, 103, 20) == 91
    assert track_windows(30, 31, 20, 5, 100) == (15, 4)  # windows 15, 20, 25, 30 hold base 30
    assert track_windows(3, 4, 20, 5, 100) == (0, 1)
    assert track_windows(98, 99, 20, 5, 100) == (80, 1)
