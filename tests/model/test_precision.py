import os

import pytest
import torch

from seq2epi.model.precision import (
    autocast,
    dtype_name,
    grad_scaler,
    resolve_device,
    resolve_precision,
    set_numerics,
)


@pytest.mark.parametrize(("capability", "expected"), [
    ((9, 0), torch.bfloat16),  # H100 / H200
    ((8, 0), torch.bfloat16),  # A100
    ((7, 5), torch.float16),  # T4
    ((7, 0), torch.float16),  # V100: bf16 would be emulated
    ((6, 0), None),  # P100: fp32
])
def test_auto_follows_the_gpu_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", "cuda") == expected
    assert resolve_precision("auto", "cuda:1") == expected


def test_auto_is_fp32_on_the_cpu_and_explicit_names_hold_everywhere(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert resolve_precision("auto", "cpu") is None
    for device in ("cpu", "cuda"):
        assert resolve_precision("fp32", device) is None
        assert resolve_precision("bf16", device) == torch.bfloat16
        assert resolve_precision("fp16", device) == torch.float16
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'half'"):
        resolve_precision("half", "cpu")


def test_autocast_and_scaler():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(torch.device("cpu"), None):
        assert (a @ b).dtype == torch.float32
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
    assert grad_scaler(torch.device("cpu"), torch.float16).is_enabled()
    assert not grad_scaler(torch.device("cpu"), torch.bfloat16).is_enabled()
    assert not grad_scaler(torch.device("cpu"), None).is_enabled()


def test_set_numerics(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        set_numerics(tf32=True, deterministic=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        set_numerics()
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert not torch.are_deterministic_algorithms_enabled()


def test_dtype_name_is_what_records_show():
    assert [dtype_name(resolve_precision(p, "cpu")) for p in ("auto", "fp32", "bf16", "fp16")] == \
        ["fp32", "fp32", "bf16", "fp16"]


@pytest.mark.parametrize(("gpu", "expected"), [(True, "cuda"), (False, "cpu")])
def test_auto_device_is_the_gpu_when_there_is_one(monkeypatch, gpu, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_an_unknown_device_is_one_sentence():
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda, cuda:<n> or mps, got 'gpu'"):
        resolve_device("gpu")
