"""``rnnlens data``: fetch, build and list the named corpora in the data directory.

* ``rnnlens data warpeace [--url URL] [--force]``: download War and Peace from Project Gutenberg.
* ``rnnlens data linux --tarball PATH [--force]``: build the Linux Kernel corpus from a source tarball.
* ``rnnlens data list``: which corpora are present, their sizes and whether their checksums match.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rnnlens.data.corpora import CORPORA, corpus_status, data_dir
from rnnlens.data.download import GUTENBERG_URL, CorpusFile, build_linux, download_warpeace
from rnnlens.exceptions import RnnlensError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, metavar="D",
                   help="data directory (default: $RNNLENS_DATA, else ~/.cache/rnnlens/data)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of text")


def add_parser(subparsers: Any) -> None:
    """Register ``rnnlens data`` and its subcommands ``warpeace``, ``linux`` and ``list``."""
    p = subparsers.add_parser(
        "data", help="download, build or list the named corpora",
        description="Get the paper's corpora into the data directory, or list what is there.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="{warpeace,linux,list}", required=True)
    w = sub.add_parser("warpeace", help="download War and Peace (Gutenberg ebook 2600)",
                       description="Download War and Peace from Project Gutenberg, strip the Gutenberg header "
                                   "and licence, use CRLF line ends and a BOM, and verify it against the "
                                   "authors' copy (Gutenberg revised the text since, so it may not match).")
    _common(w)
    w.add_argument("--url", default=GUTENBERG_URL, help=f"where to download from (default: {GUTENBERG_URL})")
    w.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default: 60)")
    w.add_argument("--force", action="store_true", help="download again even if a verified file is present")
    lk = sub.add_parser("linux", help="build the Linux Kernel corpus from a source tarball",
                        description="Build linux_input.txt with the paper's recipe: the tarball's .c/.h files "
                                    "sorted, shuffled with seed 2015, concatenated and cut at 6,206,996 bytes. "
                                    "Linux 6.1.192 (Debian's linux-source-6.1) gives the known file exactly.")
    _common(lk)
    lk.add_argument("--tarball", required=True, metavar="PATH",
                    help="Linux source tarball (.tar.xz, .tar.gz or .tar), e.g. /usr/src/linux-source-6.1.tar.xz")
    lk.add_argument("--force", action="store_true", help="build again even if a verified file is present")
    ls = sub.add_parser("list", help="show which corpora are present and whether they verify",
                        description="List the named corpora: present or not, size, and checksum match.")
    _common(ls)
    p.set_defaults(func=run)


def _report(res: CorpusFile, as_json: bool) -> int:
    if as_json:
        print(json.dumps(res.to_dict()))
    else:
        extra = f", {res.files_used} files" if res.files_used is not None else ""
        print(f"{res.path}: {res.size} bytes{extra}, sha256 {res.sha256}")
        print(res.note)
    if not res.verified:
        print(f"rnnlens: warning: {res.note}", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = [corpus_status(name, args.data_dir) for name in CORPORA]
    if args.json:
        print(json.dumps({"data_dir": str(data_dir(args.data_dir)),
                          "corpora": [row.__dict__ for row in rows]}))
        return 0
    print(f"data directory: {data_dir(args.data_dir)}")
    for row in rows:
        if not row.present:
            state = "missing"
        elif row.checksum_ok is None:
            state = f"present, {row.size} bytes"
        else:
            state = f"present, {row.size} bytes, checksum {'ok' if row.checksum_ok else 'DIFFERS'}"
        print(f"{row.name:<9} {state}  ({row.description})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``rnnlens data <warpeace|linux|list>``; returns the exit status."""
    cmd = getattr(args, "data_command", None)
    if cmd == "list":
        return _list(args)
    if cmd == "warpeace":
        return _report(download_warpeace(data_dir(args.data_dir), url=args.url, timeout=args.timeout,
                                         force=args.force), args.json)
    if cmd == "linux":
        return _report(build_linux(args.tarball, data_dir(args.data_dir), force=args.force,
                                   progress=True), args.json)
    raise RnnlensError("missing data subcommand; use `rnnlens data warpeace`, `rnnlens data linux` or `rnnlens data list`")
