# ---- predict-region and merge-regions (issue 4: variety maps) ----
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2epi.cli import main
from seq2epi.model import ModelConfig, NucleicTransformer
from seq2epi.predict import predict, predict_genome
from seq2epi.sequence import Genome
from seq2epi.tracks import MatrixStore, read_part

DATA = Path(__file__).parent / "data"


@pytest.fixture
def checkpoint(tmp_path):
    cfg = ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(3,))
    torch.manual_seed(0)
    path = tmp_path / "best.pt"
    torch.save({"model": NucleicTransformer(cfg).state_dict(), "model_config": asdict(cfg)}, path)
    return path


def predict_region(checkpoint, out, *extra):
    return main(["predict-region", "--checkpoint", str(checkpoint), "--fasta", str(DATA / "tiny.fa"),
                 "--window", "10", "--stride", "5", "--batch-size", "1", "--out", str(out), *extra])


def test_predict_region_and_merge(checkpoint, tmp_path, capsys):
    parts = [tmp_path / "a.npz", tmp_path / "b.npz"]
    with pytest.warns(UserWarning, match="skipped"):
        assert predict_region(checkpoint, parts[0], "--region", "chr1:0-30", "--vcf", str(DATA / "tiny.vcf"),
                              "--samples", "s2,s1") == 0
    assert "chr1:0-30: " in capsys.readouterr().out
    part = read_part(parts[0])
    assert part["samples"] == ["reference", "s2", "s1"] and part["scores"].shape == (3, 5)
    with pytest.warns(UserWarning, match="skipped"):
        assert predict_region(checkpoint, parts[1], "--region", "chr1:25-50", "--vcf", str(DATA / "tiny.vcf"),
                              "--samples", "s2,s1", "--het", "n") == 0
    assert main(["merge-regions", *map(str, parts), "--out", str(tmp_path / "m.h5")]) == 0
    genome = Genome(DATA / "tiny.fa")
    model = NucleicTransformer(ModelConfig(ninp=16, nhead=2, nhid=32, nlayers=1, kmers=(3,)))
    model.load_state_dict(torch.load(tmp_path / "best.pt", weights_only=True)["model"])
    track = predict_genome(partial(predict, model, batch_size=1), genome, 10, 5, progress=False)
    with MatrixStore(tmp_path / "m.h5") as store:
        scores, bins = store.read("chr1")
        assert store.samples == ["reference", "s2", "s1"] and not np.isnan(scores).any()
    chr1 = track[track["chrom"] == "chr1"]
    assert bins[["start", "end"]].values.tolist() == chr1[["start", "end"]].values.tolist()
    np.testing.assert_array_equal(scores[0], chr1["score"].to_numpy())  # reference row = the genome track


def test_predict_region_bad_input(checkpoint, tmp_path, capsys):
    assert predict_region(checkpoint, tmp_path / "a.h5", "--region", "chr1:0-30") == 2
    assert "must be an .npz file" in capsys.readouterr().err
    assert predict_region(checkpoint, tmp_path / "a.npz", "--region", "chr1:0-30", "--vcf",
                          str(DATA / "tiny.vcf"), "--samples", "s9") == 2
    assert "has no sample(s) ['s9']; it has s1, s2, s3, s4" in capsys.readouterr().err
    assert predict_region(checkpoint, tmp_path / "a.npz", "--region", "chr1:40-60") == 2
    assert "chr1:40-60 is not inside chr1 (0-50)" in capsys.readouterr().err
    assert not list(tmp_path.glob("a.*"))
