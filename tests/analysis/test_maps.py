from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seq2epi.analysis import maps
from seq2epi.analysis.tracks import MatrixStore
from seq2epi.data.sequence import PAD, Genome
from seq2epi.data.tiling import map_regions
from seq2epi.data.variants import REFERENCE, Variants, variety_windows
from seq2epi.model.predict import predict

DATA = Path(__file__).parents[1] / "data"
REAL = Path(__file__).parents[2].parent / "shared" / "data"


@pytest.fixture
def genome():
    return Genome(DATA / "tiny.fa")


@pytest.fixture
def variants(genome):
    with pytest.warns(UserWarning, match="skipped 1 variant call"):
        return Variants.load(DATA / "tiny.vcf", genome)


@pytest.fixture
def model(toy_model):
    return toy_model(kmers=(3,))


# ---- the map ----

def test_predict_varieties_equals_predicting_each_variety(genome, variants, model):
    # batch_size=1 on both sides: a batch's composition moves float32 results by an ulp, nothing else does
    predictor = partial(predict, model, batch_size=1)
    scores, bins, stats = maps.predict_varieties(predictor, genome, variants, ("chr1", 0, 50), 10, 5)
    tokens, windows = variety_windows(genome, variants, "chr1", 0, 50, 10, 5)
    assert scores.shape == (5, 9) and stats["total"] == 45 and stats["distinct"] < 45
    for row, seqs in zip(scores, tokens, strict=True):
        np.testing.assert_array_equal(row, predict(model, seqs, (seqs != PAD).sum(1), batch_size=1))
    assert bins.values.tolist()[0] == ["chr1", 3, 8] and len(bins) == len(windows)
    chunked, _, _ = maps.predict_varieties(predictor, genome, variants, ("chr1", 0, 50), 10, 5,
                                           chunk_bytes=200)
    np.testing.assert_array_equal(chunked, scores)


def test_predict_varieties_leaves_mostly_n_windows_out(genome, variants, toy_model):
    predictor = partial(predict, toy_model(kmers=(3,), n_targets=2))
    scores, _, _ = maps.predict_varieties(predictor, genome, variants, ("chr1", 0, 50), 4, 2,
                                          max_n_fraction=0.25, n_targets=2)
    assert scores.shape == (5, 24, 2)
    assert np.isnan(scores[0, 4]).all()  # reference window 8-12 is NNAC
    assert not np.isnan(scores[0, 0]).any()


def test_map_run_resumes_without_losing_regions(genome, tmp_path, model):
    predictor = partial(predict, model)
    regions = map_regions(genome.chrom_sizes, 10, 5, 20)
    rows = [REFERENCE, "s1", "s2", "s3", "s4"]
    kw = dict(vcf_path=DATA / "tiny.vcf", progress=False)
    with pytest.warns(UserWarning):
        with MatrixStore.create(tmp_path / "full.h5", rows, genome.chrom_sizes, 10, 5) as store:
            maps.map_varieties(predictor, genome, store, regions, **kw)
            full = {c: store.read(c)[0] for c in genome.chrom_sizes}
        with MatrixStore.create(tmp_path / "part.h5", rows, genome.chrom_sizes, 10, 5) as store:
            maps.map_varieties(predictor, genome, store, regions.iloc[:2], **kw)  # then killed
        with MatrixStore.create(tmp_path / "part.h5", rows, genome.chrom_sizes, 10, 5, resume=True) as store:
            stats = maps.map_varieties(predictor, genome, store, regions, **kw)
            assert stats["skipped_done"] == 2 and stats["regions"] == len(regions) - 2
            for chrom, expected in full.items():
                np.testing.assert_array_equal(store.read(chrom)[0], expected)
        scores, names, _ = maps.region_scores(predictor, genome, ("chr1", 0, 20), 10, 5, DATA / "tiny.vcf")
    assert names == rows and scores.shape == (5, 3)


def test_map_population_over_chosen_regions(genome, tmp_path, model):
    predictor = partial(predict, model)
    chosen = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [30]})
    vcf = DATA / "tiny.vcf"
    store, todo, stats = maps.map_population(predictor, genome, vcf, tmp_path / "m.h5", 10, 5, 20,
                                             regions=chosen, samples=["s2"], progress=False)
    with store:
        assert store.samples == [REFERENCE, "s2"]
        assert todo.values.tolist() == [["chr1", 0, 25], ["chr1", 20, 45]]
        assert stats["regions"] == 2 and stats["total"] == 2 * 8
        scores, bins = store.read_genome(["chr1"])
        assert not np.isnan(scores[:, :8]).any() and np.isnan(scores[:, 8:]).all()


def test_map_rejects_a_region_shorter_than_the_window(genome, variants, model):
    with pytest.raises(ValueError, match="chr1:45-55 is not inside"):
        maps.predict_varieties(partial(predict, model), genome, variants, ("chr1", 45, 55), 10, 5)
    with pytest.raises(ValueError, match="chr1:0-8 is 8 bp, shorter than the 10 bp window"):
        maps.region_scores(partial(predict, model), genome, ("chr1", 0, 8), 10, 5)


@pytest.mark.parametrize("het,missing", [("ref", "ref"), ("alt", "n"), ("n", "ref")])
def test_both_dedup_paths_give_identical_matrices(genome, model, het, missing):
    with pytest.warns(UserWarning, match="skipped"):
        v = Variants.load(DATA / "tiny.vcf", genome, het=het, missing=missing)
    predictor = partial(predict, model, batch_size=4)  # several batches: their composition must match too
    for region, window, stride, chunk in [(("chr1", 0, 50), 10, 5, 2**26), (("chr1", 3, 48), 6, 1, 300)]:
        old, bins, s_old = maps.predict_varieties(predictor, genome, v, region, window, stride,
                                                  chunk_bytes=chunk, dedup="bytes")
        new, _, s_new = maps.predict_varieties(predictor, genome, v, region, window, stride,
                                               chunk_bytes=chunk)
        np.testing.assert_array_equal(new, old)  # exact, NaN included
        assert s_new == s_old


@pytest.mark.skipif(not (REAL / "rice_3k_cultivars").is_dir(), reason="shared real data not present")
def test_both_dedup_paths_give_identical_matrices_on_the_real_cultivars(tmp_path, model):
    genome = Genome(REAL / "rice_irgsp1_subset" / "genome.fa")
    vcf = REAL / "rice_3k_cultivars" / "chr01_1000-50000.vcf"
    regions = map_regions({"chr01": 30_000}, 200, 50, 10_000)
    rows = [REFERENCE, *Variants.load(vcf, genome, ("chr01", 0, 100)).samples]
    predictor = partial(predict, model, batch_size=64)
    matrices = []
    for dedup in ("bytes", "alleles"):
        with MatrixStore.create(tmp_path / f"{dedup}.h5", rows, {"chr01": 30_000}, 200, 50) as store:
            maps.map_varieties(predictor, genome, store, regions, vcf, progress=False, dedup=dedup)
            matrices.append(store.read("chr01")[0])
    np.testing.assert_array_equal(matrices[0], matrices[1])
    scored = ~np.isnan(matrices[0][0])  # the first bases of chr01 are N
    assert scored.sum() > 300 and (matrices[0][1:, scored] != matrices[0][0, scored]).any()


def test_map_indexes_a_bgzipped_vcf_once(genome, tmp_path, model):
    import pysam

    gz = tmp_path / "tiny.vcf.gz"
    pysam.tabix_compress(str(DATA / "tiny.vcf"), str(gz))
    with pytest.warns(UserWarning, match="skipped"):
        store, _, _ = maps.map_population(partial(predict, model), genome, gz, tmp_path / "m.h5", 10, 5, 20,
                                          progress=False)
    store.close()
    assert (tmp_path / "tiny.vcf.gz.tbi").exists()


def test_region_list_that_overlaps_itself(genome, tmp_path, model):
    regions = pd.DataFrame({"chrom": ["chr1", "chr2", "chr1"], "start": [0, 0, 20], "end": [30, 20, 45]})
    with MatrixStore.create(tmp_path / "m.h5", [REFERENCE], genome.chrom_sizes, 10, 5) as store:
        with pytest.raises(ValueError, match=r"regions 0 \(chr1:0-30\) and 2 \(chr1:20-45\) both hold the "
                                             r"window at chr1:20; expected a region list that does not"):
            maps.map_varieties(partial(predict, model), genome, store, regions, progress=False)
    maps.check_regions(map_regions(genome.chrom_sizes, 10, 5, 20), 10, 5)  # overlapping bases, not windows


# ---- analysis ----


def _bins(n: int, chroms: tuple[str, ...] = ("chr1",), width: int = 100) -> pd.DataFrame:
    starts = np.tile(np.arange(n) * width, len(chroms))
    return pd.DataFrame({"chrom": np.repeat(chroms, n), "start": starts, "end": starts + width})


def test_cluster_order_groups_families():
    rng = np.random.default_rng(0)
    family = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    profiles = np.array([np.linspace(0, 1, 50), np.linspace(1, 0, 50)])
    scores = profiles[family] + rng.normal(0, 0.05, (8, 50))
    scores[2, 10:20] = np.nan
    order = maps.cluster_order(scores)
    assert sorted(order) == list(range(8))
    assert np.abs(np.diff(family[order])).sum() == 1  # each family in one run
    assert np.array_equal(order, maps.cluster_order(scores))
    assert list(maps.cluster_order(scores[:1])) == [0]
    assert sorted(maps.cluster_order(scores[:2])) == [0, 1]
    with pytest.raises(ValueError, match="2-D"):
        maps.cluster_order(np.ones(3))


def test_variable_regions_finds_planted_block():
    rng = np.random.default_rng(1)
    bins = _bins(60, ("chr1", "chr2"))
    samples = [f"v{i}" for i in range(6)]
    scores = 0.5 + rng.normal(0, 0.02, (6, 120))
    scores[2, 60 + 20:60 + 30] = 0.95  # chr2, block 2: variety v2 high, v4 low
    scores[4, 60 + 20:60 + 30] = 0.05
    top = maps.variable_regions(scores, bins, samples, width_bins=10, n=3)
    assert list(top.columns) == ["chrom", "start", "end", "variance", "range", "high_variety", "low_variety"]
    assert len(top) == 3 and top["variance"].is_monotonic_decreasing
    first = top.iloc[0]
    assert (first["chrom"], first["start"], first["end"]) == ("chr2", 2000, 3000)
    assert (first["high_variety"], first["low_variety"]) == ("v2", "v4")
    assert first["range"] == pytest.approx(0.9, abs=0.02)
    every = maps.variable_regions(scores, bins, samples, width_bins=25, n=100)
    assert len(every) == 6 and set(every["end"] - every["start"]) == {2500, 1000}  # a short last block
    with pytest.raises(ValueError, match="expected \\[6 samples, 120 bins\\]"):
        maps.variable_regions(scores[:, :5], bins, samples)


def test_variants_in():
    regions = pd.DataFrame({"chrom": ["chr1", "chr1", "chr2"], "start": [1000, 5000, 0],
                            "end": [2000, 6000, 500], "variance": [0.3, 0.2, 0.1]})
    variants = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1", "chr1", "chr2", "chr3"],
                             "start": [1500, 995, 990, 2000, 10, 1500],
                             "ref": ["A", "ACGTACGTAC", "ACGTACGTA", "G", "C", "T"],
                             "alt": ["G", "A", "A", "T", "CA", "C"],
                             "sample": ["a", "b", "a", "a", "b", "a"]})
    out = maps.variants_in(regions, variants)
    assert list(out.columns) == ["chrom", "start", "end", "variance", "variant_start", "ref", "alt", "sample"]
    # the deletion at 995 reaches over the boundary at 1000; the one at 990 stops at 999; 2000 is past the end
    assert out[["start", "variant_start"]].values.tolist() == [[1000, 995], [1000, 1500], [0, 10]]
    assert maps.variants_in(regions.iloc[1:2], variants).empty
    own = maps.variants_in(regions.assign(sample=["a", "a", "b"]), variants)
    assert own[["variant_start", "sample"]].values.tolist() == [[1500, "a"], [10, "b"]]
    with pytest.raises(ValueError, match="ref"):
        maps.variants_in(regions, variants.drop(columns="ref"))


def test_changed_windows():
    bins = _bins(4)
    scores = np.array([[0.5, 0.5, 0.5, 0.5],
                       [0.7, 0.69, 0.3, np.nan],
                       [0.5, 0.9, 0.5, 0.1]])
    out = maps.changed_windows(scores, bins, ["ref", "a", "b"], min_delta=0.2)
    assert list(out.columns) == ["chrom", "start", "end", "sample", "reference_score", "score", "delta"]
    assert out[["start", "sample"]].values.tolist() == [[0, "a"], [100, "b"], [200, "a"], [300, "b"]]
    assert out["delta"].round(2).tolist() == [0.2, 0.4, -0.2, -0.4]
    assert (out["reference_score"] == 0.5).all()
    against_b = maps.changed_windows(scores, bins, ["ref", "a", "b"], reference_row=2, min_delta=0.4)
    assert against_b[["start", "sample"]].values.tolist() == [[100, "ref"], [300, "ref"]]
    with pytest.raises(ValueError, match="reference_row"):
        maps.changed_windows(scores, bins, ["ref", "a", "b"], reference_row=3)


def test_aggregate():
    bins = _bins(10, ("chr1", "chr2"))
    scores = np.tile(np.arange(20, dtype=float), (2, 1))
    means, blocks = maps.aggregate(scores, bins, ["a", "b"], bin_size=400)
    assert blocks.values.tolist() == [["chr1", 0, 400], ["chr1", 400, 800], ["chr1", 800, 1000],
                                      ["chr2", 0, 400], ["chr2", 400, 800], ["chr2", 800, 1000]]
    assert means[0].tolist() == [1.5, 5.5, 8.5, 11.5, 15.5, 18.5]


def test_overview_bin_size():
    assert maps.overview_bin_size(_bins(10, width=1000), 100) == 100  # 10 kb: the stride
    assert maps.overview_bin_size(_bins(10, width=100_000), 100, n_blocks=200) == 5000


# ---- many varieties: difference, row order, PCA, variance (helper `varieties`) ----


def _families(n: int, n_bins: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n rows in three families (a marked block each, small noise), shuffled; the family of each row."""
    rng = np.random.default_rng(seed)
    family = rng.permutation(np.arange(n) % 3)
    scores = rng.normal(0.2, 0.01, (n, n_bins))
    for f in range(3):
        scores[family == f, 10 * f : 10 * f + 10] += 0.1
    return scores, family


def test_row_order_is_linkage_for_few_rows_and_kmeans_leaves_for_many(monkeypatch):
    scores, _ = _families(30)
    np.testing.assert_array_equal(maps.row_order(scores), maps.cluster_order(scores))
    linked = []
    real = maps.linkage
    monkeypatch.setattr(maps, "linkage", lambda x, **kw: linked.append(len(x)) or real(x, **kw))
    scores, family = _families(3000)
    scores[5, 3] = np.nan
    order = maps.row_order(scores)
    assert sorted(order) == list(range(3000))
    assert max(linked) <= 50  # the cluster centres only, never the 3,000 rows
    assert (np.diff(family[order]) != 0).sum() == 2  # each family in one run


def test_difference_from_reference():
    scores = np.array([[0.5, 0.2], [0.7, 0.1], [0.5, 0.2]])
    np.testing.assert_allclose(maps.difference_from_reference(scores), [[0, 0], [0.2, -0.1], [0, 0]])
    with pytest.raises(ValueError, match="reference_row is 3; expected a row of the 3 varieties"):
        maps.difference_from_reference(scores, 3)


def test_variety_pca_separates_populations():
    scores, family = _families(60)
    scores[:, -1] = np.nan
    table, explained = maps.variety_pca(scores, [f"v{i}" for i in range(60)])
    assert list(table.columns) == ["sample", "PC1", "PC2"] and table["sample"].iat[7] == "v7"
    assert explained.sum() > 0.9  # three families: two components hold them
    centres = table[["PC1", "PC2"]].groupby(family).mean().to_numpy()
    spread = table[["PC1", "PC2"]].groupby(family).std().to_numpy().max()
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(3, 1)]
    assert distances.min() > 10 * spread
    flat, explained = maps.variety_pca(np.full((4, 5), 0.3), list("abcd"))
    assert (flat[["PC1", "PC2"]].to_numpy() == 0).all() and (explained == 0).all()
    with pytest.raises(ValueError, match="scores have 4 rows; expected one per sample"):
        maps.variety_pca(np.zeros((4, 5)), ["a"])


def test_bin_variance():
    bins = pd.DataFrame({"chrom": "c1", "start": [0, 10, 20], "end": [10, 20, 30]})
    scores = np.array([[0.1, 0.5, np.nan], [0.3, 0.5, np.nan], [0.2, np.nan, np.nan]])
    track = maps.bin_variance(scores, bins, ["a", "b", "c"])
    assert list(track.columns) == ["chrom", "start", "end", "score"]
    np.testing.assert_allclose(track["score"], [0.02 / 3, 0, np.nan])


def test_read_variety_labels(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("variety\tcountry\tpopulation\nv1\tIN\tindica\nv2\tJP\ttemperate japonica\nv3\tIN\t\n")
    labels = maps.read_variety_labels(path)
    assert labels.to_dict() == {"v1": "indica", "v2": "temperate japonica", "v3": ""}
    path.write_text("variety\tgroup\nv1\tXI\n")
    assert maps.read_variety_labels(path).name == "group"
    path.write_text("name\tcountry\tregion\nv1\tIN\tS\n")
    with pytest.raises(ValueError, match="labels.tsv: expected a TSV with columns variety and population"):
        maps.read_variety_labels(path)
    path.write_text("variety\tpopulation\nv1\tXI\nv1\tGJ\n")
    with pytest.raises(ValueError, match="labels.tsv: variety 'v1' is listed twice"):
        maps.read_variety_labels(path)


def _map_record(folder: Path, checkpoint: str, changed: list, variable: list, auroc=None,
                changed_file=maps.CHANGED) -> Path:
    """A map record as 04 leaves it: parameters, changed windows, variable regions, genome metrics."""
    folder.mkdir()
    (folder / "parameters.yaml").write_text(f"checkpoint: {checkpoint}\nmark: H3K4me3\nchanged_delta: 0.1\n")
    pd.DataFrame(changed, columns=["chrom", "start", "end", "sample", "reference_score", "score", "delta",
                                   "variant_start", "ref", "alt"]).to_csv(folder / changed_file, sep="\t",
                                                                          index=False)
    columns = ["chrom", "start", "end", "variance", "range", "high_variety", "low_variety"]
    pd.DataFrame(variable, columns=columns).to_csv(folder / "variable_regions.tsv", sep="\t", index=False)
    if auroc is not None:
        (folder / "genome_metrics.json").write_text(f'{{"labelled_test": {{"auroc": {auroc}}}, '
                                                    f'"tss_bins": {{"auroc": {auroc - 0.1}}}}}')
    return folder


def test_compare_maps_sets_two_map_records_side_by_side(tmp_path):
    old = _map_record(tmp_path / "old", "../2026-01-01_smep/artifacts/checkpoints/best.pt",
                      [("chr1", 0, 50, "v1", 0.5, 0.3, -0.2, 10, "A", "G"),
                       ("chr1", 0, 50, "v1", 0.5, 0.3, -0.2, 30, "C", "T")],
                      [("chr1", 0, 500, 0.01, 0.2, "v1", "v2"), ("chr1", 900, 1400, 0.005, 0.1, "v2", "v1")],
                      auroc=0.75, changed_file="changed_windows.tsv")  # as records before 2026-12-07 wrote it
    new = _map_record(tmp_path / "new", "2026-02-02_arabidopsis",
                      [("chr1", 0, 50, "v1", 0.5, 0.62, 0.12, 10, "A", "G"),
                       ("chr1", 50, 100, "v2", 0.4, 0.2, -0.2, 60, "G", "A")],
                      [("chr1", 2000, 2500, 0.02, 0.3, "v2", "v1"),
                       ("chr1", 1000, 1500, 0.01, 0.1, "v1", "v2")])
    table = maps.compare_maps(new, old)
    assert list(table.columns) == ["new", "old"]
    assert table.loc["model (record)"].tolist() == ["2026-02-02_arabidopsis", "2026-01-01_smep"]
    assert table.loc["bins changed in some variety"].tolist() == [2, 1]
    assert table.loc["variety-bin changes"].tolist() == [2, 1]
    assert table.loc["variants inside changed windows"].tolist() == [2, 2]
    assert table.loc["largest |change|"].tolist() == [0.2, 0.2]
    assert table.loc["most variable block"].tolist() == ["chr1:2000-2500", "chr1:0-500"]
    assert np.isnan(table.loc["labelled test windows AUROC", "new"])
    assert table.loc["labelled test windows AUROC", "old"] == 0.75
    assert table.loc["reference track: bins near a TSS, AUROC", "old"] == 0.65
    assert table.loc["variable blocks overlapping the other map's"].tolist() == ["1 of 2", "1 of 2"]


def test_map_summary_of_a_record_without_a_map_is_one_sentence(tmp_path):
    (tmp_path / "2026-01-01_smep").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^record 2026-01-01_smep holds no changed_windows.tsv.gz: "
                                                r"it is not the record of a map \(04 with varieties\)$"):
        maps.map_summary(tmp_path / "2026-01-01_smep")
