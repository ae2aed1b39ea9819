"""Every run under a folder with its status, read from the run's own files (``rnnlens runs``).

A run is a folder with a ``config.json`` of format ``rnnlens-run-v1`` (a training run, a reproduction's stage,
a shipped ``models/`` folder). Its status:

* ``running``: a live process holds the run's write lock (:mod:`rnnlens.lock`);
* the status in its ``summary.json`` when it has finished (``complete``, ``early_stopped``, ``stalled``,
  ``diverged``, ...);
* ``interrupted``: a training state (``state.safetensors``) or metrics but no summary and no live writer
  (``rnnlens train --resume --out RUN`` continues it);
* ``new``: only the config.

Numbers come from summary.json when present, else from the last line of metrics.jsonl.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .exceptions import RnnlensError
from .fsutil import read_json
from .lock import holder
from .model import param_count
from .run import CONFIG, METRICS, STATE, SUMMARY

RUN_FORMAT = "rnnlens-run-v1"


@dataclass
class RunRow:
    """One run's line of the table."""

    path: str
    status: str
    cell: str
    layers: int
    hidden: int
    params: int
    dataset: str
    precision: str
    updates: int
    epochs: float
    best_val: float | None
    test: float | None
    chars_per_s: float | None
    updated: float | None     # unix time of the last write (metrics, state or summary)
    pid: int | None = None    # the writer's pid while running

    def to_dict(self) -> dict:
        return asdict(self)


def _last_metrics(path: Path) -> dict:
    """The last complete line of metrics.jsonl ({} when none); reads only the file's tail."""
    if not path.is_file():
        return {}
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        lines = fh.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "step" in rec:
            return rec
    return {}


def run_row(run_dir: str | os.PathLike) -> RunRow:
    """The table line of one run folder."""
    d = Path(run_dir)
    try:
        cfg = read_json(d / CONFIG)
        m = cfg["model"]
        cell, layers, hidden, vocab = m["cell"], int(m["layers"]), int(m["hidden"]), int(m["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RnnlensError(f"{d} has no readable run config ({CONFIG}: {exc})") from None
    summary = read_json(d / SUMMARY) if (d / SUMMARY).is_file() else {}
    last = _last_metrics(d / METRICS)
    pid = holder(d)
    if pid is not None:
        status = "running"
    elif summary:
        status = str(summary.get("status", "complete"))
    elif (d / STATE).is_file() or last:
        status = "interrupted"
    else:
        status = "new"
    times = [p.stat().st_mtime for p in (d / METRICS, d / STATE, d / SUMMARY) if p.is_file()]
    src = cfg.get("source", {})
    return RunRow(
        path=str(d), status=status, cell=cell, layers=layers, hidden=hidden,
        params=int(summary.get("params") or param_count(cell, layers, hidden, vocab)),
        dataset=str(src.get("dataset") or (Path(src["text_path"]).name if src.get("text_path") else "text")),
        precision=str(summary.get("precision") or cfg.get("train", {}).get("precision", "fp32")),
        updates=int(summary.get("steps", last.get("step", 0))), epochs=float(summary.get("epochs", last.get("epoch", 0.0))),
        best_val=summary.get("best_val_loss", last.get("best_val_loss")), test=summary.get("test_loss_nats"),
        chars_per_s=summary.get("chars_per_s", last.get("chars_per_s")), updated=max(times) if times else None,
        pid=pid or None)


def find_runs(root: str | os.PathLike) -> list[RunRow]:
    """Every run folder under ``root`` (``root`` itself included), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise RnnlensError(f"{root} is not a folder; pass the folder that holds your runs (e.g. runs/)")
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and n not in ("snapshots", "__pycache__"))
        if CONFIG in filenames:
            try:
                fmt = read_json(Path(dirpath) / CONFIG).get("format")
            except (OSError, ValueError, AttributeError):
                continue
            if fmt == RUN_FORMAT:
                rows.append(run_row(dirpath))
    return sorted(rows, key=lambda r: r.path)


def format_table(rows: list[RunRow], root: str | os.PathLike, now: float | None = None) -> list[str]:
    """The rows as aligned text lines (paths relative to ``root``; ages as 5s / 3m / 2h / 4d)."""
    now = time.time() if now is None else now

    def age(t: float | None) -> str:
        if t is None:
            return "-"
        s = max(0.0, now - t)
        return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.0f}h" if s < 172800 else f"{s / 86400:.0f}d"

    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    head = ["run", "status", "type", "layers", "hidden", "params", "data", "prec", "updates", "epochs", "best val",
            "test", "chars/s", "updated"]
    body = [[os.path.relpath(r.path, root), r.status + (f" ({r.pid})" if r.pid else ""), r.cell, str(r.layers),
             str(r.hidden), f"{r.params:,}", r.dataset, r.precision, f"{r.updates:,}", f"{r.epochs:.1f}",
             fmt(r.best_val, ".4f"), fmt(r.test, ".4f"), fmt(r.chars_per_s, ",.0f"), age(r.updated)] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]
