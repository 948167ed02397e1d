from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

from seq2epi.model import ModelConfig, NucleicTransformer
from seq2epi.predict import auto_batch_size, genome_inputs, predict, predict_genome
from seq2epi.sequence import Genome, N, pad_batch, reverse_complement
from seq2epi.tiling import tile


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


def test_predict_matches_one_by_one_in_input_order(batch):
    tokens, lengths = batch
    model = toy_model().train()
    probs = predict(model, tokens, lengths, batch_size=4)
    assert probs.shape == (11,) and probs.dtype == np.float32 and not model.training
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


def test_predict_several_targets(batch):
    tokens, lengths = batch
    probs = predict(toy_model(n_targets=3), tokens, lengths, batch_size=5)
    assert probs.shape == (11, 3) and ((probs > 0) & (probs < 1)).all()


def test_auto_batch_size_is_the_default_off_cuda(batch):
    tokens, lengths = batch
    model = toy_model()
    assert auto_batch_size(model, 200, "cpu", default=48) == 48
    expected = predict(model, tokens, lengths)
    np.testing.assert_array_equal(predict(model, tokens, lengths, batch_size="auto"), expected)
    np.testing.assert_array_equal(predict(model, tokens, lengths, batch_size=0), expected)
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, tokens, lengths, batch_size=-1)


def test_predict_bfloat16_autocast_only_when_asked_on_cpu(batch):
    tokens, lengths = batch
    model = toy_model()
    fp32 = predict(model, tokens, lengths)
    bf16 = predict(model, tokens, lengths, amp=True)
    assert not np.array_equal(bf16, fp32)
    np.testing.assert_allclose(bf16, fp32, atol=2e-2)
    np.testing.assert_array_equal(predict(model, tokens, lengths, amp=False), fp32)


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
