"""The peers.py command line: bench, and save and load for interop tests."""

from __future__ import annotations

import argparse
import sys

from . import bench, handover
from .formats import FORMATS, lookup
from .statedict import PeerError


def _list(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="peers.py",
        description="Save and load checkpoints with Python libraries, as yardsticks for the Go formats.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    formats = list(FORMATS)

    b = sub.add_parser(
        "bench",
        help="time saves and loads and print Go benchmark format",
        description="Time durable saves and cold or warm loads of the handover model, "
        "printing one Go benchmark line per iteration to stdout and progress to stderr.",
    )
    b.add_argument("--format", required=True, choices=formats, help="peer to run")
    b.add_argument(
        "--handover", required=True, help="safetensors file with the model, written by the Go harness"
    )
    b.add_argument(
        "--dir", required=True, help="scratch directory for the checkpoint (created if missing)"
    )
    b.add_argument(
        "--count", type=int, default=1, help="iterations per benchmark, like go test -count (default 1)"
    )
    b.add_argument(
        "--model",
        required=True,
        help="model name for the model= key in benchmark names, e.g. open_llama_3b "
        "(an owner/ prefix as in openlm-research/open_llama_3b is dropped)",
    )
    b.add_argument(
        "--cache", type=_list, default=list(bench.CACHES),
        help="comma-separated load cache states to run: cold, warm (default cold,warm)",
    )
    b.add_argument(
        "--ops", type=_list, default=list(bench.OPS),
        help="comma-separated operations to time: save, load (default save,load)",
    )
    b.add_argument("--keep", action="store_true", help="keep the last checkpoint instead of removing it")

    s = sub.add_parser("save", help="save the handover model in a format, durably and atomically")
    s.add_argument("--format", required=True, choices=formats)
    s.add_argument("--handover", required=True, help="safetensors file to read the model from")
    s.add_argument("--out", required=True, help="checkpoint path to write (replaced atomically if it exists)")

    ld = sub.add_parser("load", help="load a checkpoint and write its tensors as safetensors, in saved order")
    ld.add_argument("--format", required=True, choices=formats)
    ld.add_argument("--in", dest="input", required=True, help="checkpoint path to load")
    ld.add_argument("--out", required=True, help="safetensors file to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        fmt = lookup(args.format)
        if args.command == "bench":
            opts = bench.Options(
                format=fmt,
                handover=args.handover,
                directory=args.dir,
                count=args.count,
                model=args.model,
                caches=args.cache,
                ops=args.ops,
                keep=args.keep,
            )
            bench.run(opts)
        elif args.command == "save":
            fmt.save(args.out, handover.read_handover(args.handover))
        else:
            handover.write_safetensors(args.out, fmt.load(args.input))
    except PeerError as e:
        print(f"peers.py: error: {e}", file=sys.stderr)
        return 1
    return 0
