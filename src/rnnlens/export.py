"""Shipping a trained run as a model folder: fp32 weights, its config and history, and a model card.

``export_model(RUN, OUT)`` writes ``OUT/`` with ``config.json`` (unchanged, so the model rebuilds its data
from the corpus as any run does), ``best.safetensors`` (the best-on-validation weights as fp32, with no
optimizer state), ``metrics.jsonl``, ``summary.json`` and a ``README.md`` model card generated from them
(corpus and its sha256, recipe, dropout, validation and test loss, epochs, training time, precision) plus
the caller's notes (how the dropout and learning rate were chosen, machine, commit). Every rnnlens command
that reads a run reads such a folder; ``rnnlens train --resume`` on it changes nothing (it is finished).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from .checkpoint import load_tensors, save_tensors
from .exceptions import RnnlensError
from .fsutil import atomic_write, atomic_write_text, read_json
from .run import BEST, CONFIG, METRICS, SUMMARY, load_config

UNHEALTHY = ("stalled", "diverged")


def export_model(run_dir: str | os.PathLike, out: str | os.PathLike, notes: str = "", force: bool = False,
                 name: str | None = None) -> Path:
    """Write the model folder ``out`` from the finished run ``run_dir``; returns ``out``."""
    run_dir, out = Path(run_dir), Path(out)
    cfg = load_config(run_dir)
    if not (run_dir / SUMMARY).is_file():
        raise RnnlensError(f"run {run_dir} has not finished (no {SUMMARY}); finish it with rnnlens train --resume "
                           f"--out {run_dir} before exporting")
    summary = read_json(run_dir / SUMMARY)
    if summary.get("status") in UNHEALTHY and not force:
        raise RnnlensError(f"run {run_dir} ended {summary['status']} ({summary.get('health')}); a net that did not "
                           "learn is not a model to ship (pass force=True / --force to export it anyway)")
    if out.resolve() == run_dir.resolve():
        raise RnnlensError("the export folder is the run itself; choose another --out")
    if out.exists() and any(out.iterdir()) and not force:
        raise RnnlensError(f"{out} already exists and is not empty; choose another --out or pass --force")
    tensors, meta = load_tensors(run_dir / BEST, kind="weights")
    weights = {k: v.to(torch.float32).contiguous() for k, v in tensors.items() if k.startswith("model.")}
    if not weights:
        raise RnnlensError(f"{run_dir / BEST} holds no model weights; the run is damaged")
    out.mkdir(parents=True, exist_ok=True)
    save_tensors(out / BEST, weights, {**meta, "kind": "best", "exported_from": run_dir.name})
    for fname in (CONFIG, METRICS, SUMMARY):
        if (run_dir / fname).is_file():
            atomic_write(out / fname, lambda tmp, src=run_dir / fname: shutil.copyfile(src, tmp))
    metrics = [json.loads(x) for x in (run_dir / METRICS).read_text().splitlines()] if (run_dir / METRICS).is_file() else []
    atomic_write_text(out / "README.md", model_card(name or out.name, cfg, summary, metrics, notes))
    return out


def _fmt(x, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def model_card(name: str, cfg, summary: dict, metrics: list[dict], notes: str = "") -> str:
    """The README of a model folder, from its config, summary and metrics (numbers, never guesses)."""
    m, t, sp, src = cfg.model, cfg.train, cfg.split, cfg.source
    hours = summary.get("wall_s", 0) / 3600
    best = min(metrics, key=lambda r: r["val_loss"] if r.get("val_loss") is not None else float("inf")) if metrics else {}
    lines = [
        f"# {name}",
        "",
        f"A {m.layers}-layer {m.cell.upper()} character-level language model, hidden size {m.hidden}, "
        f"{summary.get('params', 0):,} parameters, trained by rnnlens on **{src.label}** "
        f"(sha256 `{src.sha256}`, {src.size:,} bytes; unit {cfg.text.unit}, K={m.vocab_size}).",
        "",
        "| | |",
        "|---|---|",
        f"| test loss | **{_fmt(summary.get('test_loss_nats'))} nats/char** ({_fmt(summary.get('test_loss_bits'))} "
        f"bits/char) over {summary.get('test_chars', 0):,} characters |",
        f"| best validation loss | {_fmt(summary.get('best_val_loss'))} nats/char at update {summary.get('best_step')} "
        f"(epoch {best.get('epoch', 'n/a')}) |",
        f"| training | {summary.get('steps', 0):,} updates = {summary.get('epochs', 0):g} epochs, status "
        f"{summary.get('status', 'complete')}, {hours:.2f} h of training at {summary.get('chars_per_s', 0):,.0f} chars/s "
        f"on {summary.get('device', '?')} (torch {summary.get('torch', '?')}) |",
        f"| precision | {summary.get('precision', t.precision)} (weights stored in fp32) |",
        f"| recipe | RMSProp lr {t.lr:g}, alpha {t.alpha:g}; batch {sp.batch_size} x unroll {sp.seq_len}, state carried; "
        f"element-wise clip {t.clip:g}; lr x{t.lr_decay:g} per epoch after epoch {t.lr_decay_after}; init "
        f"uniform(+-{t.init_range:g}); dropout {m.dropout:g}; up to {t.epochs:g} epochs"
        + (f", early stopping after {t.patience} validations without improvement" if t.patience else "")
        + f"; validation every {t.eval_every} updates and at every epoch end; seed {t.seed} |",
        f"| split | {sp.layout}, fractions {', '.join(f'{f:g}' for f in sp.fractions)} "
        f"({summary.get('train_chars', 0):,} / {summary.get('val_chars', 0):,} / {summary.get('test_chars', 0):,} "
        "characters) |",
        f"| finished | {summary.get('finished', 'n/a')} (rnnlens {summary.get('rnnlens_version', '?')}) |",
        "",
        "Use it like any run (the corpus is read from the data directory, see `rnnlens data`):",
        "",
        "```bash",
        f"rnnlens eval models/{name} --split test --json",
        f"rnnlens sample models/{name} --prime \"The \" --length 300 --temperature 0.8",
        f"rnnlens serve models/{name}",
        "```",
        "",
        "`best.safetensors` holds the best-on-validation weights in fp32 (no optimizer state); `metrics.jsonl` one",
        "line per validation; `summary.json` the numbers above; `config.json` everything needed to rebuild the",
        "model and its data.",
    ]
    if notes.strip():
        lines += ["", "## Notes", "", notes.strip()]
    return "\n".join(lines) + "\n"
