"""``rnnlens errors``: the paper's error analysis by oracles (Fig. 6), for one run or two."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.breakdown import run_errors
from ..analysis.oracles import OracleConfig
from ..runtime import resolve_device
from .common import add_device_flag, add_json_flag, emit_json, say
from .compare import int_list


def float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_parser(subparsers) -> None:
    d = OracleConfig()
    p = subparsers.add_parser(
        "errors", help="what kinds of errors a model makes: the paper's oracle breakdown (Fig. 6)",
        description="Count the run's errors (P(correct) < --threshold) on --split and remove them oracle by oracle, "
        "in the paper's order: n-gram (any n-gram up to n gets it right), dynamic n-long memory (the word "
        "occurred in the last n characters), rare words (seen <= n times in training), word model (first "
        "character of a word), punctuation, boost (adding b to the probability fixes it). The defaults follow the "
        "paper's wording (docs/errors.md quotes it); --memory-scope text --rare-from second --boost-max 0.4 "
        "--apostrophe quote gives the definitions used before issue 14. With --vs, the same for "
        "a second run of the same data and which kinds of error the better model avoids. Writes errors.json, "
        "errors.md and errors.png under --out; see docs/errors.md for the exact definitions.")
    p.add_argument("run", metavar="RUN", help="run directory (the --out of rnnlens train)")
    p.add_argument("--vs", metavar="RUN2", help="a second run of the same data to compare (e.g. a smaller model)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="(default: test)")
    p.add_argument("--threshold", type=float, default=d.threshold, help="error threshold (default: 0.5)")
    p.add_argument("--ngram-n", type=int_list, default=d.ngram_ns, metavar="N1,N2,...",
                   help="n-gram oracle context lengths (default: 1..9)")
    p.add_argument("--memory", type=int_list, default=d.memory_windows, metavar="N1,N2,...",
                   help="dynamic memory windows in characters (default: 100,500,1000,50000)")
    p.add_argument("--memory-match", choices=["word", "prefix", "predict"], default=d.memory_match,
                   help="what must occur in the window: the whole word, or its prefix up to the error; predict: "
                        "the memory as a model, the word so far followed by the correct character at least "
                        "threshold of the times it starts a word in the window (default: word)")
    p.add_argument("--memory-scope", choices=["split", "text"], default=d.memory_scope,
                   help="what the memory windows look back at: the analysed split's own text (its rows in order), "
                   "or the whole text before the word, train and validation included (default: split)")
    p.add_argument("--rare", type=int_list, default=d.rare_counts, metavar="N1,N2,...",
                   help="rare-word limits: the word occurs <= n times in training (default: 0..5)")
    p.add_argument("--rare-from", choices=["first", "second"], default=d.rare_from,
                   help="which characters of a rare word the rare-words oracle takes: from its first or its "
                   "second on (default: first)")
    p.add_argument("--boost", type=float_list, default=None, metavar="B1,B2,...",
                   help="probability boosts (default: 0.1, 0.2, ... up to --boost-max)")
    p.add_argument("--boost-max", type=float, default=None, metavar="B",
                   help="largest boost, in steps of 0.1 (default: the threshold, so no error remains; "
                   "0.4 before issue 14)")
    p.add_argument("--apostrophe", choices=["word", "quote"], default=d.apostrophe,
                   help="an apostrophe between two letters (don't): part of the word, or a quote like any "
                   "other (default: word)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/errors)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the named corpora (default: $RNNLENS_DATA)")
    add_device_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ocfg = OracleConfig(threshold=args.threshold, ngram_ns=tuple(args.ngram_n), memory_windows=tuple(args.memory),
                        memory_match=args.memory_match, memory_scope=args.memory_scope, rare_counts=tuple(args.rare),
                        rare_from=args.rare_from, boosts=None if args.boost is None else tuple(args.boost),
                        boost_max=args.boost_max, apostrophe=args.apostrophe)
    out = Path(args.out) if args.out else Path(args.run) / "errors"
    res = run_errors(args.run, out, ocfg, args.vs, args.split, args.data_dir, resolve_device(args.device),
                     (lambda _m: None) if args.quiet or args.json else say)
    if args.json:
        emit_json({**res, "out": str(out)})
        return 0
    for name, m in res["models"].items():
        fam = ", ".join(f"{k} {v['share']:.1%}" for k, v in m["families"].items())
        print(f"{name}: {m['errors']:,} errors of {m['chars']:,} characters ({m['error_rate']:.1%}); removed: {fam}")
    if "scaling" in res:
        s = res["scaling"]
        top = ", ".join(f"{k} {v['share']:.0%}" for k, v in s["by_family"].items() if v["share"] is not None)
        print(f"{s['stronger']} makes {s['error_difference']:,} fewer errors than {s['weaker']}; shares: {top}")
    print(f"table and chart in {out}")
    return 0
