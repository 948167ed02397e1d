import gzip

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_toy_model

from seq2epi.data.sequence import PAD, N, encode
from seq2epi.model.pretrain import (
    Corpus,
    PretrainConfig,
    centres,
    corpus_from,
    cut_corpus,
    mask_spans,
    masked_batch,
    pretrain,
    sample_corpus,
    split_corpus,
)
from seq2epi.model.train import init_from

CFG = PretrainConfig(epochs=3, batch_size=32, lr_scale=0.5, warmup=20, mask_fraction=0.15, mask_span=3,
                     repeat_weight=0.1, seed=0)


def periodic_corpus(n: int, seed: int, width: int = 40) -> Corpus:
    """Windows of a 6-bp repeat at random phases: a masked base is predictable from its neighbours."""
    unit = encode("ACGTTG")
    phase = np.random.default_rng(seed).integers(0, 6, n)
    tokens = unit[(phase[:, None] + np.arange(width)) % 6]
    return Corpus(tokens, np.full(n, width, np.int32), np.zeros_like(tokens, bool))


@pytest.fixture
def fasta(tmp_path):
    rng = np.random.default_rng(0)
    chr1 = "".join(rng.choice(list("ACGT"), 3000))
    chr1 = chr1[:1000] + chr1[1000:1500].lower() + chr1[1500:2500] + "N" * 500
    chr2 = "".join(rng.choice(list("ACGT"), 2000))
    path = tmp_path / "g.fa.gz"
    with gzip.open(path, "wt") as f:
        f.write(f">chr1 first\n{chr1[:1700]}\n{chr1[1700:]}\n>chr2\n{chr2}\n")
    return path, {"chr1": chr1, "chr2": chr2}


def test_sample_corpus_leaves_out_n_excluded_and_held_out_seeded(fasta):
    path, seqs = fasta
    exclude = pd.DataFrame({"chrom": ["chr1"], "start": [200], "end": [300]})
    corpus = sample_corpus([path], 100, 60, seed=1, exclude=exclude, margin=50, skip_chroms=("chr2",))
    again = sample_corpus([path], 100, 60, seed=1, exclude=exclude, margin=50, skip_chroms=("chr2",))
    assert corpus.tokens.shape == (60, 100) and (corpus.lengths == 100).all()
    assert np.array_equal(corpus.tokens, again.tokens)
    text = seqs["chr1"]
    for row, soft in zip(corpus.tokens, corpus.soft, strict=True):
        window = "".join("ACGTN"[t] for t in row)
        at = text.upper().find(window)
        assert at >= 0 and not (at < 350 and at + 100 > 150)  # excluded 200-300 with a 50 bp margin
        assert (row == N).mean() <= 0.1
        assert np.array_equal(soft, np.frombuffer(text[at : at + 100].encode(), np.uint8) >= ord("a"))
    assert corpus.soft.any()


def test_sample_corpus_says_when_too_few_windows_pass(fasta):
    with pytest.raises(ValueError, match="passed the N and exclusion filters"):
        everything = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [2000]})
        sample_corpus([fasta[0]], 1000, 50, seed=0, exclude=everything, skip_chroms=("chr2",))
    with pytest.raises(ValueError, match="at least 5000 bp"):
        sample_corpus([fasta[0]], 5000, 5, seed=0)


def test_cut_corpus_pads_short_sequences():
    corpus = cut_corpus(["ACGTacgtAC", "ACG"], 6, seed=0)
    assert corpus.lengths.tolist() == [6, 3]
    assert (corpus.tokens[1, 3:] == PAD).all() and corpus.soft[0].sum() >= 1


def test_mask_spans_cover_about_the_fraction_inside_each_length():
    lengths = np.array([200, 100])
    mask = mask_spans(lengths, 200, 0.15, 3, np.random.default_rng(0))
    assert not mask[1, 100:].any()
    assert 0.08 < mask[0].mean() < 0.16 and 0.08 < mask[1, :100].mean() < 0.16


def test_masked_batch_scores_masked_centres_and_weights_repeats():
    corpus = cut_corpus(["ACGTAC" * 5 + "acgtac" * 5], 60, seed=0)
    cfg = PretrainConfig(**{**CFG.__dict__, "mask_fraction": 0.5})
    masked, target, weight = masked_batch(corpus, np.array([0]), cfg, np.random.default_rng(0), (3, 5))
    at, _ = centres((3, 5), 60)
    assert target.shape == weight.shape == (1, len(at))
    scored = (target >= 0).numpy()[0]
    assert (masked[0, at[scored]] == N).all()  # a scored base was hidden from the model
    assert np.allclose(weight[0, scored & (at >= 30)], 0.1) and (weight[0, scored & (at < 28)] == 1).all()
    assert (weight[0, ~scored] == 0).all()


def test_a_strided_model_pretrains_on_every_stride_th_centre(tmp_path):
    at, end = centres((3, 5), 40, stride=4)
    assert list(at) == [1 + 4 * i for i in range(10)] + [2 + 4 * i for i in range(9)]
    assert list(end[:2]) == [3, 7] and end[-1] == 37
    train, val = periodic_corpus(64, 0), periodic_corpus(32, 1)
    model = make_toy_model(kmers=(3, 5), conv_stride=4)
    _, target, _ = masked_batch(train, np.arange(4), CFG, np.random.default_rng(0), (3, 5), stride=4)
    assert target.shape == (4, len(at))
    cfg = PretrainConfig(**{**CFG.__dict__, "epochs": 1})
    history = pretrain(model, train, val, cfg, tmp_path, progress=False)
    assert np.isfinite(history[["train_loss", "val_loss", "val_acc"]].to_numpy()).all()


def test_pretraining_learns_and_resumes_exactly(tmp_path):
    train, val = periodic_corpus(256, 0), periodic_corpus(64, 1)
    history = pretrain(make_toy_model(kmers=(3,)), train, val, CFG, tmp_path / "full")
    assert history["val_acc"].iloc[-1] > 0.6 and history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
    short = PretrainConfig(**{**CFG.__dict__, "epochs": 2})
    pretrain(make_toy_model(kmers=(3,)), train, val, short, tmp_path / "resumed")
    resumed = pretrain(make_toy_model(kmers=(3,)), train, val, CFG, tmp_path / "resumed", resume=True)
    pd.testing.assert_frame_equal(history, resumed)


def test_a_classifier_starts_from_a_pretrained_encoder_with_a_new_head(tmp_path):
    pretrain(make_toy_model(kmers=(3,)), periodic_corpus(64, 0), periodic_corpus(32, 1),
             PretrainConfig(**{**CFG.__dict__, "epochs": 1}), tmp_path)
    encoder = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
    classifier = make_toy_model(kmers=(3,), n_targets=2)
    head = classifier.classifier.weight.clone()
    init_from(classifier, tmp_path / "best.pt")
    mine = classifier.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in encoder.items() if not k.startswith("classifier."))
    assert torch.equal(classifier.classifier.weight, head)
    with pytest.raises(ValueError, match="differs"):
        init_from(make_toy_model(kmers=(5,)), tmp_path / "best.pt")


def test_corpus_from_fasta_and_training_csv_leaves_out_held_out_regions(fasta, tmp_path):
    path, _ = fasta
    csv = tmp_path / "train.csv"
    csv.write_text("sequence,label\n" + "ACGT" * 30 + ",1\nACGTACGTAC,0\n")
    corpus = corpus_from([path], [csv], 100, 40, seed=0, held_out=["chr2", "chr1:0-1500"])
    assert len(corpus) == 42 and corpus.lengths[-2:].tolist() == [100, 10]
    train, val = split_corpus(corpus, 0.25, seed=0)
    assert len(train) + len(val) == 42 and len(val) == 10
    with pytest.raises(ValueError, match="pretrain_fasta or pretrain_csv"):
        corpus_from([], [], 100, 10, seed=0)
    with pytest.raises(ValueError, match="train.csv, the experiment's test file"):
        corpus_from([], [csv], 100, 10, seed=0, test_files=[tmp_path / "train.csv"])
