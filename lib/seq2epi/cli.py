"""The `seq2epi` command: run | compare | list | index | rerender | predict-region | merge-regions | predict |
score-variants."""

import argparse
import signal
import sys
import warnings
from pathlib import Path

from seq2epi import experiments
from seq2epi.lab import parameters, progress, records


def _run(args) -> None:
    root = parameters.project_root()
    overrides = dict(parameters.parse_override(o) for o in args.param)
    stages = args.stages.split(",") if args.stages else parameters.STAGES
    stages = [found for s in stages for found in ([s] if s in parameters.STAGES else _stages_by_prefix(s))]
    record = experiments.run_experiment(args.experiment, root, stages, overrides, progress=not args.quiet)
    print(f"record: {record}")


def _stages_by_prefix(prefix: str) -> list[str]:
    """Let `--stages 01,02` name stages by their number (03: both evaluations; the idle one is skipped)."""
    found = [s for s in parameters.STAGES if s.startswith(prefix)]
    if not found:
        raise ValueError(f"unknown stage {prefix!r}; the stages are {', '.join(parameters.STAGES)}")
    return found


def _compare(args) -> None:
    root = parameters.project_root()
    record = experiments.run_compare(args.records, args.by, root, args.at_epoch, progress=not args.quiet,
                                     ensemble=args.ensemble)
    print(f"record: {record}")


def _list(args) -> None:
    root = parameters.project_root()
    names = sorted(p.stem for p in (root / "parameters").glob("*.yaml") if p.stem != "base")
    print("experiments:", " ".join(names))
    print((records.write_index(root / "executed")).read_text())


def _index(args) -> None:
    print(f"index: {records.write_index(parameters.project_root() / 'executed')}")


def _record_bytes(record: Path) -> int:
    """What git keeps of a record: its files but artifacts/."""
    return sum(p.stat().st_size for p in record.rglob("*")
               if p.is_file() and "artifacts" not in p.relative_to(record).parts)


def _rerender(args) -> None:
    executed = parameters.project_root() / "executed"
    folders = [records.Record.find(name, executed).path for name in args.records] or \
        sorted(p for p in executed.iterdir() if (p / "parameters.yaml").exists())
    for record in folders:
        before = _record_bytes(record)
        experiments.rerender(record)
        print(f"{record.name}: {before / 1e6:.2f} MB -> {_record_bytes(record) / 1e6:.2f} MB")


def _stop(signum, frame) -> None:
    """SIGTERM ends a run as Ctrl-C does: the record is marked interrupted."""
    raise KeyboardInterrupt


def _names(text: str | None) -> list[str] | None:
    """Comma-separated names, or a file with one name per line."""
    if text is None:
        return None
    if Path(text).is_file():
        return [line.strip() for line in Path(text).read_text().splitlines() if line.strip()]
    return [name for name in text.split(",") if name]


def _chrom_alias(text: str | None) -> dict[str, str]:
    """--chrom-alias 1=chr01,2=chr02 (or a file with one pair per line) as {VCF name: FASTA name}."""
    from seq2epi.data.variants import parse_chrom_alias

    return parse_chrom_alias(_names(text))


def _predict_region(args) -> None:
    # imported here so that `seq2epi run | compare | list` start without torch
    from seq2epi.analysis.maps import region_scores
    from seq2epi.analysis.tracks import write_part
    from seq2epi.data.intervals import parse_region
    from seq2epi.data.sequence import Genome

    if Path(args.out).suffix != ".npz":
        raise ValueError(f"--out {args.out} must be an .npz file (one region part).")
    record = records.Record.find(args.record)
    predictor = record.predictor(_device(args.device), args.batch_size, args.window)
    stride = args.stride or predictor.stride
    alias = _chrom_alias(args.chrom_alias)
    genome = Genome(args.fasta)
    region = parse_region(args.region)
    scores, rows, stats = region_scores(predictor, genome, region, predictor.window, stride, args.vcf,
                                        _names(args.samples), len(predictor.marks), het=args.het,
                                        missing=args.missing, chrom_alias=alias)
    write_part(args.out, region, scores, rows, predictor.marks, genome.chrom_sizes, predictor.window, stride)
    print(f"{args.region}: {stats['distinct']} distinct of {stats['total']} windows predicted -> {args.out}")


def _merge_regions(args) -> None:
    from seq2epi.analysis.tracks import merge_parts

    print(f"matrix: {merge_parts(args.parts, args.out)}")


def _device(name: str) -> str:
    from seq2epi.model.precision import resolve_device

    return resolve_device(name)


def _predict(args) -> None:
    from seq2epi.analysis import scoring

    predictor = records.Record.find(args.record).predictor(_device(args.device), args.batch_size)
    result = scoring.predict_file(predictor, args.input, args.out, args.fasta, args.per_window,
                                  progress=not args.quiet)
    calibrated = ", calibrated" if predictor.temperature is not None else ""
    print(f"{scoring.predict_summary(result)} with {predictor.record} ({', '.join(predictor.marks)}"
          f"{calibrated}) -> {args.out}")
    if "no_metrics" in result:
        print(result["no_metrics"])
    for mark, m in result.get("metrics", {}).items():
        (a0, a1), (m0, m1) = m["ci95"]["auroc"], m["ci95"]["mcc"]
        print(f"{mark}: AUROC {m['auroc']:.3f} [{a0:.3f}, {a1:.3f}], MCC {m['mcc']:.3f} [{m0:.3f}, {m1:.3f}] "
              f"at the record's threshold {m['threshold']:.3f} (n = {m['n']}, 95 % bootstrap intervals)")


def _score_variants(args) -> None:
    from seq2epi.analysis import variant_effect
    from seq2epi.data.intervals import parse_region

    predictor = records.Record.find(args.record).predictor(_device(args.device), args.batch_size)
    alias = _chrom_alias(args.chrom_alias)
    region = parse_region(args.region) if args.region else None
    counts = variant_effect.score_vcf(predictor, args.vcf, args.fasta, args.out, region, args.tiled,
                                      args.out_vcf, alias, progress=not args.quiet)
    skipped = {k: v for k, v in counts.items() if k not in ("records", "variants", "scored", "repeats")}
    print(f"{counts['records']} records, {counts['variants']} distinct variants: {counts.get('scored', 0)} "
          f"scored, {sum(skipped.values())} skipped {skipped or ''} -> {args.out}"
          + (f", {args.out_vcf}" if args.out_vcf else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seq2epi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute an experiment's notebooks into executed/<date>_<experiment>/")
    run.add_argument("experiment", help="a parameter file in parameters/, without .yaml")
    run.add_argument("--stages", help="comma-separated subset, e.g. 01,02 or 03_evaluate")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="override one parameter (value read as YAML); repeatable")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    compare = sub.add_parser("compare", help="compare records of experiments across one varied parameter")
    compare.add_argument("records", nargs="+", help="experiment ids (newest record) or record folder names")
    compare.add_argument("--by", required=True, help="the parameter that varies, e.g. kmers")
    compare.add_argument("--at-epoch", type=int, default=0, help="epoch for the table (0: each run's best)")
    compare.add_argument("--ensemble", action="store_true",
                         help="also score the mean of the records' predictions (records of one split)")
    compare.add_argument("-q", "--quiet", action="store_true")
    compare.set_defaults(func=_compare)

    listing = sub.add_parser("list", help="list experiments and records")
    listing.set_defaults(func=_list)

    index = sub.add_parser("index", help="rebuild executed/INDEX.md from the records")
    index.set_defaults(func=_index)

    rerender = sub.add_parser("rerender", help="render records' notebooks again as light HTML with linked "
                              "figures, running nothing")
    rerender.add_argument("records", nargs="*", help="record names or experiment ids (default: every record)")
    rerender.set_defaults(func=_rerender)

    region = sub.add_parser("predict-region", help="predict the reference and every variety over one region")
    region.add_argument("--record", required=True,
                        help="a record folder, record name or experiment id (its newest record): its model, "
                        "marks, window, rc_average and precision")
    region.add_argument("--fasta", required=True, help="the reference genome")
    region.add_argument("--vcf", help="multi-sample VCF of the varieties (none: the reference only)")
    region.add_argument("--samples", help="comma-separated, or a file with one per line (default: all)")
    region.add_argument("--region", required=True, help="chrom:start-end, 0-based half-open")
    region.add_argument("--window", type=int, help="model window in bp (default: the record's)")
    region.add_argument("--stride", type=int, help="bp between windows, the bin width (default: the record's "
                        "predict_stride)")
    region.add_argument("--batch-size", type=int, default=256)
    region.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    region.add_argument("--het", default="ref", choices=["ref", "alt", "n"], help="heterozygous calls")
    region.add_argument("--missing", default="ref", choices=["ref", "n"], help="missing calls")
    region.add_argument("--chrom-alias", help="VCF=FASTA chromosome names, e.g. 1=chr01,2=chr02 (the forms "
                        "1, chr1, chr01, Chr1 are matched without it when one FASTA name fits)")
    region.add_argument("--out", required=True, help="the region part (.npz)")
    region.set_defaults(func=_predict_region)

    merge = sub.add_parser("merge-regions", help="merge region parts into one variety × bin HDF5 matrix")
    merge.add_argument("parts", nargs="+", help="region parts (.npz) from predict-region")
    merge.add_argument("--out", required=True, help="the matrix store (.h5)")
    merge.set_defaults(func=_merge_regions)

    score = sub.add_parser("predict", help="score sequences (FASTA, CSV, BED regions) with a record's model")
    score.add_argument("record", help="a record folder, record name or experiment id (its newest record)")
    score.add_argument("input", help="FASTA (plain, gzip, bgzip), CSV (sequence[,id][,label]), BED (--fasta)")
    score.add_argument("--fasta", help="the genome a BED's regions lie on")
    score.add_argument("--out", required=True, help="the table (.tsv, or .tsv.gz)")
    score.add_argument("--per-window", help="also write every window's probabilities to this table")
    score.add_argument("--batch-size", type=int, default=256, help="windows per forward pass (0: GPU-sized)")
    score.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    score.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    score.set_defaults(func=_predict)

    effect = sub.add_parser("score-variants", help="score the variants of a VCF with a record's model")
    effect.add_argument("record", help="a record folder, record name or experiment id (its newest record)")
    effect.add_argument("--vcf", required=True, help="the variants (sites; genotypes are not read)")
    effect.add_argument("--fasta", required=True, help="the reference genome the VCF was called against")
    effect.add_argument("--region", help="only variants in chrom:start-end, 0-based half-open")
    effect.add_argument("--tiled", action="store_true",
                        help="also the largest difference over the track's windows holding each variant")
    effect.add_argument("--out", required=True, help="the table, one row per variant x ALT x mark (.tsv)")
    effect.add_argument("--out-vcf", help="also the VCF annotated per mark (bgzipped and indexed, so named "
                        ".vcf.gz or .vcf.bgz; not the input)")
    effect.add_argument("--chrom-alias", help="VCF=FASTA chromosome names, e.g. 1=chr01,2=chr02")
    effect.add_argument("--batch-size", type=int, default=256, help="windows per forward pass (0: GPU-sized)")
    effect.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    effect.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    effect.set_defaults(func=_score_variants)

    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _stop)
    formatted = warnings.formatwarning
    warnings.formatwarning = progress.plain_warning  # `UserWarning: message`, not the library's file:line
    try:
        args.func(args)
    except experiments.ExperimentError as err:
        print(f"seq2epi: notebook failed: {err.notebook}\n  {err.error}\n  (its HTML render is beside it)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seq2epi: interrupted (a run's record is marked interrupted in executed/INDEX.md; continue it "
              "with -p resume=true)", file=sys.stderr)
        return 130
    except PermissionError as err:
        print(f"seq2epi: cannot write {err.filename}: permission denied (records go to executed/, which must "
              "be writable)", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:
        print(f"seq2epi: {err}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        warnings.formatwarning = formatted
    return 0


if __name__ == "__main__":
    sys.exit(main())
