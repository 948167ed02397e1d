"""Reference vs fast path: train samples/s, predict windows/s and peak memory at 200, 500 and 1,000 bp.

    python benchmarks/speed.py --out benchmarks/speed_gpu.json            # GPU, the lab's model size
    python benchmarks/speed.py --small --out benchmarks/speed_cpu.json    # CPU, a small model, few steps

Each measurement runs in a fresh process, so peak memory is its own: torch.cuda.max_memory_allocated on GPU,
the growth of the process's peak RSS (resource.getrusage ru_maxrss, not torch-aware) on CPU. The reference
path is true fp32 (no TF32); "fast" computes in the precision policy's dtype (`precision: auto`: bf16 on
sm80+, fp16 with loss scaling on sm70/75, fp32 on the CPU). With --compile every timed batch has the
warm-up's shape, so no recompile is timed. --md writes the table between speed.md's `<!-- gpu-rows -->`
markers.
"""

import argparse
import json
import os
import platform
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context

import numpy as np
import torch
import torch._dynamo

from seq2epi.data.datasets import WindowDataset
from seq2epi.lab.io import atomic_path
from seq2epi.model.precision import dtype_name, grad_scaler, resolve_precision, set_numerics
from seq2epi.model.predict import auto_batch_size, predict
from seq2epi.model.train import TrainConfig, make_loader, make_optimizer, set_threads, train_step
from seq2epi.model.transformer import ModelConfig, NucleicTransformer

LAB = dict(ninp=512, nhead=8, nhid=2048, nlayers=6, kmers=(13,))
SMALL = dict(ninp=128, nhead=8, nhid=512, nlayers=2, kmers=(13,))
LENGTHS = (200, 500, 1000)
# dense 16-bit tensor-core peak (bf16, fp16 on the V100), by device name
PEAK_TFLOPS = {"H100 PCIe": 756, "H100": 989, "H200": 989, "A100": 312, "V100-PCIE": 112, "V100-SXM2": 125}
MARKERS = ("<!-- gpu-rows -->", "<!-- /gpu-rows -->")


def flops_per_window(cfg: ModelConfig, length: int) -> float:
    """Forward FLOPs of one window: k-mer convolutions, q/k/v/out projections, QK^T and AV, feed-forward."""
    e, n = cfg.ninp, sum(length - k + 1 for k in cfg.kmers)
    conv = sum(2 * (length - k + 1) * e * e * k for k in cfg.kmers)
    layer = 2 * n * e * 4 * e + 2 * 2 * n * n * e + 2 * 2 * n * e * cfg.nhid
    return conv + cfg.nlayers * layer + 2 * e * cfg.n_targets


def paths(args) -> dict[str, dict]:
    """The reference path (the lab's computation: fp32, explicit softmax, plain Adam) and the fast path(s)."""
    out = {"reference": dict(attention="reference", precision="fp32", compile=False, fused=False),
           "fast": dict(attention="fast", precision="auto", compile=False, fused=True)}
    if args.amp and args.device != "cuda":
        out["fast+bf16"] = dict(attention="fast", precision="bf16", compile=False, fused=True)
    if args.compile:
        out["fast+compile"] = dict(attention="fast", precision="auto", compile=True, fused=True)
    if args.attention_dropout0:
        out["fast, attention dropout 0"] = dict(attention="fast", precision="auto", compile=False, fused=True,
                                                attention_dropout=0.0)
        if args.amp and args.device != "cuda":
            out["fast+bf16, attention dropout 0"] = dict(attention="fast", precision="bf16", compile=False,
                                                         fused=True, attention_dropout=0.0)
    return out


def _peak_start(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak(device: torch.device, start: int) -> float:
    """Peak bytes since _peak_start: allocated CUDA memory, or the growth of peak RSS on CPU."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated())
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(path: dict, phase: str, length: int, size: dict, args) -> dict:
    """Throughput and peak memory of `phase` ("train" or "predict"), measured in this (fresh) process."""
    threads = set_threads()
    set_numerics()  # true fp32 where fp32 is computed
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = NucleicTransformer(ModelConfig(**size, attention=path["attention"],
                                           attention_dropout=path.get("attention_dropout"))).to(device)
    rng = np.random.default_rng(0)
    if phase == "train":
        n = args.batch * (args.warmup + args.steps)
        tokens = rng.integers(0, 4, (n, length), dtype=np.uint8)
        ds = WindowDataset(tokens, np.full(n, length), rng.integers(0, 2, n).astype(np.float32))
        cfg = TrainConfig(batch_size=args.batch, num_workers=args.workers, device=args.device,
                          precision=path["precision"], compile=path["compile"])
        scaler = grad_scaler(device, resolve_precision(cfg.precision, device))
        net = torch.compile(model) if cfg.compile else model
        opt = (make_optimizer(model, cfg, device) if path["fused"]
               else torch.optim.Adam(model.parameters(), lr=1e-4))
        start = _peak_start(device)
        model.train()
        for i, (x, y) in enumerate(make_loader(ds, cfg, device)):
            if i == args.warmup:
                _sync(device)
                torch._dynamo.config.error_on_recompile = True  # a recompile is never timed
                t0 = time.perf_counter()
            train_step(net, opt, x, y, 1e-4, cfg, device, scaler)
        _sync(device)
        rate, batch = args.steps * args.batch / (time.perf_counter() - t0), args.batch
    else:
        net = torch.compile(model) if path["compile"] else model
        batch = (auto_batch_size(model, length, device, args.predict_batch, path["precision"])
                 if path["attention"] == "fast" else args.predict_batch)
        n = -(-max(args.predict_windows, 2 * batch) // batch) * batch  # whole batches: no smaller last one
        tokens = rng.integers(0, 4, (n, length), dtype=np.uint8)
        start = _peak_start(device)
        run = dict(batch_size=batch, device=device, precision=path["precision"])
        predict(net, tokens[: 2 * batch], **run)  # warm-up (and compilation)
        torch._dynamo.config.error_on_recompile = True  # a recompile is never timed
        t0 = time.perf_counter()
        predict(net, tokens, **run)
        rate = n / (time.perf_counter() - t0)
    return {"rate": rate, "batch": batch, "peak_bytes": _peak(device, start), "threads": threads,
            "dtype": dtype_name(resolve_precision(path["precision"], device))}


def device_description(device: str) -> tuple[str, float | None]:
    """(description, dense 16-bit peak TFLOP/s or None)."""
    if device == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
        return f"{name} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)", peak
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU {platform.processor() or platform.machine()}, {cores} cores available", None


def table(result: dict) -> str:
    """Markdown: one row per length and path, then fast/reference ratios."""
    peak = result["peak_tflops"]
    head = ("| bp | path | train samples/s | predict windows/s | predict batch | peak train GB "
            "| peak predict GB | train TFLOP/s | MFU train | MFU predict |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    rows = {(r["length"], r["path"]): r for r in result["rows"]}
    for length in result["lengths"]:
        for name in result["paths"]:
            r = rows[length, name]
            mfu = [f"{100 * r[k] / (peak * 1e12):.1f}%" if peak else "n/a"
                   for k in ("train_flops", "predict_flops")]
            lines.append(f"| {length} | {name} | {r['train']:,.1f} | {r['predict']:,.1f} "
                         f"| {r['predict_batch']} | {r['train_peak'] / 1e9:.2f} "
                         f"| {r['predict_peak'] / 1e9:.2f} "
                         f"| {r['train_flops'] / 1e12:.3g} | {mfu[0]} | {mfu[1]} |")
        ref = rows[length, "reference"]
        for name in result["paths"][1:]:
            r = rows[length, name]
            ratio = {k: f"{r[k] / ref[k]:.2f}×" for k in ("train", "predict", "train_peak", "predict_peak")}
            lines.append(f"| {length} | {name} / reference | {ratio['train']} | {ratio['predict']} | "
                         f"| {ratio['train_peak']} | {ratio['predict_peak']} | | | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="JSON results path")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--small", action="store_true", help="ninp 128, nhid 512, nlayers 2, nhead 8, kmers [13]")
    for key in ("ninp", "nhead", "nhid", "nlayers"):
        p.add_argument(f"--{key}", type=int)
    p.add_argument("--kmers", type=int, nargs="+", help="k-mer aggregation widths (default [13])")
    p.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    p.add_argument("--batch", type=int, help="training batch (default 64, --small 32)")
    p.add_argument("--predict-batch", type=int, default=64,
                   help="the reference path's; the fast path's comes from free GPU memory")
    p.add_argument("--steps", type=int, help="timed training steps (default 20, --small 2)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 5, --small 1)")
    p.add_argument("--predict-windows", type=int, help="windows predicted (default 8192, --small 128)")
    p.add_argument("--workers", type=int, help="DataLoader workers (default: 8 on GPU, 0 on CPU)")
    p.add_argument("--compile", action="store_true", help="also measure the fast path with torch.compile")
    p.add_argument("--amp", action="store_true", help="CPU: also the fast path in bfloat16")
    p.add_argument("--attention-dropout0", action="store_true",
                   help="also the fast path with no dropout on attention weights (dropout kept elsewhere)")
    p.add_argument("--peak-tflops", type=float, help="dense 16-bit peak for MFU (default: by GPU name)")
    p.add_argument("--md", help="markdown file whose <!-- gpu-rows --> block receives the table")
    args = p.parse_args()
    size = {**(SMALL if args.small else LAB), **{k: v for k in ("ninp", "nhead", "nhid", "nlayers")
                                                  if (v := getattr(args, k)) is not None}}
    if args.kmers:
        size["kmers"] = tuple(args.kmers)
    args.batch = args.batch or (32 if args.small else 64)
    args.steps = args.steps or (2 if args.small else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.small else 5)
    args.predict_windows = args.predict_windows or (128 if args.small else 8192)
    if args.workers is None:
        args.workers = min(8, set_threads()) if args.device == "cuda" else 0
    description, peak = device_description(args.device)
    result = {"device": description, "torch": torch.__version__, "peak_tflops": args.peak_tflops or peak,
              "model": asdict(ModelConfig(**size)), "args": vars(args), "lengths": args.lengths,
              "paths": list(paths(args)), "rows": []}
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        for length in args.lengths:
            for name, path in paths(args).items():
                train, pred = (pool.submit(measure, path, phase, length, size, args).result()
                               for phase in ("train", "predict"))
                flops = flops_per_window(ModelConfig(**size), length)
                row = {"length": length, "path": name, "train": train["rate"], "predict": pred["rate"],
                       "predict_batch": pred["batch"], "train_peak": train["peak_bytes"],
                       "predict_peak": pred["peak_bytes"], "threads": train["threads"],
                       "dtype": pred["dtype"],
                       "flops_per_window": flops, "train_flops": 3 * flops * train["rate"],
                       "predict_flops": flops * pred["rate"]}
                result["rows"].append(row)
                print(f"{length} bp {name}: {row['train']:.1f} train samples/s, "
                      f"{row['predict']:.1f} predict windows/s", flush=True)
    print(f"\n{description}, torch {torch.__version__}, model {size}\n")
    print(table(result))
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=1))
    if args.md:
        write_rows(args.md, result, size)


def write_rows(path: str, result: dict, size: dict) -> None:
    """Replace the block between MARKERS in the markdown file `path` with this run's table."""
    text = open(path).read()
    head, rest = text.split(MARKERS[0], 1)
    _, tail = rest.split(MARKERS[1], 1)
    first = [r for r in result["rows"] if r["length"] == result["lengths"][0]]
    dtypes = ", ".join(f"{r['path']} {r['dtype']}" for r in first)
    block = (f"{MARKERS[0]}\n{result['device']}, torch {result['torch']}, model {size}; dtypes: {dtypes}; "
             f"MFU against {result['peak_tflops'] or 'n/a'} TFLOP/s.\n\n{table(result)}\n{MARKERS[1]}")
    with atomic_path(path) as tmp:
        tmp.write_text(head + block + tail)


if __name__ == "__main__":
    main()
