import numpy as np
from sklearn.metrics import roc_auc_score

from seq2epi import baselines, sequence


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
