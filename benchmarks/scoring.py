"""Scoring throughput: sequences/s of `seq2epi predict` (1 kb sequences, tiled) against the 04 path
(predict.predict_genome) on the same windows, and variants/s of `seq2epi score-variants`.

    OMP_NUM_THREADS=1 python benchmarks/scoring.py --out benchmarks/scoring_cpu.json   # this CPU, one thread
    python benchmarks/scoring.py --device cuda --scale 50 --out benchmarks/scoring_gpu.json

Random-weight models of the lab's size and of the reduced size the committed CPU records use; throughput does
not depend on the weights. The input is a seeded random genome of 1 kb sequences, read once as a FASTA of
sequences (predict) and once as a genome of 1 kb chromosomes (04's track), so both paths score the same
17 windows (200 bp, stride 50) per sequence; the variants are SNVs in the middle of those sequences.
"""

import argparse
import json
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import yaml

from seq2epi.analysis import scoring, variant_effect
from seq2epi.data import tiling
from seq2epi.data.sequence import Genome
from seq2epi.lab import records
from seq2epi.model.predict import predict_genome
from seq2epi.model.transformer import ModelConfig, NucleicTransformer

SIZES = {"lab": dict(ninp=512, nhead=8, nhid=2048, nlayers=6, kmers=(13,)),
         "reduced": dict(ninp=64, nhead=4, nhid=256, nlayers=2, kmers=(9,))}
COUNTS = {"lab": (4, 16), "reduced": (200, 1000)}  # (sequences, variants) at --scale 1: a minute on one core


def write_inputs(folder: Path, n_seqs: int, n_variants: int, length: int, seed: int) -> tuple[Path, Path]:
    """A FASTA of n_seqs random sequences (GC 0.43) and a sites-only VCF of SNVs in their middle halves."""
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), length, p=[0.285, 0.215, 0.215, 0.285])) for _ in range(n_seqs)]
    fasta = folder / "seqs.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    at = np.sort(rng.choice(n_seqs * (length // 2), n_variants, replace=False))
    rows = []
    for i, pos in zip(at // (length // 2), at % (length // 2) + length // 4, strict=True):
        ref = seqs[i][pos]
        alt = rng.choice([b for b in "ACGT" if b != ref])
        rows.append(f"s{i}\t{pos + 1}\t.\t{ref}\t{alt}\t.\tPASS\t.")
    contigs = "".join(f"##contig=<ID=s{i},length={length}>\n" for i in range(n_seqs))
    vcf = folder / "snvs.vcf"
    vcf.write_text(f"##fileformat=VCFv4.2\n{contigs}#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "\n".join(rows) + "\n")
    return fasta, vcf


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.exists() else []
    return names[0] if names else platform.processor() or "cpu"


def model_record(folder: Path, size: str, args) -> records.Record:
    """A record of a seeded random-weight model of `size`, its spec taking the benchmark's window, stride and
    rc_average: what Record.predictor loads."""
    torch.manual_seed(args.seed)
    model = NucleicTransformer(ModelConfig(**SIZES[size]))
    params = {"experiment": "benchmark", "input": "genome", "mark": "score", "window": args.window,
              "kmers": list(SIZES[size]["kmers"]), "predict_stride": args.stride,
              "rc_average": args.rc_average}
    (folder / records.CHECKPOINT.parent).mkdir(parents=True)
    (folder / "parameters.yaml").write_text(yaml.safe_dump(params))
    spec = records.inference_spec(params, None) | {"thresholds": [0.5]}
    torch.save({"model": model.state_dict(), "model_config": asdict(model.config), "spec": spec},
               folder / records.CHECKPOINT)
    return records.Record.find(folder)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(size: str, args, folder: Path) -> list[dict]:
    n_seqs, n_variants = (max(1, int(n * args.scale)) for n in COUNTS[size])
    fasta, vcf = write_inputs(folder, n_seqs, n_variants, args.length, args.seed)
    predictor = model_record(folder / f"{size}_record", size, args).predictor(args.device, args.batch_size)
    predictor(np.zeros((2, args.window), np.uint8))  # warm-up
    windows = n_seqs * len(tiling.sequence_windows(args.length, args.window, args.stride))
    seconds = {
        "predict (sequences)": timed(lambda: scoring.predict_file(
            predictor, fasta, folder / "scores.tsv", progress=False)),
        "04 predict_genome": timed(lambda: predict_genome(
            predictor, Genome(fasta), args.window, args.stride, progress=False)),
        "score-variants": timed(lambda: variant_effect.score_vcf(
            predictor, vcf, fasta, folder / "variants.tsv", progress=False)),
    }
    rows = []
    for path, s in seconds.items():
        n, unit = (n_variants, "variants") if path == "score-variants" else (n_seqs, "sequences")
        scored = 2 * n_variants if path == "score-variants" else windows
        rows.append({"size": size, "path": path, "items": n, "unit": unit, "windows": scored,
                     "seconds": round(s, 2), "items_per_s": round(n / s, 2),
                     "windows_per_s": round(scored / s, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="reduced,lab")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sequence and variant counts")
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--stride", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rc-average", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory() as folder:
            rows += measure(size, args, Path(folder))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    print(f"| size | path | {'items':>9} | seconds | items/s | windows/s |  ({device}, "
          f"{torch.get_num_threads()} thread(s))")
    for r in rows:
        print(f"| {r['size']} | {r['path']} | {r['items']:,} {r['unit']} | {r['seconds']} | "
              f"{r['items_per_s']} | {r['windows_per_s']} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"device": device, "threads": torch.get_num_threads(),
                                              "args": vars(args), "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
