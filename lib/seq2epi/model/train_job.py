"""An experiment's training from its dataset file: in the 02_train notebook's process, or as a torchrun job.

    python -m torch.distributed.run --standalone --nproc_per_node=4 -m seq2epi.model.train_job job.json

runs DistributedDataParallel over 4 processes (one per GPU with NCCL; gloo on CPU); `launch` writes the job
file and starts it, which is what 02_train does when `nproc` > 1.
"""

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch

from seq2epi.data import datasets, genomewide
from seq2epi.model import train
from seq2epi.model.transformer import ModelConfig, NucleicTransformer


def setup(dataset: str | Path, model_config: ModelConfig, config: train.TrainConfig, init_checkpoint: str = ""
          ) -> tuple[NucleicTransformer, datasets.WindowDataset, datasets.WindowDataset]:
    """The model (seeded with config.seed, or `init_checkpoint`'s weights) and the training and validation
    datasets of a dataset file written by 01_data_prep; a genome-wide dataset trains on windows drawn afresh
    every epoch from the genome beside it (genome.npz), not on its fixed training rows (the baselines')."""
    data = datasets.load_dataset(dataset)
    shortest = int(data["lengths"].min())
    if max(model_config.kmers) > shortest:
        raise ValueError(f"kmers {list(model_config.kmers)} reach beyond the shortest sequence "
                         f"({shortest} bp) of {dataset}; use smaller kmers or longer windows")

    def subset(name: str, augment: bool) -> datasets.WindowDataset:
        rows = data["split"] == name
        return datasets.WindowDataset(data["tokens"][rows], data["lengths"][rows], data["labels"][rows],
                                      rc_augment=augment, seed=config.seed)

    n_targets = 1 if data["labels"].ndim == 1 else data["labels"].shape[1]
    torch.manual_seed(config.seed)
    model = NucleicTransformer(replace(model_config, n_targets=n_targets))
    if init_checkpoint:
        train.init_from(model, init_checkpoint)
    if data.get("input") == "genomewide":  # fresh windows from the training blocks every epoch
        genome = genomewide.load_genome(Path(dataset).with_name("genome.npz"))
        drawn = genomewide.GenomeWindows(*genome, "train", data["window"], data["centre_bin"],
                                         data["windows_per_epoch"], rc_augment=config.rc_augment,
                                         seed=config.seed, max_n_fraction=data["max_n_fraction"])
        return model, drawn, subset("val", False)
    return model, subset("train", config.rc_augment), subset("val", False)


def launch(nproc: int, dataset: str | Path, model_config: ModelConfig, config: train.TrainConfig,
           out: str | Path, init_checkpoint: str = "", resume: bool = False, spec: dict | None = None
           ) -> pd.DataFrame:
    """Train under torchrun with `nproc` processes into `out` (checkpoints, each with `spec`); returns the
    per-epoch history."""
    if config.device.startswith("cuda") and nproc > (gpus := torch.cuda.device_count()):
        raise ValueError(f"nproc is {nproc} but {gpus} GPU(s) are visible: one training process per GPU.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    job = out / "train_job.json"
    job.write_text(json.dumps({"dataset": str(Path(dataset).resolve()), "model": asdict(model_config),
                               "train": asdict(replace(config, distributed=True)), "out": str(out.resolve()),
                               "init_checkpoint": init_checkpoint and str(Path(init_checkpoint).resolve()),
                               "resume": resume, "spec": spec}))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "seq2epi.model.train_job", str(job)]
    subprocess.run(command, check=True)
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    return pd.DataFrame(last["history"], columns=train.history_columns(config.loss))


def main(argv: list[str]) -> None:
    job = json.loads(Path(argv[0]).read_text())
    model_config = ModelConfig(**{**job["model"], "kmers": tuple(job["model"]["kmers"])})
    config = train.TrainConfig(**job["train"])
    model, train_ds, val_ds = setup(job["dataset"], model_config, config, job["init_checkpoint"])
    train.fit(model, train_ds, val_ds, config, job["out"], resume=job["resume"], progress=False,
              spec=job.get("spec"))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
