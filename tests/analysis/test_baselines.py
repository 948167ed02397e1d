import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from seq2epi.analysis import baselines
from seq2epi.data import sequence
from seq2epi.lab.metrics import spearman


def planted(n: int, seed: int):
    """Random 60-bp sequences; positives carry the motif GATAAG (GC-neutral-ish), negatives do not."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], rng.integers(0, 2, n)
    for label in labels:
        s = "".join(rng.choice(list("ACGT"), 60))
        seqs.append(s[:20] + "GATAAG" + s[26:] if label else s)
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    return tokens, lengths, labels


def test_kmer_spectrum_counts_and_skips_n_and_pad():
    tokens, lengths = sequence.pad_batch([sequence.encode("AACN"), sequence.encode("GT")])
    spectrum = baselines.kmer_spectrum(tokens, lengths, k_max=2)
    assert spectrum.shape == (2, 4 + 16)
    np.testing.assert_allclose(spectrum[0, :4], [2 / 3, 1 / 3, 0, 0])
    aa, ac = 4 + 0, 4 + 1
    np.testing.assert_allclose(spectrum[0, [aa, ac]], [0.5, 0.5])  # AC-N and N-PAD are not 2-mers
    assert spectrum[1, 4 + 2 * 4 + 3] == 1.0  # GT


def test_kmer_logistic_finds_a_planted_motif_that_gc_cannot_see():
    train, val, test = planted(400, 0), planted(200, 1), planted(200, 2)
    model, val_auroc = baselines.select_kmer_logistic(train, val)
    assert set(val_auroc) == {(k, C) for k in (3, 4, 6) for C in baselines.KMER_CS}
    assert val_auroc[model.k_max, model.model[-1].C] == max(val_auroc.values())
    assert roc_auc_score(test[2], model.score(*test[:2])) > 0.8
    gc = baselines.GCContent().fit(*train)
    assert abs(roc_auc_score(test[2], gc.score(*test[:2])) - 0.5) < 0.1


def test_gc_content_score_takes_the_sign_of_the_training_data():
    seqs = ("ATATAT", "ATATGC", "GCGCGC", "GCGCAT")
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    gc = baselines.GCContent().fit(tokens, lengths, np.array([1, 1, 0, 0]))
    assert gc.sign == -1.0 and gc.score(tokens, lengths)[0] > gc.score(tokens, lengths)[2]


# --- the regularisation grid (issue 12)

def test_the_c_grid_reaches_past_the_old_edge_and_tells_an_edge_choice():
    assert min(baselines.KMER_CS) <= 1e-5 < 1e-3 < max(baselines.KMER_CS)  # 1e-3 was the old smallest
    assert baselines.at_grid_edge(min(baselines.KMER_CS)) and baselines.at_grid_edge(max(baselines.KMER_CS))
    assert not baselines.at_grid_edge(1e-3)
    assert baselines.at_grid_edge(1e-3, Cs=(1e-3, 1e-2))


def test_the_c_grid_keeps_the_records_choices_inside_and_an_interior_choice_unchanged():
    assert not baselines.at_grid_edge(1e-6) and not baselines.at_grid_edge(10.0)  # the records' edge choices
    train, val = planted(400, 0), planted(200, 1)
    old_grid = tuple(float(10.0**e) for e in range(-6, 2))
    old, _ = baselines.select_kmer_logistic(train, val, Cs=old_grid)
    assert not baselines.at_grid_edge(old.model[-1].C, old_grid)
    new, _ = baselines.select_kmer_logistic(train, val)
    assert (new.k_max, new.model[-1].C) == (old.k_max, old.model[-1].C)


def counted(n: int, seed: int):
    """Random 60-bp sequences with 0-3 planted GATAAG; targets: the count with noise, and its negative with
    every third value unknown."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, n)
    seqs = []
    for count in counts:
        s = list("".join(rng.choice(list("ACGT"), 60)))
        for i in range(count):
            s[6 + 18 * i : 12 + 18 * i] = "GATAAG"
        seqs.append("".join(s))
    tokens, lengths = sequence.pad_batch([sequence.encode(s) for s in seqs])
    targets = np.stack([counts + rng.normal(0, 0.3, n), -counts + rng.normal(0, 0.3, n)], axis=1)
    targets[::3, 1] = np.nan
    return tokens, lengths, targets


def test_kmer_ridge_learns_each_target_leaving_its_nan_rows_out():
    train, test = counted(300, 0), counted(200, 1)
    model = baselines.KmerRidge(k_max=6, alpha=10.0).fit(*train)
    predicted = model.score(*test[:2])
    assert predicted.shape == (200, 2)
    assert spearman(test[2][:, 0], predicted[:, 0]) > 0.7 and spearman(test[2][:, 1], predicted[:, 1]) > 0.7
    known = ~np.isnan(train[2][:, 1])
    alone = baselines.KmerRidge(6, 10.0).fit(train[0][known], train[1][known], train[2][known, 1])
    np.testing.assert_allclose(alone.score(*test[:2]), predicted[:, 1], rtol=1e-5)
    assert alone.score(*test[:2]).shape == (200,)
    with pytest.raises(ValueError, match="target 1 has 1 known values"):
        baselines.KmerRidge(3).fit(train[0][:2], train[1][:2], train[2][:2])


def test_select_kmer_ridge_keeps_the_best_validation_spearman_and_tells_an_edge():
    train, val = counted(300, 0), counted(150, 2)
    model, choice = baselines.select_kmer_ridge(train, val)
    grid = choice["val_spearman"]
    assert set(grid) == {(k, a) for k in (3, 4, 5, 6) for a in baselines.KMER_ALPHAS}
    assert grid[choice["k_max"], choice["alpha"]] == max(grid.values()) > 0.7
    assert (model.k_max, model.alpha) == (choice["k_max"], choice["alpha"])
    edges = (min(baselines.KMER_ALPHAS), max(baselines.KMER_ALPHAS))
    assert choice["alpha_at_edge"] == (choice["alpha"] in edges)
    _, edge = baselines.select_kmer_ridge(train, val, alphas=(1e5, 1e6), k_maxes=(6,))
    assert edge["alpha"] == 1e5 and edge["alpha_at_edge"]


def test_the_kmer_ridge_fits_a_dependent_spectrum_without_warning_noise():
    from scipy.linalg import LinAlgWarning

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 4, (200, 400)).astype(np.uint8)  # fewer sequences than 1..4-mer features
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)  # a record keeps no warning lines
        baselines.KmerRidge(k_max=4, alpha=1e-3).fit(tokens, np.full(200, 400), rng.normal(size=200))
