"""The report's training curves: per corpus, the validation loss of every training run of the reproduction
against epochs, one panel per cell type, and the paper's best test loss as a dashed line.

The runs are plan.json's ``train`` stages: the run a finished stage's record names, else the folder the stage
trains in (``stages/train/<corpus>/<run>/<run>``, see :func:`.stages.run_train`). They are read with
:func:`rnnlens.analysis.curves.read_curve`, so a run still training is drawn as far as it has validated; a
run not started or without a validation yet is listed as skipped, never an error. The figure is written to
``figures/curves-<corpus>.png`` under the reproduction folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..analysis.curves import Curve, plot_curve_grid, read_curve
from ..exceptions import RnnlensError
from ..model import param_count
from ..run import CONFIG, load_config
from .stages import read_record, stage_dir

CELL_ORDER = ("rnn", "lstm", "gru")  # the paper's order; other types after them
FIGURES = "figures"
X = "epochs"


def figure_path(dataset: str) -> str:
    """Where the figure of ``dataset`` goes, relative to the reproduction folder."""
    return f"{FIGURES}/curves-{dataset}.png"


def run_dir(root: Path, stage: dict[str, Any]) -> Path:
    rec = read_record(root, stage["id"])
    if rec and isinstance(rec.get("result"), dict) and rec["result"].get("run"):
        return root / rec["result"]["run"]
    return stage_dir(root, stage["id"]) / Path(stage["id"]).name


def legend(params: dict[str, Any]) -> str:
    """``2-layer 130k d0.25``: depth, budget, dropout."""
    return f"{params['layers']}-layer {params['budget']} d{float(params['dropout']):g}"


def _from_config(path: Path) -> dict[str, Any]:
    """Type, depth, budget (the parameter count) and dropout of a run, for stages whose plan entry lacks them."""
    m = load_config(path).model
    n = param_count(m.cell, m.layers, m.hidden, m.vocab_size)
    return {"cell": m.cell, "layers": m.layers, "budget": f"{n / 1e3:.0f}k", "dropout": m.dropout}


def gather(root: str | os.PathLike, plan: dict[str, Any], dataset: str
           ) -> tuple[dict[str, list[tuple[dict[str, Any], Curve]]], list[dict[str, str]]]:
    """The curves of ``dataset``'s training runs by cell type (paper order), and the runs skipped with why."""
    root = Path(root)
    by_type: dict[str, list[tuple[dict[str, Any], Curve]]] = {}
    skipped: list[dict[str, str]] = []
    for s in plan.get("stages", []):
        if s.get("kind") not in ("train", "adopt") or s.get("dataset") != dataset:
            continue
        path = run_dir(root, s)
        if not (path / CONFIG).is_file():
            skipped.append({"stage": s["id"], "reason": "not started"})
            continue
        try:
            curve = read_curve(path)
        except RnnlensError as exc:
            reason = "no validation yet" if "no validation yet" in str(exc) else str(exc).splitlines()[0]
            skipped.append({"stage": s["id"], "reason": reason})
            continue
        except (OSError, ValueError, KeyError) as exc:  # a config.json being replaced or damaged: skip it too
            skipped.append({"stage": s["id"], "reason": f"unreadable run ({type(exc).__name__}: {exc})"})
            continue
        s = dict(s, params={**_from_config(path), **(s.get("params") or {})})
        by_type.setdefault(s["params"]["cell"], []).append((s, replace(curve, label=legend(s["params"]))))
    order = {c: i for i, c in enumerate(CELL_ORDER)}
    return dict(sorted(by_type.items(), key=lambda kv: order.get(kv[0], len(order)))), skipped


def _finite(xs) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in xs]


def write_curves(root: str | os.PathLike, plan: dict[str, Any], dataset: str,
                 paper_best: float | None = None) -> dict[str, Any]:
    """Draw ``dataset``'s figure (when any run has a validation) and return what the report shows of it:
    ``figure`` (relative path or None), ``x``, ``paper_best``, ``runs`` (their plotted points), ``skipped``."""
    root = Path(root)
    by_type, skipped = gather(root, plan, dataset)
    runs = [{"stage": s["id"], **{k: s["params"][k] for k in ("cell", "layers", "budget", "dropout")},
             "label": c.label, "status": c.status, X: _finite(c.x(X)), "val_loss": _finite(c.val_loss)}
            for pairs in by_type.values() for s, c in pairs]
    out: dict[str, Any] = {"figure": None, "x": X, "paper_best": paper_best, "runs": runs, "skipped": skipped}
    if runs:
        plot_curve_grid({t: [c for _, c in pairs] for t, pairs in by_type.items()}, root / figure_path(dataset),
                        paper_best, X, f"{dataset}: validation loss of the training runs")
        out["figure"] = figure_path(dataset)
    return out


def curve_lines(c: dict[str, Any] | None) -> list[str]:
    """The figure's caption and notes, for the Markdown and the HTML report."""
    if not c:
        return ["not drawn (rebuild the report with `rnnlens report DIR`)"]
    out = []
    if c["runs"]:
        types = list(dict.fromkeys(r["cell"] for r in c["runs"]))
        out.append(f"Validation loss (nats/char) of {len(c['runs'])} training run(s) against {c['x']}, one panel per "
                   f"type ({', '.join(types)}); legend: layers, parameter budget, dropout."
                   + (f" Dashed: the paper's best test loss, {c['paper_best']:g} nats/char." if c["paper_best"]
                      is not None else " No published number for this corpus, so no paper line."))
    elif not c["skipped"]:
        out.append("No training run in the plan.")
    else:
        out.append("No training run has a validation yet: nothing to draw.")
    if c["skipped"]:
        out.append("Skipped: " + ", ".join(f"{s['stage']} ({s['reason']})" for s in c["skipped"]) + ".")
    return out
