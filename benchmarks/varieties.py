"""Scale case: cost of the variety map for 1 to 3,000 simulated varieties on one region, with distinct windows
found by bytes (every window built and hashed) and by allele pattern, side by side.

    python benchmarks/varieties.py                      # the table in benchmarks/varieties.md
    python benchmarks/varieties.py --genome rice --length 500000 --sizes 1 10 100 --ninp 128

For each number of varieties n, a population is simulated with msprime over real sequence (haploid inbred
varieties, SNP diversity 0.003, 10% indels, recombination 1e-10 per bp) and written as a bgzipped VCF with a
tabix index into a temp dir. Then, for each dedup path, a fresh process maps the reference and the n
varieties into a MatrixStore region by region (seq2epi.analysis.maps.map_varieties) with a seeded, untrained
model, so its peak RSS is its own. The allele path runs the model (inference: time in
seq2epi.model.predict.predict); the byte path makes the same predictor calls (checked: a digest of every
call's tokens must match) and so the same matrix, so it skips the model (as does the allele path at sizes
left out of --infer-sizes). Reading is Variants.load, storing MatrixStore.write_region; the rest
(variety sequences, windows, patterns, hashing, scattering the scores) is build + hash. Last, the allele
path's matrix is rewritten with each store option (dtype x compression) to measure size and error.
"""

import argparse
import gzip
import hashlib
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from seq2epi.analysis import maps
from seq2epi.analysis.tracks import COMPRESSION, DTYPES, MatrixStore
from seq2epi.data import variants
from seq2epi.data.sequence import Genome
from seq2epi.data.simulate import simulate_population
from seq2epi.data.tiling import map_regions
from seq2epi.model.predict import predict
from seq2epi.model.train import set_threads
from seq2epi.model.transformer import ModelConfig, NucleicTransformer

RICE_BP, RICE_VARIETIES = 373_245_519, 3000  # IRGSP-1.0 assembly; the 3K Rice Genomes project
GENOMES = {  # name: (FASTA under the data dir, chromosome, default start)
    "arabidopsis": ("arabidopsis_tair10_chr1/chr1.fa.gz", "NC_003070.9", 5_000_000),
    "rice": ("rice_irgsp1_subset/genome.fa", "chr01", 0),
}


def timed(fn, clock: list[float]):
    """fn, adding the seconds of each call to clock[0]."""
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[0] += time.perf_counter() - t0
    return wrapper


def plain_copy(fasta: Path, folder: Path) -> Path:
    """An uncompressed copy of a bgzipped FASTA (else fasta itself), so that timings hold no BGZF decoding
    (the measured run also needed it to avoid a pyfaidx bug, now worked around in Genome)."""
    if fasta.suffix != ".gz":
        return fasta
    out = folder / fasta.stem
    with gzip.open(fasta, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def measure(vcf: Path, fasta: Path, region: tuple[str, int, int], dedup: str, infer: bool, args) -> dict:
    """Map the reference and every variety of `vcf` over `region`, in this (fresh) process."""
    set_threads()
    torch.manual_seed(args.seed)
    model = NucleicTransformer(ModelConfig(ninp=args.ninp, nhead=args.nhead, nhid=args.nhid,
                                           nlayers=args.nlayers, kmers=(args.kmer,)))
    clocks = {k: [0.0] for k in ("inference", "digest", "read", "store")}
    digest = hashlib.sha1()
    model_call = timed(partial(predict, model, batch_size=args.batch_size, device=args.device),
                       clocks["inference"])

    def note(tokens, lengths):
        digest.update(np.ascontiguousarray(tokens).tobytes())
        digest.update(np.asarray(lengths, np.int64).tobytes())

    def predictor(tokens, lengths):
        timed(note, clocks["digest"])(tokens, lengths)
        return model_call(tokens, lengths) if infer else np.zeros(len(tokens), np.float32)

    variants.Variants.load = classmethod(timed(variants.Variants.load.__func__, clocks["read"]))
    MatrixStore.write_region = timed(MatrixStore.write_region, clocks["store"])
    genome = Genome(fasta)
    chrom, start, end = region
    regions = map_regions({chrom: end - start}, args.window, args.stride, args.region_size)
    regions[["start", "end"]] += start
    samples = [variants.REFERENCE] + variants.read_samples(vcf)
    out = vcf.with_name(f"{vcf.name}.{dedup}.h5")
    store = MatrixStore.create(out, samples, {chrom: genome.chrom_sizes[chrom]}, args.window, args.stride)
    t0, cpu0 = time.perf_counter(), time.process_time()
    with store:
        stats = maps.map_varieties(predictor, genome, store, regions, vcf, progress=False, dedup=dedup)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    took = {k: v[0] for k, v in clocks.items()}
    return {"total": stats["total"], "distinct": stats["distinct"], **took, "wall": wall, "cpu": cpu,
            "peak_mb": peak_mb, "build": wall - sum(took.values()), "digest_hex": digest.hexdigest(),
            "store_path": str(out)}


def store_options(path: str, region_size: int) -> list[dict]:
    """The matrix in `path` rewritten region by region with each dtype and compression: size and error."""
    with MatrixStore(path) as src:
        done = [r.rsplit(":", 1) for r in src._file["done"].asstr()[:]]  # chrom:start-end of each region
        chrom = done[0][0]
        spans = np.array([span.split("-") for _, span in done], np.int64)
        matrix, _ = src.read(chrom, int(spans[:, 0].min()), int(spans[:, 1].max()))
        window, stride = src.window, src.stride
        written = np.flatnonzero(~np.isnan(matrix).all(0))
        matrix = matrix[:, written[0] : written[-1] + 1]  # a chromosome of the mapped region only
        layout = dict(samples=src.samples, chrom_sizes={chrom: (matrix.shape[1] - 1) * stride + window},
                      window=window, stride=stride)
    first, last, per = 0, matrix.shape[1], region_size // stride
    rows = []
    for dtype in DTYPES:
        for compression in COMPRESSION:
            out = Path(f"{path}.{dtype}.{compression}.h5")
            t0 = time.perf_counter()
            with MatrixStore.create(out, dtype=dtype, compression=compression, **layout) as store:
                for j in range(first, last, per):
                    n = min(per, last - j)
                    store.write_region(chrom, j * stride, (j + n - 1) * stride + window, matrix[:, j : j + n])
            write = time.perf_counter() - t0
            t0 = time.perf_counter()
            with MatrixStore(out) as store:
                back, _ = store.read(chrom)
            read = time.perf_counter() - t0
            values = matrix.size
            err = np.nanmax(np.abs(back - matrix))
            rows.append({"dtype": dtype, "compression": compression, "bytes": out.stat().st_size,
                         "bytes_per_value": out.stat().st_size / values, "write": write, "read": read,
                         "max_error": float(err)})
    return rows


def run(args) -> tuple[list[dict], list[dict]]:
    """One simulated VCF per number of varieties, and one fresh measuring process per dedup path."""
    path, chrom, default_start = GENOMES[args.genome]
    start = default_start if args.start is None else args.start
    region = (chrom, start, start + args.length)
    rows, stores = [], []
    with tempfile.TemporaryDirectory() as tmp:
        fasta = plain_copy(Path(args.data) / path, Path(tmp))
        for n in args.sizes:
            vcf = Path(tmp) / f"n{n}.vcf.gz"
            t0 = time.perf_counter()
            simulate_population(fasta, *region, n, vcf, diversity=0.003, indel_fraction=0.1, seed=args.seed,
                                recombination_rate=1e-10)
            simulated = time.perf_counter() - t0
            t0 = time.perf_counter()
            variants.index_vcf(vcf)
            row = {"n": n, "simulate": simulated, "index": time.perf_counter() - t0}
            for dedup in ("bytes", "alleles"):
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    infer = dedup == "alleles" and (args.infer_sizes is None or n in args.infer_sizes)
                    row[dedup] = pool.submit(measure, vcf, fasta, region, dedup, infer, args).result()
            row["same_calls"] = row["bytes"]["digest_hex"] == row["alleles"]["digest_hex"]
            rows.append(row)
            print(f"n={n}: simulated in {simulated:.1f} s; build + hash {row['bytes']['build']:.1f} s "
                  f"(bytes) vs {row['alleles']['build']:.1f} s (alleles); same predictor calls: "
                  f"{row['same_calls']} "
                  f"(1-min load average {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cores)",
                  flush=True)
            print(json.dumps(row), flush=True)
        inferred = [r for r in rows if r["alleles"]["inference"]]
        stores = store_options(inferred[-1]["alleles"]["store_path"], args.region_size) if inferred else []
    return rows, stores


def table(rows: list[dict]) -> str:
    """Markdown, one row per number of varieties: the byte path (old) beside the allele path (new)."""
    head = ("| varieties | windows (total) | distinct | read VCF s | build + hash s, bytes | build + hash s, "
            "alleles | × faster | store s | inference s | all but inference / inference | peak RSS MB, bytes "
            "| peak RSS MB, alleles | same calls |")
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in rows:
        old, new = r["bytes"], r["alleles"]
        rest = new["wall"] - new["inference"] - new["digest"]
        if not new["inference"]:  # the model was not run at this size
            new = new | {"inference": float("nan")}
        lines.append(f"| {r['n']:,} | {new['total']:,} | {new['distinct']:,} | {new['read']:.1f} "
                     f"| {old['build']:.1f} | {new['build']:.1f} | {old['build'] / new['build']:.1f} "
                     f"| {new['store']:.1f} | {new['inference']:.1f} | {rest / new['inference']:.3f} "
                     f"| {old['peak_mb']:,.0f} | {new['peak_mb']:,.0f} "
                     f"| {'yes' if r['same_calls'] else 'NO'} |")
    return "\n".join(lines)


def store_table(stores: list[dict], row: dict, stride: int, marks: int = 3) -> str:
    """Markdown: each store option's measured size and error, and all of rice at that size."""
    values = RICE_BP // stride * (RICE_VARIETIES + 1) * marks
    lines = ["| dtype | compression | bytes/value | write s | read s | max abs error | rice × 3,001 rows × "
             f"{marks} marks |", "|---|---|---:|---:|---:|---:|---:|"]
    for s in stores:
        lines.append(f"| {s['dtype']} | {s['compression']} | {s['bytes_per_value']:.3f} | {s['write']:.1f} "
                     f"| {s['read']:.1f} | {s['max_error']:.2g} "
                     f"| {values * s['bytes_per_value'] / 1e9:,.0f} GB |")
    return "\n".join(lines)


def extrapolate(row: dict, length: int, stride: int, cores: int = 2) -> str:
    """The whole rice genome, reference + 3,000 varieties, one mark, at the measured rates of `row`."""
    new = row["alleles"]
    total = RICE_BP // stride * (RICE_VARIETIES + 1)
    ratio = new["distinct"] / new["total"]
    scale = RICE_BP / length / 3600
    build, read = new["build"] * scale, new["read"] * scale
    inference = total * ratio * new["inference"] / new["distinct"] / 3600
    return (f"Rice {RICE_BP:,} bp, {RICE_VARIETIES + 1:,} rows: {total:,} windows, ~{total * ratio:,.0f} "
            f"distinct at distinct/total {ratio:.5f} (n={row['n']:,}). Allele path, per bp as measured: read "
            f"VCF {read:,.2f} h + build + hash {build:,.2f} h of CPU = {(read + build) / cores:,.2f} h on "
            f"{cores} cores (regions split between them); byte path build + hash "
            f"{row['bytes']['build'] * scale:,.1f} h of CPU; inference on this CPU {inference:,.1f} h.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("SEQ2EPI_DATA", "../shared/data"))
    p.add_argument("--genome", choices=list(GENOMES), default="arabidopsis")
    p.add_argument("--start", type=int, help="region start (default: 5,000,000 arabidopsis, 0 rice)")
    p.add_argument("--length", type=int, default=1_000_000, help="region length (bp)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000, 3000], help="varieties")
    p.add_argument("--infer-sizes", type=int, nargs="+", help="sizes to run the model at (default: all)")
    p.add_argument("--region-size", type=int, default=100_000, help="window starts per map region (bp)")
    p.add_argument("--window", type=int, default=200)
    p.add_argument("--stride", type=int, default=50)
    p.add_argument("--ninp", type=int, default=64)
    p.add_argument("--nhead", type=int, default=4)
    p.add_argument("--nhid", type=int, default=128)
    p.add_argument("--nlayers", type=int, default=2)
    p.add_argument("--kmer", type=int, default=9)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows, stores = run(args)
    cores = len(os.sched_getaffinity(0))
    print(f"\n{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}, "
          f"device {args.device}, {args.genome} {GENOMES[args.genome][1]} {args.length:,} bp\n")
    print(table(rows))
    print("\nStore options, on the matrix of the largest size the model ran at:\n")
    print(store_table(stores, rows[-1], args.stride))
    print(f"\n{extrapolate(rows[-1], args.length, args.stride)}")
    print("\n" + json.dumps(rows + stores))


if __name__ == "__main__":
    main()
