import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from torch import nn

from seq2epi.data.sequence import PAD
from seq2epi.model.transformer import (
    KmerAggregate,
    ModelConfig,
    NucleicTransformer,
    is_padded,
    reference_attention,
)

TOY = dict(ninp=32, nhead=4, nhid=64, nlayers=2, kmers=(3, 5), dropout=0.1, n_targets=2)


def toy_model(**kw) -> NucleicTransformer:
    torch.manual_seed(0)
    return NucleicTransformer(ModelConfig(**{**TOY, **kw})).eval()


def tokens(n: int = 4, length: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 5, (n, length), generator=torch.Generator().manual_seed(seed))


def test_output_shape_and_attention():
    model = toy_model(attention="reference")
    x = tokens()
    logits, weights = model(x, return_attention=True)
    n_positions = sum(40 - k + 1 for k in TOY["kmers"])
    assert logits.shape == (4, 2)
    assert weights.shape == (4, 2, n_positions, n_positions)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 2, n_positions))
    torch.testing.assert_close(model(x), logits)


def test_fast_matches_reference(device):
    fast, ref = toy_model(attention="fast").to(device), toy_model(attention="reference").to(device)
    ref.load_state_dict(fast.state_dict())
    x = tokens().to(device)
    x[1, 30:] = PAD
    torch.testing.assert_close(fast(x), ref(x), atol=1e-5, rtol=1e-5)
    logits, weights = fast(x, return_attention=True)  # the fast model can also return weights
    torch.testing.assert_close(logits, ref(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, ref(x, return_attention=True)[1])


@pytest.mark.parametrize("attention", ["fast", "reference"])
def test_padding_does_not_change_logits(attention):
    model = toy_model(attention=attention)
    x = tokens(n=3, length=30)
    x[2, 20:] = PAD  # an already-padded sequence too
    padded = torch.cat([x, torch.full((3, 17), PAD)], dim=1)
    torch.testing.assert_close(model(padded), model(x), atol=1e-5, rtol=1e-5)
    alone = model(x[2:, :20])
    torch.testing.assert_close(model(x)[2:], alone, atol=1e-5, rtol=1e-5)


def test_padded_positions_masked_in_attention():
    model = toy_model(kmers=(3,), attention="reference")
    x = tokens(n=1, length=20)
    x[0, 12:] = PAD
    _, weights = model(x, return_attention=True)
    assert (weights[..., 10:] == 0).all()  # conv outputs 10.. touch PAD
    assert (weights[..., :10] > 0).all()


def test_reference_layer_matches_torch_multihead_attention():
    model = toy_model(attention="reference")
    attn = model.layers[0].self_attn
    torch_attn = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    torch_attn.load_state_dict(attn.state_dict())
    x = torch.randn(3, 11, 32)
    valid = torch.ones(3, 11, dtype=torch.bool)
    valid[1, 7:] = False
    ours, our_w = attn(x, valid, need_weights=True)
    theirs, their_w = torch_attn(x, x, x, key_padding_mask=~valid, need_weights=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(our_w, their_w, atol=1e-6, rtol=1e-5)


def test_kmer_mask_marks_windows_that_touch_pad():
    pad = torch.rand(5, 23, generator=torch.Generator().manual_seed(0)) < 0.2  # PAD anywhere
    _, valid = KmerAggregate((3, 5), 8)(torch.randn(5, 23, 8), pad)
    pooled = [F.max_pool1d(pad.float().unsqueeze(1), k, stride=1).squeeze(1) == 0 for k in (3, 5)]
    assert torch.equal(valid, torch.cat(pooled, dim=1))


def test_padded_flag_from_the_caller_gives_the_same_logits():
    model = toy_model()
    x = tokens()
    assert not is_padded(x)
    torch.testing.assert_close(model(x, padded=False), model(x))
    torch.testing.assert_close(model(x, padded=True), model(x))  # masks on, all positions valid
    x[2, 25:] = PAD
    assert is_padded(x)
    torch.testing.assert_close(model(x, padded=True), model(x))


def test_one_compiled_graph_serves_every_width():
    """Issue 13: a k-mer mask that specialised the length made compile recompile for every batch width."""
    model = toy_model()
    compiled = torch.compile(model, backend="eager")

    def batch(width: int, padded: bool) -> torch.Tensor:
        x = tokens(n=4, length=width, seed=width)
        if padded:
            x[0, width - 4 :] = PAD
        return x

    torch._dynamo.reset()
    for width, padded in [(30, True), (31, True), (30, False), (31, False)]:  # warm-up: static, then dynamic
        compiled(batch(width, padded), padded=padded)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for width in (35, 47, 60, 99):
            for padded in (True, False):
                x = batch(width, padded)
                torch.testing.assert_close(compiled(x, padded=padded), model(x))
    torch._dynamo.reset()


def test_reference_attention_is_float32_under_autocast():
    """Issue 13: matmul is on autocast's lower-precision list; the reference path must stay fp32 under it."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 8, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    mask[1, ..., 6:] = False
    fp32 = reference_attention(q, k, v, mask, 0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = reference_attention(q, k, v, mask, 0.0)
    for ours, exact in zip(autocast, fp32, strict=True):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, exact, atol=0, rtol=0)


def test_short_sequence_raises():
    model = toy_model()
    with pytest.raises(ValueError, match="shorter than the largest k-mer"):
        model(torch.cat([tokens(n=1, length=4), torch.full((1, 10), PAD)], dim=1))
    with pytest.raises(ValueError, match="length"):
        model(tokens(n=1, length=4))


def test_dropout_active_in_train_mode():
    model = toy_model().train()
    x = tokens()
    assert not torch.equal(model(x), model(x))


def test_attention_dropout_apart_from_dropout():
    model = toy_model(attention_dropout=0.0)
    assert all(layer.self_attn.dropout == 0.0 and layer.dropout.p == 0.1 for layer in model.layers)
    assert all(layer.self_attn.dropout == 0.1 for layer in toy_model().layers)  # None: dropout


def test_lab_size_parameter_count():
    with torch.device("meta"):
        model = NucleicTransformer(ModelConfig(ninp=512, nhid=2048, nlayers=6, nhead=8, kmers=(13,)))
    assert sum(p.numel() for p in model.parameters()) == 22_327_298


class LabModel(nn.Module):
    """The lab notebook's model (2021), sequence-first with nn.MultiheadAttention, for fidelity checks."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.encoder = nn.Embedding(6, c.ninp)
        self.pe = NucleicTransformer(c).pos_encoder.pe.unsqueeze(1)
        self.convs = nn.ModuleList(nn.Conv1d(c.ninp, c.ninp, k) for k in c.kmers)
        self.norm = nn.LayerNorm(c.ninp)
        self.attn = nn.ModuleList(nn.MultiheadAttention(c.ninp, c.nhead) for _ in range(c.nlayers))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(c.ninp, c.nhid), nn.Mish(), nn.Linear(c.nhid, c.ninp))
            for _ in range(c.nlayers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(c.ninp) for _ in range(2 * c.nlayers))
        self.p = nn.Parameter(torch.ones(1))
        self.classifier = nn.Linear(c.ninp, c.n_targets)

    def load_from(self, ours: NucleicTransformer) -> "LabModel":
        s = ours.state_dict()
        self.encoder.weight.data, self.p.data = s["encoder.weight"], s["pool.p"]
        self.classifier.load_state_dict(ours.classifier.state_dict())
        self.norm.load_state_dict(ours.k_mer_aggregate.norm.state_dict())
        for conv, theirs in zip(self.convs, ours.k_mer_aggregate.convs, strict=True):
            conv.load_state_dict(theirs.state_dict())
        for i, layer in enumerate(ours.layers):
            self.attn[i].load_state_dict(layer.self_attn.state_dict())
            self.ffn[i][0].load_state_dict(layer.linear1.state_dict())
            self.ffn[i][2].load_state_dict(layer.linear2.state_dict())
            self.norms[2 * i].load_state_dict(layer.norm1.state_dict())
            self.norms[2 * i + 1].load_state_dict(layer.norm2.state_dict())
        return self.eval()

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        src = self.encoder(src.permute(1, 0))
        src = src + self.pe[: src.size(0)]  # [L, B, E]
        kmers = torch.cat([conv(src.permute(1, 2, 0)) for conv in self.convs], dim=2)
        src = self.norm(kmers.permute(2, 0, 1))
        for i, (attn, ffn) in enumerate(zip(self.attn, self.ffn, strict=True)):
            src = self.norms[2 * i](src + attn(src, src, src)[0])
            src = self.norms[2 * i + 1](src + ffn(src))
        x = src.permute(1, 2, 0).clamp(min=1e-6).pow(self.p)
        return self.classifier(F.avg_pool1d(x, x.size(-1)).pow(1.0 / self.p).squeeze(-1))


@pytest.mark.parametrize("attention", ["fast", "reference"])
def test_matches_the_lab_model(attention):
    model = toy_model(attention=attention)
    lab = LabModel(model.config).load_from(model)
    x = tokens()
    torch.testing.assert_close(model(x), lab(x), atol=1e-5, rtol=1e-5)


def test_kmer_spectrum_equals_the_baselines_features_before_standardising():
    from seq2epi.analysis.baselines import kmer_spectrum
    from seq2epi.model.transformer import KmerSpectrum

    x = tokens(6, 30, seed=3)
    x[0, 25:] = PAD
    spectrum = KmerSpectrum(3)
    raw = spectrum.norm
    spectrum.norm = nn.Identity()
    expected = kmer_spectrum(x.numpy(), (x != PAD).sum(1).numpy(), 3)
    assert torch.allclose(spectrum(x), torch.from_numpy(expected), atol=1e-6)
    spectrum.norm = raw
    assert spectrum(x).shape == (6, 4 + 16 + 64)


def test_kmer_features_join_the_pooled_output():
    model = toy_model(kmer_features=2)
    assert model.classifier.in_features == TOY["ninp"] + 4 + 16
    model.train()
    out = model(tokens(8, 40))
    out.sum().backward()
    assert out.shape == (8, TOY["n_targets"]) and model.classifier.weight.grad is not None


def test_stride_one_is_the_model_before_conv_stride():
    """Logits of the code before conv_stride existed (same seed, same input): stride 1 changes nothing."""
    x = tokens()
    x[1, 30:] = PAD
    before = torch.tensor([[0.336757, -0.469956], [0.266568, -0.592579], [0.362821, -0.564165],
                           [0.360749, -0.484380]])
    torch.testing.assert_close(toy_model(conv_stride=1)(x), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("stride", [2, 4])
def test_strided_convolution_keeps_every_stride_th_window_and_its_mask(stride):
    torch.manual_seed(0)
    every = KmerAggregate((3, 5), 8)
    strided = KmerAggregate((3, 5), 8, stride)
    strided.load_state_dict(every.state_dict())
    x, pad = torch.randn(5, 23, 8), torch.rand(5, 23, generator=torch.Generator().manual_seed(0)) < 0.2
    (out_1, valid_1), (out_s, valid_s) = every(x, pad), strided(x, pad)
    per_k = [23 - k + 1 for k in (3, 5)]
    keep = torch.cat([torch.arange(0, n, stride) + sum(per_k[:i]) for i, n in enumerate(per_k)])
    torch.testing.assert_close(out_s, out_1[:, keep])
    assert torch.equal(valid_s, valid_1[:, keep])
    pooled = [F.max_pool1d(pad.float().unsqueeze(1), k, stride=stride).squeeze(1) == 0 for k in (3, 5)]
    assert torch.equal(valid_s, torch.cat(pooled, dim=1))


def test_stride_shortens_attention_and_padding_still_changes_nothing():
    model = toy_model(conv_stride=4, attention="reference")
    x = tokens(n=3, length=40)
    x[2, 29:] = PAD
    _, weights = model(x, return_attention=True)
    n_positions = sum((40 - k) // 4 + 1 for k in TOY["kmers"])  # 10 + 9
    assert weights.shape == (3, 2, n_positions, n_positions)
    padded = torch.cat([x, torch.full((3, 13), PAD)], dim=1)
    torch.testing.assert_close(model(padded), model(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x)[2:], model(x[2:, :29]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="conv_stride must be >= 1"):
        toy_model(conv_stride=0)
