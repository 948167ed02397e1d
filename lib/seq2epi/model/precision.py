"""How a device computes: the precision policy (fp32 / bf16 / fp16 autocast), TF32, determinism."""

import contextlib
import os

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")  # a device's type; cuda:1 names one GPU
NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def resolve_device(name: str) -> str:
    """The device a notebook or command computes on: `auto` is the GPU when there is one, else the CPU."""
    if str(name).split(":")[0] not in DEVICES:
        raise ValueError(f"device must be auto, cpu, cuda, cuda:<n> or mps, got {name!r}.")
    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(name: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of precision `name` on `device`; None means fp32 (no autocast).

    auto: bfloat16 on CUDA sm80+ (A100, H100), float16 on sm70/75 (V100, T4: bf16 is emulated there), fp32 on
    older GPUs and on the CPU.
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}.")
    device = torch.device(device)
    if name != "auto":
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16 if major == 7 else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on the device's type; no autocast when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A loss scaler, enabled for float16 only (bfloat16 has fp32's range)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def set_numerics(tf32: bool = False, deterministic: bool = False) -> None:
    """TF32 for fp32 matmuls and convolutions (off: true fp32, as on the CPU); deterministic CUDA algorithms.

    Deterministic mode sets CUBLAS_WORKSPACE_CONFIG, which cuBLAS reads when it starts: call this before the
    first CUDA matmul of the process (fit does, before it moves the model).
    """
    # the legacy flags: once the fp32_precision API is used, torch refuses reads of allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32  # torch's default lets cuDNN convolutions use TF32
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic)


def dtype_name(dtype: torch.dtype | None) -> str:
    """fp32, bf16 or fp16: how a record names what resolve_precision chose."""
    return NAMES[dtype]
