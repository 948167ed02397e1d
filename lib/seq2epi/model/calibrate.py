"""Temperature scaling: one temperature per mark, fitted on validation, stored beside the checkpoint.

A probability p is calibrated as sigmoid(logit(p) / T). T > 1 softens an over-confident model, T < 1 sharpens
an under-confident one; the order of the scores, hence AUROC and every threshold's confusion matrix, is kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from seq2epi.lab.io import atomic_path

FILENAME = "calibration.json"  # beside best.pt in artifacts/checkpoints/
_EPS = 1e-7
_LOG_T = (np.log(0.02), np.log(50.0))  # the temperatures searched


def logit(p) -> np.ndarray:
    """log(p / (1 - p)), probabilities clipped to [1e-7, 1 - 1e-7]."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _nll(log_t: float, z: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(z / T) against y, T = exp(log_t)."""
    s = z / np.exp(log_t)
    return float(np.mean(np.logaddexp(0, s) - y * s))


def fit_temperature(probs, labels, from_logits: bool = False) -> np.ndarray:
    """[T] temperatures (one per column of probs [n] or [n, T]) that minimise the log-loss on (probs, labels).

    NaN labels are left out per column (multi-task data); a column needs both classes.
    """
    z = np.asarray(probs, dtype=np.float64) if from_logits else logit(probs)
    y = np.asarray(labels, dtype=np.float64)
    z, y = z.reshape(len(z), -1), y.reshape(len(y), -1)
    if z.shape != y.shape:
        raise ValueError(f"probabilities and labels must have the same shape, got {z.shape} and {y.shape}.")
    out = np.empty(z.shape[1])
    for t in range(z.shape[1]):
        known = ~np.isnan(y[:, t])
        zt, yt = z[known, t], y[known, t]
        if not np.isin(yt, (0, 1)).all() or len(np.unique(yt)) < 2:
            raise ValueError(f"target {t}: calibration needs labels 0 and 1, both present, "
                             f"got {np.unique(yt)[:5]}.")
        fit = minimize_scalar(_nll, bounds=_LOG_T, args=(zt, yt), method="bounded", options={"xatol": 1e-6})
        out[t] = np.exp(fit.x)
    return out


def apply_temperature(probs, temperature) -> np.ndarray:
    """sigmoid(logit(p) / T) with one T per column of probs [n] or [n, T]; float32 like predict's output."""
    probs = np.asarray(probs)
    temperature = np.asarray(temperature, dtype=np.float64).ravel()
    if probs.ndim == 1:
        if temperature.size != 1:
            raise ValueError(f"one column of probabilities needs one temperature, got {temperature.size}.")
        temperature = temperature[0]
    elif probs.ndim != 2 or probs.shape[1] != temperature.size:
        raise ValueError(f"probabilities of shape {probs.shape} need one temperature per column, "
                         f"got {temperature.size}.")
    return (1 / (1 + np.exp(-logit(probs) / temperature))).astype(np.float32)


def calibrated(predictor: Callable[..., np.ndarray], temperature) -> Callable[..., np.ndarray]:
    """A predictor (e.g. a partial of predict.predict) whose probabilities are temperature-scaled."""

    def predict_calibrated(*args, **kwargs) -> np.ndarray:
        return apply_temperature(predictor(*args, **kwargs), temperature)

    return predict_calibrated


def save(path: str | os.PathLike, marks: list[str], temperature, **details) -> Path:
    """Write {"method": "temperature", "marks", "temperature", **details} as JSON, atomically."""
    path, temperature = Path(path), [float(t) for t in np.ravel(temperature)]
    if len(marks) != len(temperature):
        raise ValueError(f"got {len(marks)} marks for {len(temperature)} temperatures.")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"method": "temperature", "marks": list(marks), "temperature": temperature,
                                   **details}, indent=2))
    return path


def load(path: str | os.PathLike) -> dict:
    """A calibration written by save, from its JSON, the checkpoint beside it, or the record folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "artifacts" / "checkpoints" / FILENAME
    elif path.suffix == ".pt":
        path = path.with_name(FILENAME)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no calibration; 03_evaluate writes it beside the best checkpoint.")
    calibration = json.loads(path.read_text())
    if calibration.get("method") != "temperature" or len(calibration["marks"]) != len(
            calibration["temperature"]):
        raise ValueError(f"{path}: expected method 'temperature' and one temperature per mark.")
    return calibration
