"""``rnnlens sample``: generate text from a trained run."""

from __future__ import annotations

import argparse
import sys

from ..exceptions import RnnlensError
from ..run import load_model
from ..runtime import resolve_device
from ..sample import default_prime, iter_sample, sample
from .common import add_device_flag, add_json_flag, emit_json

JSON_MAX_LENGTH = 10_000_000  # --json holds the whole text in memory; plain output streams any length


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sample", help="generate text from a trained run",
                              description="Prime a trained model with text and sample characters from it.")
    p.add_argument("run", metavar="RUN", help="run directory (the --out of rnnlens train)")
    p.add_argument("--prime", help="text to start from (default: a newline, or the first vocabulary symbol)")
    p.add_argument("--length", type=int, default=500, help="characters to generate (default: 500); printed as they "
                   f"are generated, so Ctrl-C keeps what was printed (--json: at most {JSON_MAX_LENGTH:,})")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="softmax temperature; lower is more conservative, 0 = always the most likely (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--weights", choices=["best", "last"], default="best",
                   help="best-on-validation weights or the latest training state (default: best)")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.json and args.length > JSON_MAX_LENGTH:
        raise RnnlensError(f"--length {args.length:,} is too long for --json (at most {JSON_MAX_LENGTH:,}); drop --json "
                           "to stream the text as it is generated")
    model, cfg, meta = load_model(args.run, "best" if args.weights == "best" else "state", resolve_device(args.device))
    prime = args.prime if args.prime is not None else default_prime(cfg.vocab)
    if args.json:
        text = sample(model, cfg.vocab, cfg.text, prime, args.length, args.temperature, args.seed)
        emit_json({"text": text, "prime": prime, "length": args.length, "temperature": args.temperature,
                   "seed": args.seed, "step": meta.get("step")})
        return 0
    last = ""
    for piece in iter_sample(model, cfg.vocab, cfg.text, prime, args.length, args.temperature, args.seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
        last = piece or last
    if not last.endswith("\n"):
        sys.stdout.write("\n")
    return 0
