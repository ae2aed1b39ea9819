"""``rnnlens compare``: a trained run against its n-gram (and n-NN) baselines (the paper's Fig. 4 and 5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.braces import DEFAULT_EDGES, check_edges
from ..analysis.comparison import CompareConfig, run_compare
from ..exceptions import RnnlensError
from ..runtime import resolve_device
from .common import add_device_flag, add_json_flag, emit_json, say


def int_list(text: str) -> tuple[int, ...]:
    """'1,2,3' -> (1, 2, 3), with a one-line error for anything else."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="where the model beats its n-gram / n-NN baselines: error overlap, per character, "
        "closing braces, training dynamics",
        description="Fit the n-gram (and train the n-NN) baselines on the run's own train split, pick the best of "
        "each on validation loss (each n-NN's hidden size too, over --nnn-hidden; or reuse the tuned n-NNs of a "
        "baselines folder, --nnn-from), and compare them with the run's best weights on --split: the Venn diagram "
        "of the errors of the model, the best n-gram and the best n-NN (P(correct) < --threshold); against the "
        "--reference-ngram (the 20-gram, as in the paper): the mean probability of every character and the --top "
        "characters the model gains / loses most on, and the probability of '}' against the distance to its '{' "
        "(texts with braces); for runs trained with --snapshot-every, the symmetric KL divergence between "
        "the model's predictions during training and the 1..4-NN (or n-gram) models. Writes compare.json, "
        "figures and tables under --out; baseline scores are cached under OUT/cache.")
    p.add_argument("run", metavar="RUN", help="run directory (the --out of rnnlens train)")
    p.add_argument("--ngram", type=int, nargs="+", default=[20], metavar="N",
                   help="n-gram context lengths to fit; the best on validation is compared (default: 20)")
    p.add_argument("--nnn", type=int, nargs="+", default=[], metavar="N",
                   help="n-NN context lengths to train; the best on validation is compared (default: none)")
    p.add_argument("--reference-ngram", type=int, default=20, metavar="N",
                   help="the n-gram of the per-character and '}' comparisons, fitted when not in --ngram; 0 = the "
                   "best on validation (default: 20)")
    p.add_argument("--nnn-hidden", type=int_list, default=(128, 256, 512, 1024), metavar="H1,H2,...",
                   help="n-NN hidden sizes; each n-NN keeps the best on validation (default: 128,256,512,1024)")
    p.add_argument("--nnn-from", metavar="DIR",
                   help="reuse the tuned n-NNs of this `rnnlens baselines` output folder (same data and split); "
                   "n-NNs it lacks are trained (default: train them all)")
    p.add_argument("--nnn-epochs", type=int, default=20, help="n-NN epochs at most (default: 20)")
    p.add_argument("--nnn-positions", type=int, default=0,
                   help="n-NN training positions per epoch, 0 = all (default: 0)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="split to compare on (default: test)")
    p.add_argument("--threshold", type=float, default=0.5, help="a character is an error below this probability (default: 0.5)")
    p.add_argument("--top", type=int, default=10, help="characters in each of the gain / loss lists (default: 10)")
    p.add_argument("--min-count", type=int, default=50,
                   help="leave characters seen fewer times out of the gain / loss lists (default: 50)")
    p.add_argument("--brace-buckets", type=int_list, default=DEFAULT_EDGES, metavar="E1,E2,...",
                   help=f"distance bucket edges for '}}' (default: {','.join(map(str, DEFAULT_EDGES))})")
    p.add_argument("--dynamics", choices=["auto", "nnn", "ngram", "off"], default="auto",
                   help="reference models of the training dynamics: n-NN, n-gram, or auto = n-NN when available (default: auto)")
    p.add_argument("--dynamics-n", type=int_list, default=(1, 2, 3, 4), metavar="N1,N2,...",
                   help="context lengths of the dynamics' reference models (default: 1,2,3,4)")
    p.add_argument("--max-chars", type=int, default=100_000,
                   help="predictions of the split used for the training dynamics, 0 = all (default: 100000)")
    p.add_argument("--context-buckets", type=int_list, default=(0, 1, 3, 5, 10, 15, 20), metavar="E1,E2,...",
                   help="buckets of the reference n-gram's matched context length for by_context.md "
                        "(default: 0,1,3,5,10,15,20)")
    p.add_argument("--stretches", type=int, default=5,
                   help="stretches of text listed where the reference n-gram leads most (default: 5)")
    p.add_argument("--stretch-width", type=int, default=200, help="characters per stretch (default: 200)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/compare)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the named corpora (default: $RNNLENS_DATA)")
    add_device_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_chars < 0:
        raise RnnlensError(f"--max-chars must be >= 0, got {args.max_chars}")
    if args.stretches < 0 or args.stretch_width < 1:
        raise RnnlensError(f"--stretches must be >= 0 and --stretch-width >= 1, got {args.stretches} and {args.stretch_width}")
    ccfg = CompareConfig(ngram_ns=tuple(args.ngram), nnn_ns=tuple(args.nnn),
                         nnn_settings={"epochs": args.nnn_epochs, "epoch_positions": args.nnn_positions},
                         nnn_hiddens=tuple(args.nnn_hidden), nnn_from=args.nnn_from,
                         reference_ngram=args.reference_ngram,
                         split=args.split, threshold=args.threshold, top=args.top, min_count=args.min_count,
                         brace_edges=check_edges(args.brace_buckets), dynamics=args.dynamics,
                         dynamics_ns=tuple(args.dynamics_n), max_chars=args.max_chars,
                         context_edges=tuple(args.context_buckets), stretches=args.stretches,
                         stretch_width=args.stretch_width)
    out = Path(args.out) if args.out else Path(args.run) / "compare"
    res = run_compare(args.run, out, ccfg, args.data_dir, resolve_device(args.device),
                      (lambda _m: None) if args.quiet or args.json else say)
    if args.json:
        emit_json({**res, "out": str(out)})
        return 0
    print(f"{res['split']} split, {res['chars']:,} characters; errors (P < {res['threshold']}):")
    for k, v in res["errors"].items():
        print(f"  {k:>10}: {v:,} errors ({v / res['chars']:.1%}), loss {res['loss'][k]:.4f} nats/char")
    print("Venn regions: " + ", ".join(f"{k} {v:,}" for k, v in res["venn"].items()))
    r = res["reference_ngram"]
    print(f"per character and braces against the {r['n']}-gram ({r['chosen']}), loss {r['loss']:.4f} nats/char")
    c = res["by_context"]
    full = next((row for row in c["buckets"] if row["hi"] is None), None)
    if full and full["count"]:
        print(f"the {r['n']}-gram matched its whole {c['n']}-character context for {full['share']:.1%} of the characters "
              f"(loss there: {res['model']} {full[res['model']]:.3f}, {r['n']}-gram {full[str(r['n']) + '-gram']:.3f}); "
              "by_context.md has every bucket")
    b = res["braces"]
    if "buckets" in b:
        print(f"closing braces: {b['matched']:,} matched, {b['unmatched']:,} unmatched")
    d = res.get("dynamics")
    if d:
        print(f"dynamics: {d.get('skipped') or str(len(d['points'])) + ' snapshots vs ' + ', '.join(d['refs'])}")
    print(f"figures and tables in {out}")
    return 0
