"""``rnnlens ablate``: set one cell to a value inside the recurrence and measure what the model loses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..analysis.ablation import AblationConfig, ablate, rank_cells, write_ablation
from ..cells.analysis import cell_state, parse_cell
from ..exceptions import RnnlensError
from ..fsutil import atomic_write_json, record_path
from .capture import add_input_flags
from .common import add_json_flag, emit_json, load_source, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate", help="causal intervention: set a cell to zero/its mean/a number at every step and measure the loss",
        description="Run a split (or --text FILE) twice in one batch, clean and with one cell (LSTM c, GRU/RNN h; "
        "--state to choose) set to --value at every step inside the recurrence, so the edit feeds every later step "
        "and the layers above. Reports the loss with and without it (nats/char), the change per text region (inside/"
        "outside quotes, comments, ...; line position and other graded features in quartile bins), the predicted "
        "characters whose loss moves most, and a heatmap of the loss change (ablation.html/.png in --out). "
        "--rank ablates every cell in turn over --max-chars and ranks the cells by effect. See docs/interventions.md.")
    add_input_flags(p, None, "predictions counted, per row from the second unroll on "
                    "(default: 100,000; 10,000 with --rank; 0: all)")
    p.add_argument("--cell", metavar="LAYER:INDEX", help="the cell to ablate, e.g. 1:74 (required unless --rank)")
    p.add_argument("--value", default="zero", metavar="zero|mean|NUMBER",
                   help="what the cell is set to: zero, its mean over the same characters, or a number (default: zero)")
    p.add_argument("--state", choices=("c", "h"), help="the state ablated (default: c for an LSTM, else h)")
    p.add_argument("--rank", action="store_true",
                   help="ablate every cell in turn over --max-chars (default then 10,000) and rank them by effect")
    p.add_argument("--layer", type=int, action="append", metavar="L", help="with --rank: only this layer (repeatable)")
    p.add_argument("--top", type=int, metavar="N", help="cells listed with --rank (default: 20), characters without (default: 10)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/ablate-<cell>-<split or text name>)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..run import load_model
    from ..runtime import resolve_device

    if not args.rank and not args.cell:
        raise RnnlensError("ablate needs --cell LAYER:INDEX (e.g. --cell 1:74), or --rank to rank every cell")
    model, cfg, _ = load_model(args.run, "best" if args.weights == "best" else "state", resolve_device(args.device))
    symbols, split, label = load_source(args, cfg)
    state = cell_state(cfg, args.state)
    if args.rank:
        return _rank(args, model, cfg, split, label, state)
    layer, index = parse_cell(args.cell, cfg)
    max_chars = 100_000 if args.max_chars is None else args.max_chars
    config = AblationConfig(layer, index, args.value, state, max_chars, top_chars=args.top or 10)
    with tqdm(total=None, desc="ablate", unit="col", file=sys.stderr, disable=args.json, dynamic_ncols=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()
        result = ablate(model, cfg, symbols, split, config, progress)
    out = Path(args.out) if args.out else Path(args.run) / f"ablate-{layer}-{index}-{label}"
    paths = write_ablation(result, symbols, cfg.vocab.unit, out, f"{Path(args.run).name} {result.cell} = {result.value:g}",
                           run=args.run)
    if args.json:
        emit_json({**result.to_dict(), "files": paths})
        return 0
    say(f"{result.cell} set to {result.value:g} ({result.value_rule}) over {result.chars:,} characters of {label}")
    say(f"loss {result.loss_nats:.4f} -> {result.ablated_loss_nats:.4f} nats/char "
        f"({result.ablated_loss_nats - result.loss_nats:+.4f})")
    moved = sorted(result.regions, key=lambda r: -abs(r["delta_nats"]))[:8]
    say("regions that moved most:  " + "; ".join(f"{r['feature']} {r['region']} {r['delta_nats']:+.3f} ({r['chars']:,})"
                                                  for r in moved))
    say("characters (predicted) whose loss moved most in total:")
    for c in result.characters:
        say(f"  {c['char']!r:>6} x{c['count']:>7,}  {c['loss_nats']:.3f} -> {c['ablated_loss_nats']:.3f}  "
            f"({c['share_of_change']:+.0%} of the change)")
    say(f"files: {paths['json']}, {paths['html']}, {paths['png']}")
    return 0


def _rank(args, model, cfg, split, label: str, state: str) -> int:
    max_chars = 10_000 if args.max_chars is None else args.max_chars
    total = (len(args.layer) if args.layer else cfg.model.layers) * cfg.model.hidden
    with tqdm(total=total, desc="rank", unit="cell", file=sys.stderr, disable=args.json, dynamic_ncols=True) as bar:
        def progress(done: int, _total: int) -> None:
            bar.update(done - bar.n)
        rows = rank_cells(model, cfg, split, args.layer, state, AblationConfig(0, 0, args.value).value, max_chars,
                          progress=progress)
    out = Path(args.out) if args.out else Path(args.run) / f"ablate-rank-{label}"
    atomic_write_json(out / "rank.json", {"run": record_path(args.run), "source": label, "state": state,
                                          "max_chars": max_chars, "cells": rows})
    if args.json:
        emit_json({"source": label, "state": state, "max_chars": max_chars, "cells": rows[:args.top or 20],
                   "files": {"json": str(out / "rank.json")}})
        return 0
    say(f"{len(rows)} cells ablated ({args.value}) one at a time over {max_chars:,} characters of {label}; "
        f"clean loss {rows[0]['loss_nats']:.4f} nats/char")
    for r in rows[:args.top or 20]:
        say(f"  {r['cell']:<18} {r['delta_nats']:+.4f}")
    say(f"all cells: {out / 'rank.json'}")
    return 0
