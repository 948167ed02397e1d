import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import MOTIF, make_motif_data, make_toy_model  # noqa: E402

from seq2epi.analysis.interpret import (  # noqa: E402
    OneHotModel,
    attribution_logo,
    attributions,
    gradient_x_input,
    hypothetical,
    in_silico_mutagenesis,
    ism,
    one_hot,
    saliency,
    salient_kmers,
    top_kmers,
)
from seq2epi.data.sequence import PAD, decode  # noqa: E402
from seq2epi.model.train import TrainConfig, fit  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small run faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A toy transformer trained a few epochs to find MOTIF."""
    model = make_toy_model(kmers=(3,))
    cfg = TrainConfig(epochs=3, batch_size=32, schedule="constant", lr=1e-2, seed=1)
    history = fit(model, make_motif_data(384, 0), make_motif_data(64, 1), cfg, tmp_path_factory.mktemp("ck"),
                  progress=False)
    assert history.val_auc.iloc[-1] > 0.85
    return model.eval()


@pytest.fixture(scope="module")
def positives():
    data = make_motif_data(48, seed=2)
    keep = data.labels == 1
    return data.tokens[keep], data.lengths[keep]


def logit(model, tokens) -> float:
    with torch.no_grad():
        return model(torch.from_numpy(tokens.astype(np.int64))[None])[0, 0].item()


def test_ism_is_zero_at_the_reference_and_equals_the_forward_difference(model, positives):
    tokens = positives[0][0, : positives[1][0]]
    ism = in_silico_mutagenesis(model, tokens, batch_size=50)
    assert ism.shape == (len(tokens), 4) and ism.dtype == np.float32
    np.testing.assert_array_equal(ism[np.arange(len(tokens)), tokens], 0)
    assert (ism[np.arange(4)[None] != tokens[:, None]] != 0).all()
    for pos, shift in ((0, 1), (17, 2), (len(tokens) - 1, 3)):
        base = (tokens[pos] + shift) % 4
        mutant = tokens.copy()
        mutant[pos] = base
        assert ism[pos, base] == pytest.approx(logit(model, mutant) - logit(model, tokens), abs=1e-5)


def test_ism_mutates_n_to_every_base_and_rejects_padding(model):
    tokens = np.array([0, 1, 4, 3, 2, 2, 1, 0], np.uint8)
    assert (in_silico_mutagenesis(model, tokens)[2] != 0).all()
    with pytest.raises(ValueError, match="one sequence"):
        in_silico_mutagenesis(model, np.array([0, 1, 2, PAD], np.uint8))


def test_gradient_x_input_is_the_directional_derivative_towards_each_base(model, positives):
    tokens = positives[0][1, : positives[1][1]]
    model.zero_grad(set_to_none=True)
    grad = gradient_x_input(model, tokens)
    assert grad.shape == (len(tokens), 4) and all(p.grad is None for p in model.parameters())
    np.testing.assert_allclose(grad[np.arange(len(tokens)), tokens], 0, atol=1e-6)
    table = model.encoder.weight.detach()
    x = torch.from_numpy(tokens.astype(np.int64))

    def logit_of(embedded):
        hook = model.encoder.register_forward_hook(lambda module, args, out: embedded[None])
        try:
            return logit(model, tokens)
        finally:
            hook.remove()

    for pos, shift in ((3, 1), (20, 2)):
        base, eps = (tokens[pos] + shift) % 4, 1e-3
        moved = table[x].clone()
        moved[pos] += eps * (table[base] - table[x[pos]])
        slope = (logit_of(moved) - logit_of(table[x])) / eps
        assert slope == pytest.approx(grad[pos, base], rel=0.05, abs=1e-3)


def test_top_kmers_finds_the_planted_motif(model, positives):
    for method in ("ism", "gradient"):
        table = top_kmers(model, *positives, k=6, n=10, method=method)
        assert list(table.columns) == ["kmer", "count", "saliency", "z"] and len(table) == 10
        assert decode(MOTIF) in list(table["kmer"][:3]), method
        assert table["z"].is_monotonic_decreasing and (table["count"] >= 3).all()
    with pytest.raises(ValueError, match="method must be"):
        top_kmers(model, *positives, method="attention")


def test_attribution_logo_draws_reference_letters(model, positives):
    tokens = positives[0][0, : positives[1][0]]
    ism = in_silico_mutagenesis(model, tokens)
    np.testing.assert_allclose(saliency(ism, tokens), -ism.sum(1) / 3)
    fig, ax = plt.subplots()
    assert attribution_logo(ism, tokens, ax=ax) is ax
    assert len(ax.patches) >= len(tokens)  # one glyph per position (zero-height glyphs for the other bases)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"scores must be \[L, 4\]"):
        saliency(ism[:-1], tokens)


def test_one_hot_model_equals_the_token_model_and_passes_gradients_to_the_input(model, positives):
    tokens = positives[0][:3, :30].copy()
    tokens[0, 5] = 4  # an N: an all-zero column
    X = torch.from_numpy(one_hot(tokens)).float().requires_grad_()
    assert X.shape == (3, 4, 30) and X[0, :, 5].sum() == 0
    wrapped = OneHotModel(model).eval()
    out = wrapped(X)
    with torch.no_grad():
        np.testing.assert_allclose(out.detach(), model(torch.from_numpy(tokens.astype(np.int64))), atol=1e-5)
    out.sum().backward()
    assert X.grad.abs().sum() > 0


def test_ism_of_a_batch_groups_lengths_keeps_eval_mode_and_equals_one_at_a_time(model, positives):
    tokens, lengths = positives[0][:5], positives[1][:5]
    model.eval()
    scores = ism(model, tokens, lengths, batch_size=64)
    assert not model.training  # tangermeme restores the mode of what it was given
    assert [s.shape for s in scores] == [(n, 4) for n in lengths]
    for row, length, score in zip(tokens, lengths, scores, strict=True):
        np.testing.assert_allclose(score, in_silico_mutagenesis(model, row[:length]), atol=1e-5)
    centred = hypothetical(scores[0])
    np.testing.assert_allclose(centred.sum(1), 0, atol=1e-5)
    np.testing.assert_allclose(centred[np.arange(lengths[0]), tokens[0, : lengths[0]]],
                               0.75 * saliency(scores[0], tokens[0, : lengths[0]]), atol=1e-5)


def test_salient_kmers_reads_precomputed_attributions(model, positives):
    scores = attributions(model, *positives, method="gradient")
    assert salient_kmers(*positives, scores).equals(top_kmers(model, *positives, method="gradient"))
    with pytest.raises(ValueError, match="got 1 score arrays for 24 sequences"):
        salient_kmers(*positives, scores[:1])


def test_confident_positives_are_the_label_1_rows_highest_score_first():
    from seq2epi.analysis.interpret import confident_positives

    labels = np.array([[1.0], [0.0], [1.0], [1.0], [np.nan]])
    assert confident_positives(labels, np.array([0.2, 0.99, 0.9, 0.5, 1.0])).tolist() == [2, 3, 0]


def test_attribution_figure_draws_a_logo_per_row_and_attention_is_square():
    from seq2epi.analysis.interpret import attribution_figure, last_layer_attention

    model = make_toy_model(kmers=(3,))
    tokens = np.random.default_rng(0).integers(0, 4, (3, 20))
    lengths = np.array([20, 18, 20])
    scores = attributions(model, tokens[[2, 0]], lengths[[2, 0]])
    fig = attribution_figure(scores, tokens, lengths, [2, 0], np.array([0.1, 0.2, 0.9]), "H3K4me3")
    assert [ax.get_title() for ax in fig.axes] == ["test window 2: P(H3K4me3) = 0.900",
                                                   "test window 0: P(H3K4me3) = 0.100"]
    plt.close(fig)
    attention = last_layer_attention(model, tokens[1, :18])
    assert attention.ndim == 2 and attention.shape[0] == attention.shape[1]
    assert np.allclose(attention.sum(1), 1, atol=1e-4)
