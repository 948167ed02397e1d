import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import make_motif_data, make_toy_model  # noqa: E402

from seq2epi.analysis.interpret import ism  # noqa: E402
from seq2epi.analysis.motifs import Pattern, jaspar_motifs, match_motifs, modisco_patterns, pattern_logo  # noqa: E402
from seq2epi.model.train import TrainConfig, fit  # noqa: E402

# modisco-lite and memelite compile numba kernels on first use: a minute or more on 2 cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def positives_and_ism(tmp_path_factory):
    """Test positives of a toy transformer trained to find MOTIF (ACGTTG), with their ISM."""
    torch.set_num_threads(1)
    model = make_toy_model(kmers=(3,))
    cfg = TrainConfig(epochs=3, batch_size=32, schedule="constant", lr=1e-2, seed=1)
    fit(model, make_motif_data(384, 0), make_motif_data(64, 1), cfg, tmp_path_factory.mktemp("ck"),
        progress=False)
    data = make_motif_data(240, 2)
    keep = data.labels == 1
    tokens, lengths = data.tokens[keep], data.lengths[keep]
    return tokens, lengths, ism(model.eval(), tokens, lengths, batch_size=512)


def test_modisco_recovers_the_planted_motif(positives_and_ism):
    patterns = modisco_patterns(*positives_and_ism, sliding_window_size=9, flank_size=4,
                                trim_to_window_size=10, initial_flank_to_add=2)
    best = patterns[0]
    assert best.name == "pos_pattern_0" and best.n_seqlets >= 10
    assert len(best.consensus) >= 4 and (best.consensus in "ACGTTG" or best.consensus in "CAACGT")
    assert best.ppm.shape == best.cwm.shape == (len(best.consensus), 4)
    fig, ax = plt.subplots()
    assert pattern_logo(best.cwm, ax=ax, title=best.consensus) is ax and ax.get_title() == best.consensus
    plt.close(fig)
    with pytest.raises(ValueError, match="got 2 score arrays for 120 sequences"):
        modisco_patterns(*positives_and_ism[:2], positives_and_ism[2][:2])


def test_a_jaspar_plant_motif_matches_itself_on_both_strands():
    jaspar = jaspar_motifs()
    assert len(jaspar) > 500 and all(np.allclose(m.sum(0), 1) for m in jaspar.values())
    name = max(jaspar, key=lambda n: jaspar[n].shape[1])
    ppm = jaspar[name].T
    patterns = [Pattern("fwd", ppm, ppm, 1), Pattern("rev", ppm[::-1, ::-1].copy(), ppm, 1)]
    table = match_motifs(patterns, jaspar)
    assert len(table) == 6 and list(table["rank"][:3]) == [1, 2, 3]
    first = table[table["rank"] == 1]
    assert list(first["match"]) == [name, name] and list(first["strand"]) == ["+", "-"]
    assert (first["p_value"] < 1e-6).all() and (first["e_value"] == first["p_value"] * len(jaspar)).all()
    assert match_motifs([], jaspar).empty
    fig, ax = plt.subplots()
    pattern_logo(ppm, ax=ax, information=True)
    assert 0 < ax.get_ylim()[1] <= 2.5  # bits
    plt.close(fig)
    with pytest.raises(ValueError, match="no CORE motif of tax group 'martians'"):
        jaspar_motifs(tax_group="martians")


def test_motif_figure_draws_each_pattern_beside_its_best_match():
    from seq2epi.analysis.motifs import motif_figure

    ppm = np.eye(4)[[0, 1, 2, 3, 0]]
    pattern = Pattern("pattern_0", ppm, ppm * 0.5, 7)
    matches = pd.DataFrame({"pattern": ["pattern_0"] * 2, "rank": [2, 1], "match": ["M2", "M1"],
                            "strand": ["+", "-"], "e_value": [0.5, 0.01]})
    fig = motif_figure([pattern], matches, {"M1": ppm.T, "M2": ppm.T})
    assert [ax.get_title() for ax in fig.axes] == ["pattern_0 (7 seqlets)", "M1 (-), E = 0.01"]
    plt.close(fig)
