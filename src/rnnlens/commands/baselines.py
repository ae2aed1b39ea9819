"""``rnnlens baselines``: the paper's Table 2 (n-gram and n-NN test loss against n), table and plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..baselines.table import PRESETS, RESULTS, PLOT, TABLE, run_table2
from ..runtime import resolve_device
from ..data.splits import SplitConfig
from ..data.text import TextConfig
from .common import add_device_flag, add_json_flag, emit_json, say
from ..newrun import parse_fractions
from .train import add_data_flags


def add_parser(subparsers) -> None:
    presets = "; ".join(f"{p.name}: n-gram n={','.join(map(str, p.ngram_ns))}, n-NN n={','.join(map(str, p.nnn_ns))} "
                        f"hidden {','.join(map(str, p.hiddens))}, {p.epochs} epochs of "
                        f"{p.epoch_positions or 'all'} positions" for p in PRESETS.values())
    p = subparsers.add_parser(
        "baselines", help="the paper's Table 2: n-gram and n-NN test loss against n, as a table and a plot",
        description="Fit the Kneser-Ney n-gram and train the n-NN for each n of a preset on the train split, score "
        f"the test split, and write {RESULTS}, {TABLE} and {PLOT} under --out. Finished entries are kept: rerun "
        f"the same command to resume. Presets: {presets}.")
    add_data_flags(p)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="which n values run and how the n-NN "
                   "is trained (default: cpu)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/table2-<data>-<preset>)")
    p.add_argument("--seed", type=int, default=0, help="n-NN random seed (default: 0)")
    add_device_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    dataset = args.dataset if args.dataset or args.text else "pystdlib"
    label = Path(args.text).stem if args.text else dataset
    out = Path(args.out) if args.out else Path("runs") / f"table2-{label}-{args.preset}"
    text_cfg = TextConfig(unit=args.unit or "byte", newline=args.newline or "keep")
    split_cfg = SplitConfig(layout=args.layout or "interleaved", fractions=parse_fractions(args.fractions, dataset),
                            batch_size=args.batch_size or 100, seq_len=args.seq_len or 100)
    progress = None if args.quiet or args.json else say
    results = run_table2(None if args.text else dataset, args.data_dir, out, args.preset, device, progress,
                         text_path=args.text, text_cfg=text_cfg, split_cfg=split_cfg, seed=args.seed)
    if args.json:
        emit_json({"out": str(out), **results})
    else:
        print((out / TABLE).read_text(encoding="utf-8"), end="")
        say(f"wrote {out / RESULTS}, {out / TABLE}, {out / PLOT}")
    return 0
