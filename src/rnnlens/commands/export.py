"""``rnnlens export``: ship a finished run as a model folder (fp32 weights, config, history, model card)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..exceptions import RnnlensError
from ..export import export_model
from .common import add_json_flag, emit_json, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="ship a finished run as a model folder: fp32 weights, config, metrics, a model card",
        description="Write OUT/ with config.json, best.safetensors (fp32, no optimizer state), metrics.jsonl, "
        "summary.json and a README.md model card generated from them. Every command that reads a run reads it.")
    p.add_argument("run", metavar="RUN", help="a finished training run")
    p.add_argument("--out", metavar="DIR", required=True, help="the model folder to write (e.g. models/NAME)")
    p.add_argument("--notes", metavar="FILE", help="Markdown appended to the model card (how dropout and the "
                   "learning rate were chosen, machine, commit, ...)")
    p.add_argument("--name", help="the model's name in its card (default: the folder name)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder; export a stalled or "
                   "diverged run")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    notes = ""
    if args.notes:
        try:
            notes = Path(args.notes).read_text(encoding="utf-8")
        except OSError as exc:
            raise RnnlensError(f"cannot read --notes {args.notes} ({exc.strerror}); check the path") from None
    out = export_model(args.run, args.out, notes, force=args.force, name=args.name)
    if args.json:
        emit_json({"out": str(out), "files": sorted(p.name for p in out.iterdir())})
    else:
        say(f"exported {args.run} -> {out} (model card: {out / 'README.md'})")
    return 0
