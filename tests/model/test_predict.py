import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from seq2epi.data.sequence import Genome, N, pad_batch, reverse_complement
from seq2epi.data.tiling import tile
from seq2epi.model import predict as predict_module
from seq2epi.model.precision import set_numerics
from seq2epi.model.predict import auto_batch_size, genome_inputs, predict, predict_genome
from seq2epi.model.transformer import ModelConfig, NucleicTransformer


def toy_model(n_targets=1):
    torch.manual_seed(0)
    return NucleicTransformer(
        ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(3,), n_targets=n_targets)
    )


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 4, n).astype(np.uint8) for n in rng.integers(20, 60, 11)]
    return pad_batch(seqs)


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(1)
    chroms = {"chr1": "".join(rng.choice(list("ACGT"), 1000)), "chr2": "".join(rng.choice(list("ACGT"), 130))}
    chroms["chr1"] = chroms["chr1"][:400] + "N" * 120 + chroms["chr1"][520:]
    path = tmp_path / "g.fa"
    path.write_text("".join(f">{c}\n{s}\n" for c, s in chroms.items()))
    return Genome(path)


def test_predict_matches_one_by_one_in_input_order(batch, device):
    tokens, lengths = batch
    set_numerics()  # no TF32: fp32 on CUDA is the CPU's fp32
    model = toy_model().train()
    probs = predict(model, tokens, lengths, batch_size=4, device=device, precision="fp32")
    assert probs.shape == (11,) and probs.dtype == np.float32 and not model.training
    model.cpu()
    with torch.no_grad():
        single = [
            torch.sigmoid(model(torch.from_numpy(t[:n].astype(np.int64))[None]))[0, 0].item()
            for t, n in zip(tokens, lengths, strict=True)
        ]
    np.testing.assert_allclose(probs, single, atol=1e-5)


def test_predict_rc_average_is_strand_symmetric(batch):
    tokens, lengths = batch
    model = toy_model()
    fwd = predict(model, tokens, lengths)
    rev = predict(model, reverse_complement(tokens, lengths), lengths)
    avg = predict(model, tokens, lengths, rc_average=True)
    np.testing.assert_allclose(avg, (fwd + rev) / 2, atol=1e-6)
    np.testing.assert_allclose(
        predict(model, reverse_complement(tokens, lengths), lengths, rc_average=True), avg, atol=1e-6
    )


def test_predict_raw_gives_the_outputs_before_the_sigmoid(batch):
    tokens, lengths = batch
    model = toy_model(n_targets=2)
    raw = predict(model, tokens, lengths, batch_size=4, raw=True)
    with torch.no_grad():
        single = [model(torch.from_numpy(t[:n].astype(np.int64))[None])[0].numpy()
                  for t, n in zip(tokens, lengths, strict=True)]
    np.testing.assert_allclose(raw, single, atol=1e-5)
    np.testing.assert_allclose(predict(model, tokens, lengths), 1 / (1 + np.exp(-raw)), atol=1e-6)
    rev = predict(model, reverse_complement(tokens, lengths), lengths, raw=True)
    np.testing.assert_allclose(predict(model, tokens, lengths, rc_average=True, raw=True), (raw + rev) / 2,
                               atol=1e-6)


def test_predict_several_targets(batch):
    tokens, lengths = batch
    probs = predict(toy_model(n_targets=3), tokens, lengths, batch_size=5)
    assert probs.shape == (11, 3) and ((probs > 0) & (probs < 1)).all()


def test_auto_batch_size_is_the_default_off_cuda_and_any_size_predicts_alike(batch, device):
    tokens, lengths = batch
    model = toy_model().to(device)
    size = auto_batch_size(model, 200, device, default=48)
    assert size == 48 if device == "cpu" else 1 <= size <= 8192
    run = dict(device=device, precision="fp32")
    expected = predict(model, tokens, lengths, **run)
    np.testing.assert_allclose(predict(model, tokens, lengths, batch_size="auto", **run), expected, atol=1e-5)
    np.testing.assert_allclose(predict(model, tokens, lengths, batch_size=0, **run), expected, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, tokens, lengths, batch_size=-1)


def test_predict_bfloat16_autocast_only_when_asked_on_cpu(batch):
    tokens, lengths = batch
    model = toy_model()
    fp32 = predict(model, tokens, lengths)  # auto: fp32 on the CPU
    bf16 = predict(model, tokens, lengths, precision="bf16")
    assert not np.array_equal(bf16, fp32)
    np.testing.assert_allclose(bf16, fp32, atol=2e-2)
    np.testing.assert_array_equal(predict(model, tokens, lengths, precision="fp32"), fp32)


def test_predict_checks_lengths_on_the_host(batch):
    tokens, lengths = batch
    lengths = lengths.copy()
    lengths[4] = 2
    with pytest.raises(ValueError, match=r"Sequence 4 has 2 bp, shorter than the largest k-mer \(3\)"):
        predict(toy_model(), tokens, lengths)


class FakeCuda:
    """CUDA memory queries of a GPU with `free` bytes where a forward on more than `fits` windows runs out."""

    def __init__(self, monkeypatch, free: int, fits: int, per_window: int):
        self.tried = []
        self.fits, self.per_window = fits, per_window
        monkeypatch.setattr(predict_module, "_peak_bytes", self.peak_bytes)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
        monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))

    def peak_bytes(self, model, n, length, device, dtype):
        self.tried.append(n)
        if n > self.fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return n * self.per_window


def test_auto_batch_size_halves_and_retries_on_out_of_memory(monkeypatch):
    model = toy_model()
    # the estimate (0.8 * 10,000 / 10 = 800) runs out of memory; halving reaches 400, which fits
    fake = FakeCuda(monkeypatch, free=10_000, fits=500, per_window=10)
    assert auto_batch_size(model, 200, "cuda") == 400
    assert fake.tried == [32, 800, 400]
    # the probe itself runs out of memory: halved until it fits, and then the estimate is capped by `limit`
    fake = FakeCuda(monkeypatch, free=10**9, fits=5, per_window=10)
    assert auto_batch_size(model, 200, "cuda", limit=64) == 4
    assert fake.tried == [32, 16, 8, 4, 64, 32, 16, 8]
    fake = FakeCuda(monkeypatch, free=10**9, fits=0, per_window=10)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        auto_batch_size(model, 200, "cuda")


def test_predict_genome_bins_scores_and_n_windows(genome):
    model = toy_model()
    with pytest.warns(UserWarning, match="chr2"):
        track = predict_genome(partial(predict, model, batch_size=3), genome, window=200, stride=50,
                               progress=False)
    assert list(track.columns) == ["chrom", "start", "end", "score"]
    assert (track["chrom"] == "chr1").all()
    assert ((track["end"] - track["start"]) == 50).all()
    assert (track["start"].diff().dropna() >= 50).all()
    windows = tile({"chr1": 1000}, 200, 50)
    tokens = np.stack([genome.tokens(c, s, e) for c, s, e in windows.itertuples(index=False)])
    n_rich = (tokens == N).mean(1) > 0.5
    assert n_rich.any() and len(track) == (~n_rich).sum()
    np.testing.assert_array_equal(track["start"], windows["start"][~n_rich] + 100 - 25)
    np.testing.assert_allclose(track["score"], predict(model, tokens[~n_rich]), atol=1e-5)


def test_predict_genome_regions_and_rc(genome):
    model = toy_model()
    regions = pd.DataFrame({"chrom": ["chr1"], "start": [600], "end": [900]})
    predictor = partial(predict, model, rc_average=True)
    track = predict_genome(predictor, genome, 100, 100, regions, progress=False)
    assert track["start"].tolist() == [600, 700, 800]
    tokens = np.stack([genome.tokens("chr1", s, s + 100) for s in (600, 700, 800)])
    np.testing.assert_allclose(track["score"], predict(model, tokens, rc_average=True), atol=1e-5)


def test_predict_genome_skips_all_n_regions(genome):
    regions = pd.DataFrame({"chrom": ["chr1"], "start": [400], "end": [520]})
    track = predict_genome(partial(predict, toy_model()), genome, 100, 10, regions, progress=False)
    assert track.empty and list(track.columns) == ["chrom", "start", "end", "score"]


def test_predict_genome_in_chunks_equals_one_chunk(genome):
    predictor = partial(predict, toy_model(n_targets=2), batch_size=1)
    regions = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [400]})
    whole = predict_genome(predictor, genome, 50, 20, regions, target=1, progress=False)
    chunked = predict_genome(predictor, genome, 50, 20, regions, target=1, progress=False, chunk_bytes=120)
    assert len(whole) == 18
    pd.testing.assert_frame_equal(whole, chunked)


def test_predict_genome_keeps_every_target_in_one_pass(genome):
    calls = []

    def predictor(tokens, lengths):
        calls.append(len(tokens))
        return predict(toy_model(n_targets=3), tokens)

    regions = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [400]})
    every = predict_genome(predictor, genome, 50, 20, regions, target=None, progress=False)
    assert list(every.columns) == ["chrom", "start", "end", "score_0", "score_1", "score_2"]
    n_calls = len(calls)
    second = predict_genome(predictor, genome, 50, 20, regions, target=1, progress=False)
    assert len(calls) == 2 * n_calls  # one pass gives all three
    np.testing.assert_array_equal(every["score_1"], second["score"])


def test_genome_inputs_from_parameters_or_the_experiments_own_genome(tmp_path):
    data, artifacts = tmp_path / "data", tmp_path / "artifacts"
    given = genome_inputs(data, "csv", "K4", "g.fa", "genes.gff", "", "v.vcf", artifacts)
    assert given == (data / "g.fa", data / "genes.gff", None, data / "v.vcf")
    assert genome_inputs(data, "csv", "K4", artifacts=artifacts) == (None, None, None, None)
    artifacts.mkdir()
    (artifacts / "samples.tsv").write_text("variety\tmark\tfasta\tpeaks\nV1\tK27\tx.fa\tx27.bed\n"
                                           "V1\tK4\tgenome/genome.fa\tgenome/k4.bed\n")
    own = genome_inputs(data, "simulate", "K4", predict_peaks="p.bed", artifacts=artifacts)
    assert own.fasta == (artifacts / "genome" / "genome.fa").resolve() and own.peaks == data / "p.bed"
    assert (own.genes, own.vcf) == (artifacts / "genome" / "genes.gff", artifacts / "genome" / "variants.vcf")
    assert genome_inputs(data, "genome", "K4", artifacts=artifacts).genes is None
    with pytest.raises(ValueError, match=r"samples.tsv has no sample of mark 'K9' \(it has \['K27'"):
        genome_inputs(data, "genome", "K9", artifacts=artifacts)


def test_genome_inputs_take_the_reference_of_vcf_varieties(tmp_path):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    shutil.copy(Path(__file__).parents[1] / "data" / "tiny.vcf", artifacts / "v.vcf")
    (artifacts / "samples.tsv").write_text("variety\tmark\treference\tvcf\tvcf_sample\tpeaks\n"
                                           "s2\tK4\tref.fa\tv.vcf\ts2\tk4.bed\n")
    own = genome_inputs(tmp_path, "genome", "K4", artifacts=artifacts)
    assert own.fasta == (artifacts / "ref.fa").resolve() and own.peaks == (artifacts / "k4.bed").resolve()


def test_predictor_select_scores_one_mark_with_its_threshold_and_temperature(batch):
    tokens, lengths = batch
    model = toy_model(n_targets=3)
    predictor = predict_module.Predictor(model, ["a", "b", "c"], 60, 10, False, np.array([0.2, 0.4, 0.6]),
                                         np.array([1.0, 2.0, 3.0]))
    every, b = predictor(tokens, lengths), predictor.select("b")
    assert b.marks == ["b"] and b.thresholds.tolist() == [0.4] and b.temperature.tolist() == [2.0]
    np.testing.assert_allclose(b(tokens, lengths)[:, 0], every[:, 1], atol=1e-6)
    with pytest.raises(ValueError, match=r"predicts \['a', 'b', 'c'\], not 'd'"):
        predictor.select("d")
    one = predict_module.Predictor(toy_model(), ["H3K4me3"], 60, 10, False, None)
    assert one.select("active") is one  # a one-target model scores its mark whatever it is called
