"""Each stage of a reproduction as a function of (stage, context) writing its results under its own folder.

Every stage function writes its files under ``ROOT/stages/<stage id>/`` (atomically, file by file) and
returns a JSON-able record; the executor stores that record as ``stage.json`` in the same folder, last,
so a stage is finished exactly when its ``stage.json`` exists. Stages read the records of the stages they
depend on with :func:`read_record`. Training resumes a half-finished run from its saved state.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..data.corpora import CORPORA, load_corpus_bytes
from ..exceptions import RnnlensError
from ..fsutil import atomic_write_bytes, atomic_write_json, read_json
from ..run import CONFIG, load_config, load_model, load_splits, sha256_hex
from ..runtime import resolve_device
from .plan import Preset, Stage, baseline_preset, compare_dynamics_ns

RECORD = "stage.json"


@dataclass(frozen=True)
class Context:
    """What every stage needs besides its own parameters (picklable: it travels to worker processes)."""

    root: str
    preset: Preset
    device: str = "cpu"
    data_dir: str | None = None
    threads: int = 1
    models_dir: str | None = None     # where adopted models are (absolute; see .adopt)


def stage_dir(root: str | os.PathLike, stage_id: str) -> Path:
    return Path(root) / "stages" / stage_id


def read_record(root: str | os.PathLike, stage_id: str) -> dict[str, Any] | None:
    """The finished record of a stage (timing + ``result``), or None when it has not finished."""
    path = stage_dir(root, stage_id) / RECORD
    return read_json(path) if path.is_file() else None


def read_result(root: str | os.PathLike, stage_id: str) -> dict[str, Any] | None:
    """What a finished stage returned, or None when it has not finished."""
    rec = read_record(root, stage_id)
    return None if rec is None else rec["result"]


def rel(ctx: Context, path: str | os.PathLike) -> str:
    """A path relative to the output root (records stay valid when the folder is moved)."""
    return os.path.relpath(path, ctx.root)


# ----- data and training -----------------------------------------------------------------------------------
def run_data(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """The corpus as the grid sees it: a slice written to ``text.txt``, or the named corpus itself."""
    raw = load_corpus_bytes(stage.dataset, ctx.data_dir)
    record: dict[str, Any] = {"dataset": stage.dataset, "fractions": list(CORPORA[stage.dataset].fractions)}
    if ctx.preset.slice_bytes:
        raw = raw[:ctx.preset.slice_bytes]
        atomic_write_bytes(out / "text.txt", raw)
        record["text"] = rel(ctx, out / "text.txt")
    record.update(size=len(raw), sha256=sha256_hex(raw), vocab_size=len(set(raw)))
    return record


def _source_args(ctx: Context, dataset: str) -> dict[str, Any]:
    """dataset/text/fractions settings of new_run_config from the data stage's record."""
    data = read_result(ctx.root, f"data/{dataset}")
    if data is None:
        raise RnnlensError(f"the data stage of {dataset} has not finished; run reproduce again")
    fractions = tuple(float(f) for f in data["fractions"])
    if "text" in data:
        return {"dataset": None, "text": str(Path(ctx.root) / data["text"]), "fractions": fractions}
    return {"dataset": dataset, "text": None, "fractions": fractions}


def new_run(ctx: Context, dataset: str, run_dir: Path, cell: str, layers: int, budget: str, dropout: float,
            **recipe: Any) -> dict | None:
    """Create ``run_dir`` with the config of one model of this reproduction (the preset's recipe, ``recipe``
    overriding it); returns its splits to hand to ``train`` (or None)."""
    from ..newrun import new_run_config
    from ..train import init_run

    if (run_dir / CONFIG).is_file():
        return None
    # killed before its config.json was in place: at most a stray temp file is there; start the run afresh
    shutil.rmtree(run_dir, ignore_errors=True)
    pr = ctx.preset
    settings = dict(epochs=pr.epochs, max_steps=pr.max_steps, lr=pr.lr if pr.lr != 2e-3 else None,
                    eval_every=pr.eval_every, eval_chars=pr.eval_chars, patience=pr.patience or None,
                    snapshot_every=pr.snapshot_every or None, seed=pr.seed, precision=pr.precision)
    settings.update(recipe)
    cfg, splits = new_run_config(**_source_args(ctx, dataset), data_dir=ctx.data_dir, batch_size=pr.batch_size,
                                 seq_len=pr.seq_len, model=cell, layers=layers, params=budget, dropout=dropout,
                                 device=resolve_device(ctx.device), **settings)
    init_run(run_dir, cfg)
    return splits


def run_train(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """One grid model, trained with the preset's recipe (and its pilot's learning rate); resumes a run killed
    before it ended. A run that stalls or diverges is recorded with that status and left out of Table 1."""
    from ..train import train

    p, pr = stage.params, ctx.preset
    run_dir = out / Path(stage.id).name  # named after the model: analyses label runs by folder name
    recipe: dict[str, Any] = {"epochs": p.get("epochs") or pr.epochs}
    if "pilot" in p:
        pilot = read_result(ctx.root, p["pilot"])
        if pilot is None or pilot.get("lr") is None:
            raise RnnlensError(f"{p['pilot']} chose no learning rate (every candidate stalled or diverged); "
                               "see its stage.json")
        recipe["lr"] = pilot["lr"]
    splits = new_run(ctx, stage.dataset, run_dir, p["cell"], p["layers"], p["budget"], p["dropout"], **recipe)
    outcome = train(run_dir, resolve_device(ctx.device), data_dir=ctx.data_dir, splits=splits)
    if outcome.status == "interrupted":  # Ctrl-C or SIGTERM: the state is saved; stop the whole reproduction
        raise KeyboardInterrupt
    if outcome.summary is None:
        raise RnnlensError(f"training of {stage.id} ended without a summary; run reproduce again to resume it")
    return train_record(ctx, run_dir, p, outcome.summary, recipe.get("lr", pr.lr))


def train_record(ctx: Context, run_dir: Path, p: dict[str, Any], s: dict[str, Any], lr: float) -> dict[str, Any]:
    """What a ``train`` (or ``adopt``) stage records of the model in ``run_dir``: the stage parameters ``p``, and
    from its summary ``s`` its size, losses and training (``lr``: the rate it was trained at, when ``s`` lacks it)."""
    return {"run": rel(ctx, run_dir), **{k: p[k] for k in ("cell", "layers", "budget", "dropout")},
            "hidden": s["model"]["hidden"], "params": s["params"], "best_val_loss": s["best_val_loss"],
            "test_loss_nats": s["test_loss_nats"], "steps": s["steps"], "epochs": s["epochs"],
            "train_wall_s": s["wall_s"], "chars_per_s": s["chars_per_s"], "device": s["device"],
            "status": s.get("status", "complete"), "health": s.get("health"), "lr": s.get("lr", lr),
            "precision": s.get("precision", "fp32"), "role": p.get("role", "headline")}


def run_select(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """Table 1: per type x depth x budget, the dropout with the lowest validation loss, and its test loss."""
    done, failed, unhealthy = [], [], []
    for sid in stage.soft_deps:
        rec = read_result(ctx.root, sid)
        if rec and rec.get("status") in ("stalled", "diverged"):
            unhealthy.append({"stage": sid, "status": rec["status"], "health": rec.get("health")})
        elif rec:
            done.append(rec)
        else:
            failed.append(sid)
    best: dict[tuple, dict] = {}
    for rec in done:
        key = (rec["cell"], rec["layers"], rec["budget"])
        if key not in best or rec["best_val_loss"] < best[key]["best_val_loss"]:
            best[key] = rec
    rows = [dict(best[k], tried_dropouts=sorted(r["dropout"] for r in done
                                                 if (r["cell"], r["layers"], r["budget"]) == k)) for k in best]
    atomic_write_json(out / "table1.json", {"rows": rows, "failed": failed, "unhealthy": unhealthy})
    winner = min(rows, key=lambda r: r["best_val_loss"]) if rows else None
    return {"rows": rows, "failed": failed, "unhealthy": unhealthy, "best": winner}


def _selected(ctx: Context, dataset: str) -> list[dict]:
    rec = read_result(ctx.root, f"select/{dataset}")
    if not rec or not rec["rows"]:
        raise RnnlensError(f"no grid model of {dataset} finished training; see the failed train stages")
    return rec["rows"]


def _best_of(rows: list[dict], cell: str) -> dict | None:
    mine = [r for r in rows if r["cell"] == cell]
    return min(mine, key=lambda r: r["best_val_loss"]) if mine else None


# ----- baselines and analyses ------------------------------------------------------------------------------
def run_baselines(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """Table 2 (n-gram and n-NN test loss against n) on the same text, vocabulary and split as the grid."""
    from ..baselines.table import run_table2
    from ..data.splits import SplitConfig

    src = _source_args(ctx, stage.dataset)
    split_cfg = SplitConfig(fractions=src["fractions"],
                            batch_size=ctx.preset.batch_size, seq_len=ctx.preset.seq_len)
    results = run_table2(src["dataset"], ctx.data_dir, out, baseline_preset(stage.params["preset"]),
                         resolve_device(ctx.device), text_path=src["text"], split_cfg=split_cfg, seed=ctx.preset.seed)
    entries = {k: {f: e.get(f) for f in ("family", "n", "test_loss", "val_loss", "hidden", "seconds")}
               for k, e in results["entries"].items()}
    return {"entries": entries, "paper": results.get("paper", {}), "figure": rel(ctx, out / "table2.png"),
            "table": rel(ctx, out / "table.md")}


def run_gates(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """Figure 3: gate saturation of the best LSTM and the best GRU among the deepest of their type in the grid
    (the paper shows 3-layer models: its findings compare the first layer with the others)."""
    from ..analysis.gates import gate_saturation, write_saturation

    rows, models = _selected(ctx, stage.dataset), []
    for cell in ("lstm", "gru"):
        mine = [r for r in rows if r["cell"] == cell]
        if not mine:
            continue
        deepest = max(r["layers"] for r in mine)
        row = _best_of([r for r in mine if r["layers"] == deepest], cell)
        model, cfg, _ = load_model(Path(ctx.root) / row["run"], "best", resolve_device(ctx.device))
        result = gate_saturation(model, load_splits(cfg, ctx.data_dir)["test"], cfg.split.seq_len,
                                 max_chars=stage.params["chars"])
        paths = write_saturation(result, out / cell, f"{cell.upper()} {row['layers']} layers, {row['budget']}: "
                                 f"gate saturation over {result.steps:,} test steps")
        models.append({"cell": cell, "layers": row["layers"], "budget": row["budget"], "steps": result.steps,
                       "summary": result.summary(), "figure": rel(ctx, paths["figure"])})
    return {"models": models}


def _best_on_test(run: Path, ctx: Context):
    """A trained run's best weights, its config, its text's symbols and its test split."""
    from ..data.splits import make_splits
    from ..run import load_symbols

    model, cfg, _ = load_model(run, "best", resolve_device(ctx.device))
    symbols = load_symbols(cfg, ctx.data_dir)
    return model, cfg, symbols, make_splits(cfg.vocab.encode(symbols), cfg.split)["test"]


def run_cells(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """Figure 2 and the tanh(c) histogram: interpretable cells of the best LSTM (else the best model), on
    the test split."""
    from ..cells.analysis import cell_histogram, find_cells, state_label, write_findings, write_histogram

    rows = _selected(ctx, stage.dataset)
    row = _best_of(rows, "lstm") or min(rows, key=lambda r: r["best_val_loss"])
    run = Path(ctx.root) / row["run"]
    model, cfg, symbols, split = _best_on_test(run, ctx)
    label = f"{cfg.source.label} test"
    findings = find_cells(model, cfg, symbols, split, label, max_chars=stage.params["chars"])
    write_findings(findings, out, cfg.vocab.unit, f"Interpretable cells of {run.name} on {label} "
                   f"({state_label(findings.state)})", run=run)
    write_histogram(cell_histogram(model, cfg, split, findings.state, stage.params["chars"]), out, findings.state,
                    label)
    report = read_json(out / "report.json")
    features = [{"name": f["name"], "metric": f["metric"], "skipped": f["skipped"],
                 "best": f["best"][0] if f["best"] else None, "fraction": f["fraction"],
                 "figure": rel(ctx, out / f"{f['name']}.png") if (out / f"{f['name']}.png").is_file() else None}
                for f in report["features"]]
    return {"model": {k: row[k] for k in ("cell", "layers", "budget")}, "n_chars": report["n_chars"],
            "n_cells": report["n_cells"], "fraction_interpretable": report["fraction_interpretable"],
            "features": features, "histogram": rel(ctx, out / "histogram.png"), "page": rel(ctx, out / "report.html")}


def run_modelmap(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """The map of all selected grid models by agreement on the most likely next character (classical MDS)."""
    from .modelmap import agreement_matrix, argmax_predictions, classical_mds, plot_map

    rows = _selected(ctx, stage.dataset)
    preds = []
    for row in rows:
        model, cfg, _ = load_model(Path(ctx.root) / row["run"], "best", resolve_device(ctx.device))
        preds.append(argmax_predictions(model, load_splits(cfg, ctx.data_dir)["test"], cfg.split.seq_len,
                                        stage.params["chars"]))
    agree = agreement_matrix(preds)
    coords = classical_mds(1.0 - agree) if len(rows) > 1 else np.zeros((len(rows), 2))
    labels = [{k: r[k] for k in ("cell", "layers", "budget", "params")} for r in rows]
    plot_map(coords, labels, out / "modelmap.png", f"{stage.dataset}: models by agreement on the argmax "
             f"(classical MDS, {preds[0].size:,} test chars)")
    atomic_write_json(out / "modelmap.json", {"models": labels, "agreement": agree.tolist(), "coords": coords.tolist()})
    return {"models": labels, "agreement": agree.tolist(), "coords": coords.tolist(), "chars": int(preds[0].size),
            "figure": rel(ctx, out / "modelmap.png")}


def _lstm_rows(ctx: Context, dataset: str) -> tuple[dict, list[dict]]:
    """The best selected LSTM (else the best model) and the other LSTMs: smallest budget first, and within a
    budget the best on validation first (so ``others[0]`` is the best LSTM of the smallest budget: the
    paper's 50K LSTM of the scaling comparison)."""
    rows = _selected(ctx, dataset)
    headline = [r for r in rows if r.get("role", "headline") == "headline"] or rows
    best = _best_of(headline, "lstm") or min(headline, key=lambda r: r["best_val_loss"])
    from ..model import parse_budget

    others = sorted((r for r in rows if r["cell"] == "lstm" and r is not best),
                    key=lambda r: (parse_budget(r["budget"], 100), r["best_val_loss"]))  # budgets in size order
    return best, others


def run_compare_stage(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """Figures 4 and 5: the best LSTM against the best n-gram and n-NN (Venn of errors, per character,
    closing braces, training dynamics against the 1..4-NN), with the baselines' n and n-NN settings. The n-NNs
    are the baselines stage's tuned models when that stage finished (a soft dependency); any n they lack is
    trained over the baselines' hidden-size grid. The per-character and brace comparisons are against the
    20-gram when the baselines preset fits one, else against its largest n-gram."""
    from ..analysis.comparison import CompareConfig, run_compare
    from ..baselines.refscores import check_baselines_dir

    bp = baseline_preset(ctx.preset.baseline)
    best, _ = _lstm_rows(ctx, stage.dataset)
    run_dir = Path(ctx.root) / best["run"]
    nnn_from = None
    if read_record(ctx.root, f"baselines/{stage.dataset}") is not None:
        try:
            nnn_from = str(check_baselines_dir(stage_dir(ctx.root, f"baselines/{stage.dataset}"),
                                               load_config(run_dir)))
        except RnnlensError:
            nnn_from = None  # baselines of other data or split: train the n-NNs here
    nnn = {"epochs": bp.epochs, "epoch_positions": bp.epoch_positions, "batch": bp.batch,
           "patience": bp.patience, "seed": ctx.preset.seed}
    small = ctx.preset.slice_bytes > 0
    ccfg = CompareConfig(ngram_ns=tuple(bp.ngram_ns), nnn_ns=tuple(bp.nnn_ns), nnn_settings=nnn,
                         nnn_hiddens=tuple(bp.hiddens), nnn_from=nnn_from,
                         reference_ngram=20 if 20 in bp.ngram_ns else max(bp.ngram_ns),
                         dynamics_ns=compare_dynamics_ns(ctx.preset, bp),
                         max_chars=stage.params["chars"], min_count=5 if small else 50)
    result = run_compare(run_dir, out, ccfg, ctx.data_dir, resolve_device(ctx.device))
    if nnn_from is not None and "nnn" in result:
        result["nnn"]["from"] = rel(ctx, nnn_from)
    figures = {name: rel(ctx, out / f"{name}.png") for name in ("venn", "per_char", "braces", "dynamics")
               if (out / f"{name}.png").is_file()}
    keep = ("model", "chars", "threshold", "ngram", "nnn", "reference_ngram", "loss", "errors", "venn", "braces")
    return {"model_run": {k: best[k] for k in ("cell", "layers", "budget")}, **{k: result[k] for k in keep if k in result},
            "top": result["per_char"]["top"], "dynamics": result.get("dynamics"), "figures": figures}


def run_errors_stage(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """Figure 6: the oracle breakdown of the best LSTM's errors, and against the smallest other LSTM."""
    from ..analysis.breakdown import run_errors
    from ..analysis.oracles import OracleConfig

    bp = baseline_preset(ctx.preset.baseline)
    best, others = _lstm_rows(ctx, stage.dataset)
    ocfg = OracleConfig(ngram_ns=tuple(n for n in bp.ngram_ns if n <= 9))
    vs = Path(ctx.root) / others[0]["run"] if others else None
    result = run_errors(Path(ctx.root) / best["run"], out, ocfg, vs, "test", ctx.data_dir, resolve_device(ctx.device))
    return {"models": result["models"], "scaling": result.get("scaling"), "oracles": result["oracles"],
            "table": (out / "errors.md").read_text(), "figure": rel(ctx, out / "errors.png"),
            "runs": [{k: r[k] for k in ("cell", "layers", "budget", "params")} for r in [best] + others[:1]]}


def run_census(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    """The census of interpretable cells: for every model the grid trained (healthy runs, every dropout), the
    share of its cells that pass the discovery thresholds per feature (LSTM: tanh(c); GRU and RNN: h)."""
    from ..cells.analysis import find_cells, state_label, write_findings
    from ..cells.census import census_row, write_census

    rows, skipped = [], []
    for sid in stage.soft_deps:
        rec = read_result(ctx.root, sid)
        if not rec or rec.get("status") in ("stalled", "diverged"):
            skipped.append({"stage": sid, "status": (rec or {}).get("status", "not finished")})
            continue
        run = Path(ctx.root) / rec["run"]
        model, cfg, symbols, split = _best_on_test(run, ctx)
        findings = find_cells(model, cfg, symbols, split, f"{cfg.source.label} test", max_chars=stage.params["chars"])
        write_findings(findings, out / Path(sid).name, cfg.vocab.unit, f"Interpretable cells of {run.name} "
                       f"({state_label(findings.state)})", run=run, images=False)
        model_id = {**{k: rec.get(k) for k in ("cell", "layers", "budget", "dropout", "params")},
                    "state": findings.state}
        rows.append(census_row(model_id, findings.report.to_dict()))
    if not rows:
        raise RnnlensError(f"no model of {stage.dataset} finished training; the census has nothing to count")
    paths = write_census(rows, out, f"{stage.dataset}: share of cells over the discovery thresholds, per feature "
                         f"({stage.params['chars']:,} test characters per model)")
    return {"rows": rows, "skipped": skipped, "table": paths["table"].read_text(), "figure": rel(ctx, paths["figure"])}


def _run_pilot(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    from .pilot import run_pilot

    return run_pilot(stage, ctx, out)


def _run_adopt(stage: Stage, ctx: Context, out: Path) -> dict[str, Any]:
    from .adopt import run_adopt

    return run_adopt(stage, ctx, out)


STAGE_FUNCTIONS: dict[str, Callable[[Stage, Context, Path], dict[str, Any]]] = {
    "data": run_data, "pilot": _run_pilot, "train": run_train, "select": run_select, "baselines": run_baselines, "gates": run_gates,
    "cells": run_cells, "modelmap": run_modelmap, "compare": run_compare_stage, "errors": run_errors_stage,
    "census": run_census, "adopt": _run_adopt,
}


def execute(stage: Stage, ctx: Context) -> dict[str, Any]:
    """Run one stage (in a worker process or inline) and return its record; the caller stores it."""
    if ctx.threads > 0:
        torch.set_num_threads(ctx.threads)
    fn = STAGE_FUNCTIONS.get(stage.kind)
    if fn is None:
        raise RnnlensError(f"stage kind {stage.kind!r} is not implemented yet")
    out = stage_dir(ctx.root, stage.id)
    out.mkdir(parents=True, exist_ok=True)
    return fn(stage, ctx, out)
