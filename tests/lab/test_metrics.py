import math
import time

import numpy as np
import pytest
from scipy import stats

from seq2epi.lab.metrics import (
    _resample_counts,
    _weighted_metrics,
    binary_metrics,
    bootstrap_ci,
    brier,
    choose_threshold,
    ece,
    pearson,
    per_target,
    regression_metrics,
    reliability_bins,
    spearman,
)

Y = [0, 0, 1, 1, 1, 0]
S = [0.1, 0.6, 0.7, 0.4, 0.9, 0.2]  # at 0.5: tp 2 (0.7, 0.9), fp 1 (0.6), fn 1 (0.4), tn 2


def test_binary_metrics_by_hand():
    m = binary_metrics(Y, S)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 2, 1)
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["sens"] == pytest.approx(2 / 3) and m["spec"] == pytest.approx(2 / 3)
    assert m["mcc"] == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))
    assert m["auroc"] == pytest.approx(8 / 9)  # 8 of 9 positive/negative pairs ordered right
    assert m["auprc"] == pytest.approx((1 + 1 + 3 / 4) / 3)  # precision at each positive, in score order
    assert m["threshold"] == 0.5


def test_threshold_is_inclusive():
    m = binary_metrics(Y, S, threshold=0.7)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 0, 3, 1)
    assert m["spec"] == 1.0


def test_single_class_gives_nan_not_error():
    m = binary_metrics([0, 0, 0], [0.2, 0.7, 0.1])
    assert math.isnan(m["auroc"]) and math.isnan(m["auprc"]) and math.isnan(m["sens"])
    assert m["spec"] == pytest.approx(2 / 3) and m["acc"] == pytest.approx(2 / 3) and m["mcc"] == 0.0
    m = binary_metrics(np.ones(3), [0.2, 0.7, 0.9])
    assert math.isnan(m["auroc"]) and m["auprc"] == 1.0 and math.isnan(m["spec"])


def test_bad_input():
    with pytest.raises(ValueError, match="equally long"):
        binary_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="only 0 and 1"):
        binary_metrics([0, 2], [0.5, 0.5])


def test_choose_threshold_by_hand():
    y = [0, 0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.5, 0.4, 0.8, 0.9]
    # >= 0.8: tp 2 fp 0 -> MCC 8/sqrt(120) = 0.73, J = 0.67; >= 0.4: tp 3 fp 1 -> MCC 9/12 = 0.75, J = 0.75
    assert choose_threshold(y, s) == 0.4
    assert choose_threshold(y, s, criterion="youden") == 0.4
    best = binary_metrics(y, s, threshold=0.4)["mcc"]
    assert all(binary_metrics(y, s, threshold=t)["mcc"] <= best + 1e-12 for t in s)


def test_choose_threshold_separable_and_errors():
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 0.3
    with pytest.raises(ValueError, match="criterion"):
        choose_threshold(Y, S, criterion="f1")
    with pytest.raises(ValueError, match="both positive and negative"):
        choose_threshold([1, 1], [0.2, 0.3])


def scored(n, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(int)
    return y, np.round(y + rng.normal(size=n), 1)  # rounded: many tied scores


def test_weighted_metrics_of_one_resample_equal_binary_metrics_of_the_repeated_examples():
    y, s = scored(300)
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    counts = np.zeros((1, len(y)))
    counts[:, y == 1] = _resample_counts(np.random.default_rng(1), int(y.sum()), 1)
    counts[:, y == 0] = _resample_counts(np.random.default_rng(2), int((y == 0).sum()), 1)
    w_pos, w_neg = counts * (y == 1), counts * (y == 0)
    got = _weighted_metrics(np.add.reduceat(w_pos, starts, 1), np.add.reduceat(w_neg, starts, 1),
                            s[starts] >= 0.5)
    idx = np.repeat(np.arange(len(y)), counts[0].astype(int))
    expected = binary_metrics(y[idx], s[idx], threshold=0.5)
    for k in ("auroc", "auprc", "mcc", "acc"):
        assert got[k][0] == pytest.approx(expected[k], abs=1e-12), k


def test_bootstrap_ci_contains_the_estimate_narrows_with_data_and_is_seeded():
    y, s = scored(400)
    point = binary_metrics(y, s, 0.5)
    ci = bootstrap_ci(y, s, 0.5, n_boot=500, seed=3)
    assert set(ci) == {"auroc", "auprc", "mcc", "acc"}
    for k, (low, high) in ci.items():
        assert low < point[k] < high, k
    assert ci == bootstrap_ci(y, s, 0.5, n_boot=500, seed=3)
    assert ci != bootstrap_ci(y, s, 0.5, n_boot=500, seed=4)
    big = bootstrap_ci(*scored(4000), 0.5, n_boot=500, seed=3)
    for k in ci:
        assert big[k][1] - big[k][0] < (ci[k][1] - ci[k][0]) / 2, k
    assert bootstrap_ci(y, s, 0.5, n_boot=500, seed=3, level=0.5)["auroc"][1] < ci["auroc"][1]


def test_bootstrap_ci_bad_input():
    with pytest.raises(ValueError, match="both positive and negative"):
        bootstrap_ci([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="level must lie in"):
        bootstrap_ci(Y, S, level=95)


def test_per_target_ignores_unlabelled_examples():
    y = np.array([Y, [np.nan, 1, 0, np.nan, 1, 0]], dtype=float).T
    p = np.array([S, [0.9, 0.8, 0.1, 0.2, 0.3, 0.4]]).T
    out = per_target(y, p, thresholds=[0.5, 0.35], marks=["H3K4me3", "H3K27me3"])
    assert list(out) == ["H3K4me3", "H3K27me3"]
    assert out["H3K4me3"] | {"n": 0} == binary_metrics(Y, S) | {"n": 0} and out["H3K4me3"]["n"] == 6
    assert out["H3K27me3"] == binary_metrics([1, 0, 1, 0], [0.8, 0.1, 0.3, 0.4], 0.35) | {"n": 4}
    assert list(per_target(Y, S)) == ["0"]
    with pytest.raises(ValueError, match="2 mark names for 1 targets"):
        per_target(Y, S, marks=["a", "b"])
    with pytest.raises(ValueError, match="'b' has no labelled example"):
        per_target(np.c_[Y, np.full(6, np.nan)], np.c_[S, S], marks=["a", "b"])


def test_reliability_bins_ece_and_brier_by_hand():
    y, p = [0, 1, 1, 0, 1], [0.05, 0.15, 0.95, 0.9, 1.0]
    bins = reliability_bins(y, p, n_bins=2)
    assert list(bins["count"]) == [2, 3] and list(bins["upper"]) == [0.5, 1.0]  # 1.0 falls in the last bin
    assert bins["mean_prob"].tolist() == pytest.approx([0.1, 0.95])
    assert bins["frac_pos"].tolist() == pytest.approx([0.5, 2 / 3])
    assert ece(y, p, n_bins=2) == pytest.approx((2 * 0.4 + 3 * (0.95 - 2 / 3)) / 5)
    assert brier(y, p) == pytest.approx((0.05**2 + 0.85**2 + 0.05**2 + 0.9**2 + 0) / 5)
    assert math.isnan(reliability_bins(y, p, n_bins=4)["frac_pos"][1])  # an empty bin
    assert ece([0, 1], [0.0, 1.0]) == 0.0 and brier([0, 1], [0.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        ece([0, 1], [0.2, 1.5])


def test_spearman_and_pearson_leave_nan_pairs_out_and_match_scipy():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    p = y + rng.normal(size=50)
    p[:5] = np.round(p[:5])  # ties
    y_nan, p_nan = np.r_[y, np.nan, 1.0], np.r_[p, 2.0, np.nan]
    assert math.isclose(spearman(y_nan, p_nan), stats.spearmanr(y, p).statistic)
    assert math.isclose(pearson(y_nan, p_nan), stats.pearsonr(y, p).statistic)
    assert math.isclose(spearman([1, 2, 3], [1, 4, 9]), 1.0) and pearson([1, 2, 3], [1, 4, 9]) < 1
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5])) and math.isnan(pearson([1, np.nan], [2, 3]))
    with pytest.raises(ValueError, match="equally long, got 3 and 2"):
        pearson([1, 2, 3], [1, 2])


def test_regression_metrics_intervals_hold_the_estimate_narrow_with_data_and_are_fast():
    rng = np.random.default_rng(1)
    y = rng.normal(size=1000)
    p = y + rng.normal(size=1000)
    y[0] = np.nan
    began = time.perf_counter()
    m = regression_metrics(y, p)
    assert time.perf_counter() - began < 1.0  # 1000 resamples of 1,000 genes
    assert m["n"] == 999 and m["spearman"] == spearman(y, p) and m["pearson"] == pearson(y, p)
    for name in ("spearman", "pearson"):
        low, high = m[f"{name}_ci"]
        assert low < m[name] < high and high - low < 0.1
        wide = regression_metrics(y[1:101], p[1:101])[f"{name}_ci"]
        assert wide[1] - wide[0] > high - low
    assert regression_metrics(y, p) == m and regression_metrics(y, p, seed=1) != m
    with pytest.raises(ValueError, match="at least 2 pairs without NaN, got 1"):
        regression_metrics([1.0, np.nan], [1.0, 2.0])
