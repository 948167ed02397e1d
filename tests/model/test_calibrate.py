import json
from functools import partial

import numpy as np
import pytest

from seq2epi.lab import metrics
from seq2epi.model import calibrate


def sampled(n: int, seed: int, temperature: float = 1.0):
    """Labels drawn from true probabilities; the model reports sigmoid(true logit * temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return 1 / (1 + np.exp(-z * temperature)), y


def test_an_over_confident_model_gets_t_above_one_and_its_ece_drops():
    p_val, y_val = sampled(4000, 0, temperature=3.0)
    p_test, y_test = sampled(4000, 1, temperature=3.0)
    (t,) = calibrate.fit_temperature(p_val, y_val)
    assert t == pytest.approx(3.0, rel=0.1)
    fixed = calibrate.apply_temperature(p_test, t)
    assert metrics.ece(y_test, fixed) < metrics.ece(y_test, p_test) / 3
    assert metrics.brier(y_test, fixed) < metrics.brier(y_test, p_test)
    assert metrics.binary_metrics(y_test, fixed)["auroc"] == pytest.approx(
        metrics.binary_metrics(y_test, p_test)["auroc"])  # the order of the scores is kept


def test_calibrated_data_keep_t_near_one():
    p, y = sampled(20000, 2)
    assert calibrate.fit_temperature(p, y)[0] == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(calibrate.apply_temperature(p, 1.0), p, atol=1e-6)


def test_each_mark_gets_its_own_temperature_and_nan_labels_are_left_out():
    columns = [sampled(3000, s, temperature=t) for s, t in ((3, 0.5), (4, 1.0), (5, 2.0))]
    p = np.stack([c[0] for c in columns], 1)
    y = np.stack([c[1] for c in columns], 1)
    y[::3, 1] = np.nan
    t = calibrate.fit_temperature(p, y)
    np.testing.assert_allclose(t, [0.5, 1.0, 2.0], rtol=0.12)
    assert calibrate.apply_temperature(p, t).shape == p.shape
    z = calibrate.logit(p[:, 2])
    assert calibrate.fit_temperature(z, y[:, 2], from_logits=True) == pytest.approx(t[2])


def test_bad_shapes_and_single_class_labels_are_refused():
    with pytest.raises(ValueError, match="target 0: calibration needs labels 0 and 1"):
        calibrate.fit_temperature([0.2, 0.7], [1, 1])
    with pytest.raises(ValueError, match="one temperature per column"):
        calibrate.apply_temperature(np.full((4, 2), 0.5), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same shape"):
        calibrate.fit_temperature(np.full((4, 2), 0.5), np.zeros(4))


def test_save_load_from_a_record_or_its_checkpoint_and_a_calibrated_predictor(tmp_path):
    folder = tmp_path / "record" / "artifacts" / "checkpoints"
    folder.mkdir(parents=True)
    path = calibrate.save(folder / calibrate.FILENAME, ["H3K4me3", "H3K9ac"], np.array([2.0, 0.5]),
                          fitted_on="val")
    assert not list(folder.glob("*.tmp"))
    for where in (path, folder / "best.pt", tmp_path / "record"):
        loaded = calibrate.load(where)
        assert loaded["marks"] == ["H3K4me3", "H3K9ac"] and loaded["temperature"] == [2.0, 0.5]
    assert json.loads(path.read_text())["fitted_on"] == "val"

    def predictor(x, scale):
        return np.stack([x * scale, x * scale], 1)

    probs = calibrate.calibrated(partial(predictor, scale=1.0), loaded["temperature"])(np.array([0.9, 0.1]))
    np.testing.assert_allclose(probs[:, 0], [0.75, 0.25], atol=1e-6)  # logit 2.197 / 2 -> 0.75
    np.testing.assert_allclose(probs[:, 1], [0.9878, 0.0122], atol=1e-4)
    with pytest.raises(FileNotFoundError, match="no calibration"):
        calibrate.load(tmp_path)
