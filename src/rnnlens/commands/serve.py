"""``rnnlens serve``: the explorer, a local web app to look inside a run (docs/explorer.md)."""

from __future__ import annotations

import argparse

from ..explorer.access import check_token
from ..explorer.data import ExplorerConfig, load_explorer
from ..explorer.server import make_server
from ..run import load_model
from ..runtime import resolve_device
from .common import add_run_source_flags, load_source, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="an offline web app: heatmaps of every cell over the text, pattern search, gates, predictions",
        description="Start a local web server (127.0.0.1 unless --host) with the explorer: the text (the run's "
        "test split by default) coloured by any cell, by the loss or (--oracles) by oracle error category, the cell list with each cell's best feature, "
        "LSTMVis pattern search over a selected span, the gate saturation scatter, and the model's next-character "
        "candidates on hover. The first start precomputes a cache under RUN/explorer-<source> (or --cache). "
        "Bound to any address other than loopback (127.0.0.0/8, ::1, localhost), e.g. --host 0.0.0.0, every "
        "request needs a random access token: the startup line prints the full URL with ?token=...; without it "
        "the server answers 403. See docs/explorer.md.")
    add_run_source_flags(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only, "
                   "no token); any other address requires the access token printed at startup")
    p.add_argument("--token", metavar="TOKEN", help="the access token to require (16..128 letters, digits, '-', "
                   "'_'; default: a random one when --host is not loopback); given, it is required on loopback too")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 = any free port)")
    p.add_argument("--cache", metavar="DIR", help="cache folder (default: RUN/explorer-<split or text-NAME>)")
    p.add_argument("--ngram", metavar="FILE", help="a saved n-gram model (rnnlens ngram --save) to show beside the "
                   "model's predictions; it must use the run's vocabulary")
    p.add_argument("--oracles", action="store_true", help="also classify every error by the oracles of rnnlens "
                   "errors (Fig. 6) so the text can be coloured by error category; fits n-grams 1..9 on the train "
                   "split on first use; needs a split of the run's corpus, not --text")
    p.add_argument("--width", type=int, default=100, metavar="COLS", help="display line width (default: 100)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..exceptions import RnnlensError

    if not 0 <= args.port <= 65535:
        raise RnnlensError(f"--port must be in 0..65535, got {args.port}")
    if not 10 <= args.width <= 1000:
        raise RnnlensError(f"--width must be in 10..1000, got {args.width}")
    if args.oracles and args.text:
        raise RnnlensError("--oracles needs a split of the run's corpus (the oracles use its train split); "
                           "leave out --text or --oracles")
    if args.token is not None:
        check_token(args.token)
    model, cfg, _ = load_model(args.run, "best" if args.weights == "best" else "state", resolve_device(args.device))
    symbols, split, label = load_source(args, cfg)
    say(f"loading the explorer cache for {label} (built on first use; this can take a few minutes)...")
    data = load_explorer(model, cfg, split, symbols, label, args.run, args.weights, args.cache,
                         ExplorerConfig(width=args.width), args.ngram, args.oracles, say)
    server = make_server(data, args.host, args.port, token=args.token)
    access = "; access needs the token in this URL" if server.token else ""
    say(f"rnnlens explorer: {server.url}  ({data.n:,} characters{access}; Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
