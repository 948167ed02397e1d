"""Genome tracks (chrom, start, end, score) as bedGraph and bigWig; variety × bin matrices in HDF5."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyBigWig

from seq2epi.data import tiling
from seq2epi.lab.io import atomic_path, safe_names


def _clean(track: pd.DataFrame) -> pd.DataFrame:
    missing = {"chrom", "start", "end", "score"} - set(track.columns)
    if missing:
        raise ValueError(f"track has no column(s) {sorted(missing)}; expected chrom, start, end, score.")
    return track.loc[track["score"].notna(), ["chrom", "start", "end", "score"]]


def write_bedgraph(track: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a 4-column bedGraph sorted like `sort -k1,1 -k2,2n`; NaN scores are skipped."""
    path = Path(path)
    df = _clean(track).sort_values(["chrom", "start"], kind="stable")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", header=False, index=False, float_format="%.6g")
    return path


def write_bigwig(track: pd.DataFrame, chrom_sizes: dict[str, int], path: str | os.PathLike) -> Path:
    """Write a bigWig, header in chrom_sizes order; bins must not overlap; NaN scores are skipped."""
    path = Path(path)
    df = _clean(track)
    unknown = sorted(set(df["chrom"]) - set(chrom_sizes))
    if unknown:
        raise ValueError(
            f"track chromosome(s) {unknown} are not in the genome's chromosomes {list(chrom_sizes)}."
        )
    order = {c: i for i, c in enumerate(chrom_sizes)}
    df = df.assign(_o=df["chrom"].map(order)).sort_values(["_o", "start"], kind="stable")
    chroms = df["chrom"].to_numpy()
    starts = df["start"].to_numpy(np.int64)
    ends = df["end"].to_numpy(np.int64)
    sizes = df["chrom"].map(chrom_sizes).to_numpy(np.int64)
    bad = np.flatnonzero((starts < 0) | (ends <= starts) | (ends > sizes))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"track bin {chroms[i]}:{starts[i]}-{ends[i]} is empty or outside the chromosome "
            f"(size {sizes[i]})."
        )
    overlap = np.flatnonzero((chroms[1:] == chroms[:-1]) & (starts[1:] < ends[:-1]))
    if overlap.size:
        i = overlap[0]
        raise ValueError(
            f"track bins {chroms[i]}:{starts[i]}-{ends[i]} and {chroms[i + 1]}:{starts[i + 1]}-"
            f"{ends[i + 1]} overlap; a bigWig needs non-overlapping bins (use stride-wide bins)."
        )
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise FileNotFoundError(f"cannot write bigWig {path}: its folder does not exist or is not writable.")
    with atomic_path(path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        if bw is None:  # pyBigWig returns None (and crashes later) when it cannot create the file
            raise FileNotFoundError(f"cannot write bigWig {path}: pyBigWig could not create it.")
        try:
            bw.addHeader([(c, int(s)) for c, s in chrom_sizes.items()])
            if len(df):
                bw.addEntries(
                    chroms.tolist(),
                    starts.tolist(),
                    ends=ends.tolist(),
                    values=df["score"].to_numpy(np.float64).tolist(),
                )
        finally:
            bw.close()
    return path


def first_region(track: pd.DataFrame, width: int) -> tuple[str, int, int]:
    """The first `width` bp of a track's first chromosome, from its first bin (at most to that chromosome's
    last bin end)."""
    if track.empty:
        raise ValueError("the track is empty (no window was scored), so it has no region to show.")
    chrom, start = track["chrom"].iat[0], int(track["start"].iat[0])
    return chrom, start, int(min(start + width, track.loc[track["chrom"] == chrom, "end"].max()))


def read_bigwig(path: str | os.PathLike, chrom: str, start: int, end: int) -> np.ndarray:
    """Per-base values of chrom:start-end (NaN where the track has no data)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bigWig file {path} does not exist.")
    bw = pyBigWig.open(str(path))
    try:
        sizes = bw.chroms()
        if chrom not in sizes:
            raise ValueError(f"bigWig file {path} has no chromosome {chrom!r}; it has {list(sizes)}.")
        if not 0 <= start < end <= sizes[chrom]:
            raise ValueError(
                f"region {chrom}:{start}-{end} is outside {chrom} (size {sizes[chrom]}) in {path}."
            )
        return np.asarray(bw.values(chrom, start, end, numpy=True), dtype=np.float32)
    finally:
        bw.close()


# ---- variety × bin matrices ----

def _strings(values) -> np.ndarray:
    return np.array([str(v).encode() for v in values], dtype=h5py.string_dtype())


DTYPES = ("float32", "float16")  # float16 rounds a probability in [0, 1] by at most 2**-12 (2.4e-4)
COMPRESSION = {None: {}, "gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
               "lzf": {"compression": "lzf", "shuffle": True}}
CHUNK = (64, 4096)  # samples x bins of one compressed chunk


class MatrixStore:
    """Variety × bin score matrices in HDF5, one per mark and chromosome, written region by region.

    Column j of a chromosome is the window starting at j * stride, drawn on the stride-wide bin centred on it
    (as in predict_genome). Layout: attrs window, stride; datasets samples, marks, chroms, chrom_sizes, done;
    scores/<mark>/<chrom> [n_samples, n_windows] float32 or float16 (`dtype`), in CHUNK chunks compressed
    with `compression` (gzip + shuffle by default: benchmarks/varieties.md measures the choice), NaN until
    written; reads give float32. A region's done flag is written only after its scores are flushed, so a
    killed run resumes where it stopped (`create(..., resume=True)`) and ends with the same matrix.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r"):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"matrix store {self.path} does not exist.")
        self._file = h5py.File(self.path, mode, rdcc_nbytes=2**26)  # chunk cache: a region's chunks
        f = self._file
        self.samples: list[str] = list(f["samples"].asstr()[:])
        self.marks: list[str] = list(f["marks"].asstr()[:])
        self.chrom_sizes: dict[str, int] = dict(zip(f["chroms"].asstr()[:], f["chrom_sizes"][:].tolist(),
                                                    strict=True))
        self.window, self.stride = int(f.attrs["window"]), int(f.attrs["stride"])

    @classmethod
    def create(cls, path: str | os.PathLike, samples: list[str], chrom_sizes: dict[str, int], window: int,
               stride: int, marks: list[str] = ("score",), resume: bool = False, dtype: str = "float32",
               compression: str | None = "gzip") -> MatrixStore:
        """A new store (written atomically); with resume=True the existing one when its layout matches.

        dtype "float16" halves the scores (error at most 2**-12 for probabilities); compression "gzip",
        "lzf" or None.
        """
        path = Path(path)
        if dtype not in DTYPES or compression not in COMPRESSION:
            raise ValueError(f"matrix store {path}: dtype must be one of {DTYPES} and compression one of "
                             f"{list(COMPRESSION)}, got {dtype!r} and {compression!r}.")
        if resume and path.exists():
            store = cls(path, "r+")
            same = (store.samples, store.marks, store.chrom_sizes, store.window, store.stride) == (
                list(samples), list(marks), dict(chrom_sizes), window, stride)
            if not same:
                store.close()
                raise ValueError(f"matrix store {path} holds other samples, marks, chromosomes, window or "
                                 f"stride; remove it or write elsewhere.")
            return store
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["window"], f.attrs["stride"] = window, stride
            f["samples"], f["marks"], f["chroms"] = _strings(samples), _strings(marks), _strings(chrom_sizes)
            f["chrom_sizes"] = np.array(list(chrom_sizes.values()), np.int64)
            f.create_dataset("done", (0,), h5py.string_dtype(), maxshape=(None,), chunks=(1024,))
            for mark in marks:
                for chrom, size in chrom_sizes.items():
                    n = tiling.n_windows(size, window, stride)
                    chunks = (min(len(samples), CHUNK[0]), min(n, CHUNK[1])) if n else None
                    f.create_dataset(f"scores/{mark}/{chrom}", (len(samples), n), dtype, chunks=chunks,
                                     fillvalue=np.nan, **(COMPRESSION[compression] if n else {}))
        return cls(path, "r+")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MatrixStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def done(self, chrom: str, start: int, end: int) -> bool:
        """Whether region chrom:start-end has been written completely."""
        return f"{chrom}:{start}-{end}" in set(self._file["done"].asstr()[:])

    def _size(self, chrom: str) -> int:
        if chrom not in self.chrom_sizes:
            raise ValueError(f"chromosome {chrom!r} is not in matrix store {self.path} "
                             f"({list(self.chrom_sizes)}).")
        return self.chrom_sizes[chrom]

    def _columns(self, chrom: str, start: int, end: int) -> tuple[int, int]:
        """First column and number of windows of a region (windows starting at start, fitting before end)."""
        size = self._size(chrom)
        if start % self.stride or start < 0:
            raise ValueError(f"region {chrom}:{start}-{end} does not start on a window of matrix store "
                             f"{self.path} (a multiple of its stride {self.stride}).")
        return start // self.stride, tiling.n_windows(min(end, size) - start, self.window, self.stride)

    def write_region(self, chrom: str, start: int, end: int, scores: np.ndarray) -> None:
        """Write scores [n_samples, n_windows] (or [..., n_marks]) of a region, then mark it done."""
        first, n = self._columns(chrom, start, end)
        scores = np.asarray(scores, np.float32)
        scores = scores[..., None] if scores.ndim == 2 else scores
        if scores.shape != (len(self.samples), n, len(self.marks)):
            expected = (len(self.samples), n, len(self.marks))
            raise ValueError(f"scores of region {chrom}:{start}-{end} have shape {scores.shape}; matrix "
                             f"store {self.path} expects {expected} (samples, windows, marks).")
        for k, mark in enumerate(self.marks):
            self._file[f"scores/{mark}/{chrom}"][:, first : first + n] = scores[..., k]
        self._file.flush()
        done = self._file["done"]
        done.resize((len(done) + 1,))
        done[-1] = f"{chrom}:{start}-{end}"
        self._file.flush()

    def bins(self, chrom: str) -> pd.DataFrame:
        """The bins chrom,start,end of a chromosome's columns."""
        size = self._size(chrom)
        starts = tiling.window_starts(0, size, self.window, self.stride)
        return tiling.centred_bins(chrom, starts, self.window, self.stride, size)

    def read(self, chrom: str, start: int = 0, end: int | None = None,
             mark: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
        """Scores [n_samples, n_bins] and bins chrom,start,end of the bins overlapping chrom:[start, end)."""
        bins = self.bins(chrom)
        end = self.chrom_sizes[chrom] if end is None else end
        cols = np.flatnonzero((bins["start"].to_numpy() < end) & (bins["end"].to_numpy() > start))
        first, last = (cols[0], cols[-1] + 1) if cols.size else (0, 0)
        scores = self._file[f"scores/{mark or self.marks[0]}/{chrom}"][:, first:last].astype(np.float32)
        return scores, bins.iloc[cols].reset_index(drop=True)

    def read_genome(self, chroms: list[str] | None = None,
                    mark: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
        """Scores [n_samples, n_bins] and bins of whole chromosomes (default all), in the store's order."""
        chroms = [c for c in self.chrom_sizes if chroms is None or c in set(chroms)]
        parts = [self.read(c, mark=mark) for c in chroms]
        return np.hstack([s for s, _ in parts]), pd.concat([b for _, b in parts], ignore_index=True)

    def track(self, sample: str, mark: str | None = None) -> pd.DataFrame:
        """One sample's track chrom,start,end,score over every chromosome (bins not yet written: NaN)."""
        if sample not in self.samples:
            raise ValueError(f"sample {sample!r} is not in matrix store {self.path} ({self.samples[:20]}).")
        row = self.samples.index(sample)
        mark = mark or self.marks[0]
        parts = [self.bins(c).assign(score=self._file[f"scores/{mark}/{c}"][row].astype(np.float32))
                 for c in self.chrom_sizes]
        return pd.concat(parts, ignore_index=True)

    def export_bigwig(self, sample: str, path: str | os.PathLike, mark: str | None = None) -> Path:
        """A sample's track as bigWig (NaN bins left out)."""
        return write_bigwig(self.track(sample, mark), self.chrom_sizes, path)

    def export_bedgraph(self, sample: str, path: str | os.PathLike, mark: str | None = None) -> Path:
        """A sample's track as bedGraph, for small cases (NaN bins left out)."""
        return write_bedgraph(self.track(sample, mark), path)

    def export_bigwigs(self, samples: list[str], folder: str | os.PathLike, mark: str | None = None
                       ) -> dict[str, Path]:
        """Each sample's track as a bigWig inside `folder`, named by safe_names (a VCF sample name such as
        `../x` cannot write elsewhere); {sample: its file}."""
        names = safe_names(samples)
        return {s: self.export_bigwig(s, Path(folder) / f"{names[s]}.bw", mark) for s in samples}


# ---- region parts (one job's output) and their merge ----

def write_part(path: str | os.PathLike, region: tuple[str, int, int], scores: np.ndarray, samples: list[str],
               marks: list[str], chrom_sizes: dict[str, int], window: int, stride: int) -> Path:
    """Save one region's scores [n_samples, n_windows(, n_marks)] and the store layout as an atomic .npz."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, scores=np.asarray(scores, np.float32), region=np.array([str(v) for v in region]),
                 samples=np.array(samples), marks=np.array(marks), chroms=np.array(list(chrom_sizes)),
                 chrom_sizes=np.array(list(chrom_sizes.values()), np.int64), window=window, stride=stride)
    return path


def read_part(path: str | os.PathLike) -> dict:
    """A part from write_part: scores, region, samples, marks, chrom_sizes, window, stride."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"region part {path} does not exist.")
    with np.load(path) as z:
        chrom, start, end = z["region"].tolist()
        sizes = dict(zip(z["chroms"].tolist(), z["chrom_sizes"].tolist(), strict=True))
        return {"scores": z["scores"], "region": (chrom, int(start), int(end)),
                "samples": z["samples"].tolist(), "marks": z["marks"].tolist(), "chrom_sizes": sizes,
                "window": int(z["window"]), "stride": int(z["stride"])}


def merge_parts(parts: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Build one MatrixStore from region parts that share samples, marks, chromosomes, window and stride."""
    out = Path(out)
    if not parts:
        raise ValueError(f"no region parts given to merge into {out}.")
    layout = ("samples", "marks", "chrom_sizes", "window", "stride")
    first = read_part(parts[0])
    with atomic_path(out) as tmp, MatrixStore.create(tmp, **{k: first[k] for k in layout}) as store:
        for path in parts:
            part = read_part(path)
            differs = [k for k in layout if part[k] != first[k]]
            if differs:
                raise ValueError(f"region part {path} differs from {parts[0]} in {', '.join(differs)}; "
                                 f"expected parts of one map run.")
            store.write_region(*part["region"], part["scores"])
    return out
