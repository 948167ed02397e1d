import numpy as np
import pandas as pd
import pyBigWig
import pytest

from seq2epi.tracks import read_bigwig, write_bedgraph, write_bigwig

SIZES = {"chrB": 500, "chrA": 1000}


@pytest.fixture
def track():
    return pd.DataFrame(
        {
            "chrom": ["chrA", "chrB", "chrA", "chrA", "chrB"],
            "start": [100, 0, 0, 50, 450],
            "end": [150, 50, 50, 100, 500],
            "score": [0.25, 0.5, 0.125, np.nan, 1.0],
        }
    )


def test_bedgraph_round_trip(track, tmp_path):
    path = write_bedgraph(track, tmp_path / "t.bedGraph")
    back = pd.read_csv(path, sep="\t", header=None, names=["chrom", "start", "end", "score"])
    assert back.values.tolist() == [
        ["chrA", 0, 50, 0.125],
        ["chrA", 100, 150, 0.25],
        ["chrB", 0, 50, 0.5],
        ["chrB", 450, 500, 1.0],
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["t.bedGraph"]


def test_bigwig_round_trip(track, tmp_path):
    path = write_bigwig(track, SIZES, tmp_path / "t.bw")
    with pyBigWig.open(str(path)) as bw:
        assert list(bw.chroms().items()) == list(SIZES.items())
    values = read_bigwig(path, "chrA", 0, 200)
    assert values.dtype == np.float32 and values.shape == (200,)
    np.testing.assert_array_equal(values[:50], 0.125)
    assert np.isnan(values[50:100]).all()
    np.testing.assert_array_equal(values[100:150], 0.25)
    np.testing.assert_array_equal(read_bigwig(path, "chrB", 440, 500)[10:], 1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["t.bw"]


def test_bigwig_rejects_overlapping_bins(track, tmp_path):
    bad = pd.concat([track, pd.DataFrame({"chrom": ["chrA"], "start": [120], "end": [170], "score": [1.0]})])
    with pytest.raises(ValueError, match="overlap"):
        write_bigwig(bad, SIZES, tmp_path / "t.bw")
    assert not list(tmp_path.iterdir())


def test_bigwig_rejects_unknown_chrom_and_bins_past_the_end(track, tmp_path):
    with pytest.raises(ValueError, match="chrC"):
        write_bigwig(track.assign(chrom="chrC"), SIZES, tmp_path / "t.bw")
    with pytest.raises(ValueError, match="outside the chromosome"):
        write_bigwig(track.assign(end=track["end"] + 600), SIZES, tmp_path / "t.bw")


def test_read_bigwig_errors(track, tmp_path):
    with pytest.raises(FileNotFoundError):
        read_bigwig(tmp_path / "missing.bw", "chrA", 0, 10)
    path = write_bigwig(track, SIZES, tmp_path / "t.bw")
    with pytest.raises(ValueError, match="chrZ"):
        read_bigwig(path, "chrZ", 0, 10)
