import numpy as np
import pandas as pd
import pyBigWig
import pytest

from seq2epi.analysis.tracks import (
    MatrixStore,
    first_region,
    merge_parts,
    read_bigwig,
    read_part,
    write_bedgraph,
    write_bigwig,
    write_part,
)
from seq2epi.data.tiling import map_regions

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


# ---- variety × bin matrices (issue 4) ----

MAP_SIZES = {"chrA": 1000, "chrB": 430, "chrC": 50}
ROWS = ["reference", "v1", "v2"]


def region_scores(region, marks=1):
    """Deterministic scores [rows, windows(, marks)] of a region of the 100 bp / stride 50 tiling."""
    chrom, start, end = region
    starts = np.arange(start, end - 100 + 1, 50)
    scores = (starts[None, :, None] + np.arange(len(ROWS))[:, None, None] * 0.5 + np.arange(marks)) / 1000
    return (scores[..., 0] if marks == 1 else scores).astype(np.float32)


def write_map(path, regions, resume=False, marks=("score",)):
    with MatrixStore.create(path, ROWS, MAP_SIZES, 100, 50, list(marks), resume=resume) as store:
        for region in regions.itertuples(index=False):
            if not store.done(*region):
                store.write_region(*region, region_scores(tuple(region), len(marks)))
    return path


def test_matrix_store_round_trip_and_exports(tmp_path):
    regions = map_regions(MAP_SIZES, 100, 50, 200)
    path = write_map(tmp_path / "m.h5", regions)
    with MatrixStore(path) as store:
        assert store.samples == ROWS and store.chrom_sizes == MAP_SIZES
        assert (store.window, store.stride) == (100, 50)
        assert all(store.done(*r) for r in regions.itertuples(index=False))
        scores, bins = store.read("chrA", 120, 260)
        assert bins.values.tolist() == [["chrA", 75, 125], ["chrA", 125, 175], ["chrA", 175, 225],
                                        ["chrA", 225, 275]]
        np.testing.assert_allclose(scores[1], (np.arange(50, 250, 50) + 0.5) / 1000)
        assert store.read("chrC")[0].shape == (3, 0)
        scores, bins = store.read_genome(["chrB", "chrA"])
        assert scores.shape == (3, 19 + 7) and bins["chrom"].tolist() == ["chrA"] * 19 + ["chrB"] * 7
        np.testing.assert_array_equal(scores[:, 19:], store.read("chrB")[0])
        store.export_bigwig("v2", tmp_path / "v2.bw")
        store.export_bedgraph("v2", tmp_path / "v2.bedGraph")
        with pytest.raises(ValueError, match="sample 'v9' is not in matrix store"):
            store.track("v9")
    values = read_bigwig(tmp_path / "v2.bw", "chrA", 25, 75)
    np.testing.assert_allclose(values, 0.001, rtol=1e-6)  # window 0-100, binned 25-75
    bedgraph = pd.read_csv(tmp_path / "v2.bedGraph", sep="\t", header=None)
    assert len(bedgraph) == 19 + 7 and bedgraph.iloc[0, :3].tolist() == ["chrA", 25, 75]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5", "v2.bedGraph", "v2.bw"]


def test_matrix_store_resumes_after_a_kill_with_the_same_matrix(tmp_path):
    regions = map_regions(MAP_SIZES, 100, 50, 200)
    full = write_map(tmp_path / "full.h5", regions)
    part = write_map(tmp_path / "part.h5", regions.iloc[:3])  # killed after three regions
    with MatrixStore(part, "r+") as store:  # killed after writing scores, before the done flag
        store._file["scores/score/chrA"][:, 12:16] = 0.5
    with MatrixStore(part) as store:
        assert [store.done(*r) for r in regions.itertuples(index=False)] == [True] * 3 + [False] * 4
    write_map(part, regions, resume=True)
    with MatrixStore(full) as a, MatrixStore(part) as b:
        for chrom in MAP_SIZES:
            np.testing.assert_array_equal(a.read(chrom)[0], b.read(chrom)[0])
    with pytest.raises(ValueError, match="holds other samples"):
        MatrixStore.create(part, ROWS[:2], MAP_SIZES, 100, 50, resume=True)


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_matrix_store_dtype_and_compression(tmp_path, compression):
    rng = np.random.default_rng(0)
    scores = rng.random((3, 19)).astype(np.float32)
    scores[1, 4:9] = np.nan  # bins a region left unscored
    kw = dict(samples=ROWS, chrom_sizes=MAP_SIZES, window=100, stride=50, compression=compression)
    for dtype, error in (("float32", 0), ("float16", 2**-12)):
        with MatrixStore.create(tmp_path / f"{dtype}.h5", dtype=dtype, **kw) as store:
            store.write_region("chrA", 0, 1000, scores)
        with MatrixStore(tmp_path / f"{dtype}.h5") as store:
            back, _ = store.read("chrA")
            assert back.dtype == np.float32 and store.track("v1")["score"].dtype == np.float32
            assert store._file["scores/score/chrA"].dtype == np.dtype(dtype)
            assert store._file["scores/score/chrA"].compression == compression
        np.testing.assert_array_equal(np.isnan(back), np.isnan(scores))
        assert np.nanmax(np.abs(back - scores)) <= error
    with pytest.raises(ValueError, match="dtype must be one of .* and compression one of"):
        MatrixStore.create(tmp_path / "bad.h5", dtype="int8", **kw)


def test_matrix_store_several_marks(tmp_path):
    regions = map_regions(MAP_SIZES, 100, 50, 300)
    with MatrixStore(write_map(tmp_path / "m.h5", regions, marks=("H3K4me3", "H3K27me3"))) as store:
        a, _ = store.read("chrB", mark="H3K4me3")
        b, _ = store.read("chrB", mark="H3K27me3")
        np.testing.assert_allclose(b - a, 0.001, rtol=1e-4)


def test_matrix_store_rejects_misaligned_regions_and_wrong_shapes(tmp_path):
    with MatrixStore.create(tmp_path / "m.h5", ROWS, MAP_SIZES, 100, 50) as store:
        with pytest.raises(ValueError, match="does not start on a window"):
            store.write_region("chrA", 25, 300, np.zeros((3, 4)))
        with pytest.raises(ValueError, match=r"expects \(3, 4, 1\)"):
            store.write_region("chrA", 0, 250, np.zeros((2, 4)))
        with pytest.raises(ValueError, match="chromosome 'chrZ' is not in matrix store"):
            store.write_region("chrZ", 0, 250, np.zeros((3, 4)))
    with pytest.raises(FileNotFoundError):
        MatrixStore(tmp_path / "missing.h5")


def test_merge_parts_equals_one_store(tmp_path):
    regions = map_regions(MAP_SIZES, 100, 50, 200)
    parts = [write_part(tmp_path / f"p{i}.npz", tuple(r), region_scores(tuple(r)), ROWS, ["score"], MAP_SIZES,
                        100, 50) for i, r in enumerate(regions.itertuples(index=False))]
    assert read_part(parts[0])["region"] == ("chrA", 0, 250)
    merged = merge_parts(parts[::-1], tmp_path / "merged.h5")
    full = write_map(tmp_path / "full.h5", regions)
    with MatrixStore(full) as a, MatrixStore(merged) as b:
        for chrom in MAP_SIZES:
            np.testing.assert_array_equal(a.read(chrom)[0], b.read(chrom)[0])
    odd = write_part(tmp_path / "odd.npz", ("chrA", 0, 250), region_scores(("chrA", 0, 250)), ROWS, ["score"],
                     MAP_SIZES, 100, 25)
    with pytest.raises(ValueError, match="odd.npz differs from .* in stride"):
        merge_parts([parts[0], odd], tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists() and not list(tmp_path.glob("*.tmp"))


def test_write_bigwig_into_a_missing_folder_is_a_clear_error(tmp_path):
    track = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10], "score": [0.5]})
    with pytest.raises(FileNotFoundError, match="cannot write bigWig .*its folder does not exist"):
        write_bigwig(track, {"chr1": 100}, tmp_path / "absent" / "t.bw")


def test_first_region_stays_on_the_first_chromosome(track):
    ordered = track.sort_values(["chrom", "start"]).reset_index(drop=True)
    assert first_region(ordered, 50_000) == ("chrA", 0, 150)
    assert first_region(ordered, 60) == ("chrA", 0, 60)
    with pytest.raises(ValueError, match="the track is empty"):
        first_region(ordered.iloc[:0], 100)


def test_bigwig_export_of_a_hostile_sample_name_stays_in_its_folder(tmp_path):
    samples = ["reference", "../../..", "a/b"]
    out = tmp_path / "deep" / "artifacts"
    out.mkdir(parents=True)
    with MatrixStore.create(tmp_path / "m.h5", samples, {"chrA": 400}, 100, 50, ["score"]) as store:
        store.write_region("chrA", 0, 400, np.zeros((3, 7), np.float32))
        written = store.export_bigwigs(samples[1:], out)
    assert written == {"../../..": out / "___.._...bw", "a/b": out / "a_b.bw"}
    assert sorted(p.name for p in out.iterdir()) == ["___.._...bw", "a_b.bw"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "m.h5"]
