import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_record

from seq2epi.analysis.maps import map_varieties
from seq2epi.analysis.tracks import MatrixStore
from seq2epi.data.sequence import Genome
from seq2epi.data.simulate import simulate_demo
from seq2epi.data.tiling import map_regions
from seq2epi.data.variants import REFERENCE, read_samples
from seq2epi.lab import records
from seq2epi.model.predict import predict
from seq2epi.model.train import load_checkpoint

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
pytest.importorskip("snakemake")


def test_snakefile_merges_the_single_process_matrix(tmp_path):
    simulate_demo(tmp_path / "demo", n_chroms=2, chrom_len=20000, n_varieties=3)
    fasta, vcf = tmp_path / "demo" / "genome.fa", tmp_path / "demo" / "variants.vcf"
    record = make_record(tmp_path / "2026-01-01_toy", marks=["score"], thresholds=(0.5,), window=200,
                         stride=100)  # the window and the stride come from the record: none in the config
    config = dict(record=str(record), fasta=str(fasta), vcf=str(vcf), region_size=10000, batch_size=64,
                  device="cpu", out_dir=str(tmp_path / "map"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"),
                          "--configfile", str(tmp_path / "config.yaml"), "--directory", str(tmp_path),
                          "--cores", "2", "--quiet"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr

    genome = Genome(fasta)
    regions = map_regions(genome.chrom_sizes, 200, 100, 10000)
    assert len(list((tmp_path / "map" / "parts").rglob("*.npz"))) == len(regions) == 4
    model, _ = load_checkpoint(record / records.CHECKPOINT)
    rows = [REFERENCE, *read_samples(vcf)]
    with MatrixStore.create(tmp_path / "single.h5", rows, genome.chrom_sizes, 200, 100) as single:
        map_varieties(partial(predict, model, batch_size=64), genome, single, regions, vcf, progress=False)
        with MatrixStore(tmp_path / "map" / "matrix.h5") as merged:
            assert merged.samples == rows == [REFERENCE, "V1", "V2", "V3"]
            for chrom in genome.chrom_sizes:
                expected = single.read(chrom)[0]
                assert not np.isnan(expected).all()
                np.testing.assert_array_equal(merged.read(chrom)[0], expected)
