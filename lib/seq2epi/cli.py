"""The `seq2epi` command: run | compare | list."""

import argparse
import sys

from seq2epi import experiments


def _run(args) -> None:
    root = experiments.project_root()
    overrides = dict(experiments.parse_override(o) for o in args.param)
    stages = args.stages.split(",") if args.stages else experiments.STAGES
    stages = [s if s in experiments.STAGES else _stage_by_prefix(s) for s in stages]
    record = experiments.run_experiment(args.experiment, root, stages, overrides, progress=not args.quiet)
    print(f"record: {record}")


def _stage_by_prefix(prefix: str) -> str:
    """Let `--stages 01,02` name stages by their number."""
    found = [s for s in experiments.STAGES if s.startswith(prefix)]
    if len(found) != 1:
        raise ValueError(f"unknown stage {prefix!r}; the stages are {', '.join(experiments.STAGES)}")
    return found[0]


def _compare(args) -> None:
    root = experiments.project_root()
    record = experiments.run_compare(args.records, args.by, root, args.at_epoch, progress=not args.quiet)
    print(f"record: {record}")


def _list(args) -> None:
    root = experiments.project_root()
    names = sorted(p.stem for p in (root / "parameters").glob("*.yaml") if p.stem != "base")
    print("experiments:", " ".join(names))
    print((experiments.write_index(root / "executed")).read_text())


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
    compare.add_argument("-q", "--quiet", action="store_true")
    compare.set_defaults(func=_compare)

    listing = sub.add_parser("list", help="list experiments and records")
    listing.set_defaults(func=_list)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except experiments.ExperimentError as err:
        print(f"seq2epi: notebook failed: {err.notebook}\n  {err.error}\n  (its HTML render is beside it)",
              file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:
        print(f"seq2epi: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
