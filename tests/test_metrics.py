import math

import numpy as np
import pytest

from seq2epi.metrics import binary_metrics, choose_threshold

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
