"""Scale case: cost of the de-duplicated variety map for 1 to 3,000 simulated varieties on one region.

    python benchmarks/varieties.py                      # the table in benchmarks/varieties.md
    python benchmarks/varieties.py --genome rice --sizes 1 10 100 --ninp 128

For each number of varieties n, a population is simulated with msprime over real sequence (haploid inbred
varieties, SNP diversity 0.003, 10% indels, recombination 1e-10 per bp) and written as a VCF into a temp dir;
then a fresh process maps the reference and the n varieties into a MatrixStore region by region
(seq2epi.maps.map_varieties) with a seeded, untrained model, so its peak RSS is its own. Inference is
the time spent in seq2epi.predict.predict; the rest (VCF parsing, variety sequences, window slicing,
hashing of distinct windows, store writes) is window building.
"""

import argparse
import gzip
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

import torch

from seq2epi import maps, variants
from seq2epi.model import ModelConfig, NucleicTransformer
from seq2epi.predict import predict
from seq2epi.sequence import Genome
from seq2epi.simulate import simulate_population
from seq2epi.tiling import map_regions
from seq2epi.tracks import MatrixStore
from seq2epi.train import set_threads

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


def measure(vcf: Path, fasta: Path, region: tuple[str, int, int], args) -> dict:
    """Map the reference and every variety of `vcf` over `region`, in this (fresh) process."""
    set_threads()
    torch.manual_seed(args.seed)
    model = NucleicTransformer(ModelConfig(ninp=args.ninp, nhead=args.nhead, nhid=args.nhid,
                                           nlayers=args.nlayers, kmers=(args.kmer,)))
    inference = [0.0]
    predictor = timed(partial(predict, model, batch_size=args.batch_size, device=args.device), inference)
    genome = Genome(fasta)
    chrom, start, end = region
    regions = map_regions({chrom: end - start}, args.window, args.stride, args.region_size)
    regions[["start", "end"]] += start
    samples = [variants.REFERENCE] + variants.read_samples(vcf)
    store = MatrixStore.create(vcf.with_suffix(".h5"), samples, {chrom: genome.chrom_sizes[chrom]},
                               args.window, args.stride)
    t0 = time.perf_counter()
    with store:
        stats = maps.map_varieties(predictor, genome, store, regions, vcf, progress=False)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"total": stats["total"], "distinct": stats["distinct"], "inference": inference[0],
            "build": wall - inference[0], "wall": wall, "peak_mb": peak_mb}


def run(args) -> list[dict]:
    """One simulated VCF and one fresh measuring process per number of varieties."""
    path, chrom, default_start = GENOMES[args.genome]
    start = default_start if args.start is None else args.start
    region = (chrom, start, start + args.length)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fasta = plain_copy(Path(args.data) / path, Path(tmp))
        for n in args.sizes:
            vcf = Path(tmp) / f"n{n}.vcf"
            t0 = time.perf_counter()
            simulate_population(fasta, *region, n, vcf, diversity=0.003, indel_fraction=0.1, seed=args.seed,
                                recombination_rate=1e-10)
            simulated = time.perf_counter() - t0
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                row = pool.submit(measure, vcf, fasta, region, args).result()
            rows.append({"n": n, "simulate": simulated, **row})
            print(f"n={n}: simulated in {simulated:.1f} s, mapped in {row['wall']:.1f} s "
                  f"(1-min load average {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cores)",
                  flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown, one row per number of varieties; time ratios are to the first row (n=1)."""
    head = ("| varieties | windows (total) | distinct | distinct/total | build + hash s | inference s "
            "| total s | × n=1 | model windows/s | peak RSS MB |")
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['total']:,} | {r['distinct']:,} | {r['distinct'] / r['total']:.4f} "
                     f"| {r['build']:.1f} | {r['inference']:.1f} | {r['wall']:.1f} "
                     f"| {r['wall'] / rows[0]['wall']:.2f} | {r['distinct'] / r['inference']:,.0f} "
                     f"| {r['peak_mb']:,.0f} |")
    return "\n".join(lines)


def extrapolate(row: dict, stride: int) -> str:
    """The whole rice genome, reference + 3,000 varieties, one mark, at the measured rates of `row`."""
    total = RICE_BP // stride * (RICE_VARIETIES + 1)
    ratio = row["distinct"] / row["total"]
    build = total * row["build"] / row["total"] / 3600
    inference = total * ratio * row["inference"] / row["distinct"] / 3600
    return (f"Rice {RICE_BP:,} bp, {RICE_VARIETIES + 1:,} rows: {total:,} windows, ~{total * ratio:,.0f} "
            f"distinct at distinct/total {ratio:.5f} (n={row['n']:,}). This machine: build + hash "
            f"{build:,.1f} h + inference {inference:,.1f} h = {build + inference:,.1f} h. GPU (pending): "
            f"build + hash {build:,.1f} h + {total * ratio:,.0f} / (GPU windows/s) s.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("SEQ2EPI_DATA", "../shared/data"))
    p.add_argument("--genome", choices=list(GENOMES), default="arabidopsis")
    p.add_argument("--start", type=int, help="region start (default: 5,000,000 arabidopsis, 0 rice)")
    p.add_argument("--length", type=int, default=1_000_000, help="region length (bp)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000, 3000], help="varieties")
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
    rows = run(args)
    cores = len(os.sched_getaffinity(0))
    print(f"\n{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}, "
          f"device {args.device}, {args.genome} {GENOMES[args.genome][1]} {args.length:,} bp\n")
    print(table(rows))
    print(f"\n{extrapolate(rows[-1], args.stride)}")


if __name__ == "__main__":
    main()
