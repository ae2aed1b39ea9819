"""results.json, summary.md and report.html of a reproduction, built only from the stage records on disk.

``collect`` gathers plan.json and every stage's ``stage.json`` into one results dict with provenance
(rnnlens version, git commit, machine, device, dates, wall time of each stage and part); ``write_report``
writes the three files atomically, and the training curves of every corpus (:mod:`.report_curves`, drawn from
the runs' metrics.jsonl into ``figures/``). Nothing is recomputed, so ``rnnlens report DIR`` can rebuild them at
any time. The HTML page is self-contained: figures are inline base64 PNGs, no script, no network.
"""

from __future__ import annotations

import base64
import html
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..exceptions import RnnlensError
from ..fsutil import atomic_write_json, atomic_write_text, read_json
from ..model import parse_budget
from .executor import FAILED, PLAN
from .report_curves import curve_lines, write_curves
from .stages import read_record, stage_dir

FORMAT = "rnnlens-reproduce-results-v1"
# The paper's published numbers (PAPER.md), nats per character on test.
PAPER = {"warpeace": {"best_rnn": 1.077, "ngram20": 1.195, "lstm_errors_pct": 42.0},
         "linux": {"best_rnn": 0.84, "ngram20": 0.889}}
PAPER_DATA = {"warpeace": "War and Peace, 3,258,250 bytes, K=87, split 80/10/10",
              "linux": "Linux Kernel, 6,206,996 bytes (the paper's own file is not public; K=110 here, 101 there), "
                       "split 90/5/5"}
PAPER_ORACLES = {"error_rate": 0.42, "ngram": 0.18, "memory": 0.06, "rare": 0.09, "word": 0.37,
                 "small_error_rate": 0.56, "extra_ngram_share": 0.81}


def git_commit() -> str:
    """The commit of the rnnlens source tree, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               cwd=Path(__file__).resolve().parent, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+modified" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def collect(root: str | os.PathLike) -> dict[str, Any]:
    """Every result of the reproduction in ``root`` with its provenance (raises if root holds none)."""
    root = Path(root)
    if not (root / PLAN).is_file():
        raise RnnlensError(f"{root} holds no reproduction (no {PLAN}); run `rnnlens reproduce --out {root}` first")
    plan = read_json(root / PLAN)
    stages: dict[str, Any] = {}
    per_dataset: dict[str, dict[str, Any]] = {ds: {} for ds in plan["datasets"]}
    wall_by_kind: dict[str, float] = {}
    for s in plan["stages"]:
        rec = read_record(root, s["id"])
        failed = stage_dir(root, s["id"]) / FAILED
        if rec is not None:
            stages[s["id"]] = {"status": "done", "wall_s": rec["wall_s"], "finished": _iso(rec["finished"])}
            wall_by_kind[s["kind"]] = wall_by_kind.get(s["kind"], 0.0) + rec["wall_s"]
            if s["kind"] not in ("data", "train", "adopt"):
                per_dataset.setdefault(s["dataset"], {})[s["kind"]] = rec["result"]
        elif failed.is_file():
            stages[s["id"]] = {"status": "failed", "error": read_json(failed)["error"].splitlines()[0]}
        else:
            stages[s["id"]] = {"status": "not run"}
    inv = plan.get("invocations") or [{}]
    provenance = {"rnnlens_version": __version__, "git_commit": git_commit(), "machine": inv[-1].get("machine"),
                  "device": inv[-1].get("device"), "workers": inv[-1].get("workers"),
                  "started": inv[0].get("date"), "last_run": inv[-1].get("date"),
                  "report_written": _iso(time.time()), "wall_s_by_part": {k: round(v, 1) for k, v in wall_by_kind.items()},
                  "compute_s_total": round(sum(wall_by_kind.values()), 1), "invocations": plan.get("invocations", [])}
    return {"format": FORMAT, "preset": plan["preset"], "settings": plan["settings"], "datasets": plan["datasets"],
            "provenance": provenance, "paper": PAPER, "results": per_dataset, "stages": stages}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def write_report(root: str | os.PathLike) -> dict[str, Any]:
    """Write results.json, summary.md and report.html under ``root``; returns the results dict."""
    root = Path(root)
    results = collect(root)
    plan = read_json(root / PLAN)
    for ds in results["datasets"]:  # the training curves: drawn here, from the runs' metrics.jsonl
        paper_best = PAPER.get(ds, {}).get("best_rnn")
        results["results"].setdefault(ds, {})["curves"] = write_curves(root, plan, ds, paper_best)
    atomic_write_json(root / "results.json", results)
    atomic_write_text(root / "summary.md", "\n".join(markdown_lines(results)) + "\n")
    atomic_write_text(root / "report.html", render_html(results, root))
    return results


# ----- the content, in the paper's order ---------------------------------------------------------------------
def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def differences(results: dict[str, Any]) -> list[str]:
    """What differs from the paper, stated plainly."""
    st = results["settings"]
    out = [f"Preset `{results['preset']}`: {st['about']}."]
    if st["slice_bytes"]:
        out.append(f"Data: only the first {st['slice_bytes']:,} bytes of each corpus (the paper: all of it).")
    out.append(f"Grid: types {', '.join(st['cells'])}; depths {', '.join(map(str, st['depths']))}; budgets "
               f"{', '.join(st['budgets'])} (the paper: rnn/lstm/gru x 1-3 layers x 50k-1.3m).")
    steps = f", at most {st['max_steps']} updates" if st["max_steps"] else ""
    adopted = [r for r in st.get("runs", []) if r.get("model") and r["dataset"] in results["datasets"]]
    if adopted:  # the adopt stages' records say how each model was trained
        where = (results["provenance"].get("invocations") or [{}])[-1].get("models_dir", "the models folder")
        out.append(f"Training: none in this reproduction; it adopts models trained beforehand, from {where} "
                   f"(relative to this folder): {', '.join(r['model'] for r in adopted)}; each one's recipe is in its "
                   "README.md and config.json, its epochs, updates and learning rate in its stage record (stages/train).")
    else:
        out.append(f"Training: {st['epochs']:g} epoch(s){steps} at batch {st['batch_size']} x unroll {st['seq_len']} "
                   "(the paper: 50 epochs at 100 x 100); dropout chosen on validation among "
                   f"{', '.join(f'{d:g}' for d in st['dropouts'])} (the paper's values are not published).")
        if st.get("lr_pilot"):
            pilot = f"{st['pilot_steps']} updates" if st.get("pilot_steps") else "one epoch"
            out.append(f"Learning rate: chosen per model on validation after a pilot run of {pilot} per candidate "
                       f"among {', '.join(f'{x:g}' for x in st['lr_pilot'])} (the paper: 2e-3 for every model); "
                       "the lr column of Table 1.")
    out.append(f"Table 2: rnnlens.baselines.table preset `{st['baseline']}`. Analyses on {st['analysis_chars']:,} test "
               "characters. The map of models uses classical MDS (numpy) instead of the paper's t-SNE.")
    names = {"gates": "gate saturation (Fig. 3)", "cells": "interpretable cells (Fig. 2)",
             "compare": "the comparisons with the baselines (Fig. 4, 5)", "errors": "the oracle analysis (Fig. 6)",
             "modelmap": "the map of models (suppl.)"}
    missing = [v for k, v in names.items() if k not in st["analyses"]]
    if missing:
        out.append(f"Not part of this preset: {', '.join(missing)}.")
    return out


def compare_lines(res: dict[str, Any]) -> list[str]:
    """Figures 4 and 5 in words: losses, error counts and overlap, where the LSTM gains most, training dynamics."""
    c = res.get("compare")
    if not c:
        return ["not run"]
    out = [f"Test loss (nats/char) over {c['chars']:,} chars: " + ", ".join(f"{k} {v:.3f}" for k, v in c["loss"].items()),
           "Errors (P(correct) < 0.5): " + ", ".join(f"{k} {v:,}" for k, v in c["errors"].items()) + "; overlap: "
           + ", ".join(f"{k} {v:,}" for k, v in c["venn"].items() if k != "none"),
           f"{c['model']} gains most on: " + ", ".join(str(r["char"]) for r in c["top"].get("gains", [])),
           "Paper (LK): the LSTM's lead on '}' grows with the distance to its '{' up to about 60 characters; "
           f"ours: {c['braces'].get('matched', 0):,} matched closing braces" + (f" ({c['braces']['skipped']})"
                                                                                if "skipped" in c["braces"] else "")]
    dyn = c.get("dynamics") or {}
    if dyn.get("points"):
        firsts = [min(p["refs"], key=lambda r: p["refs"][r]["skl"]) for p in dyn["points"]]
        out.append(f"Training dynamics ({len(dyn['points'])} snapshots): reference with the lowest symmetric KL per snapshot "
                   f"{' -> '.join(firsts)} (paper: 1-NN first, then 2-, 3-, 4-NN).")
    elif dyn.get("skipped"):
        out.append(f"Training dynamics: {dyn['skipped']}")
    return out


def errors_lines(res: dict[str, Any], ds: str) -> list[str]:
    """Figure 6 in words, beside the paper's War and Peace numbers."""
    e = res.get("errors")
    if not e:
        return ["not run"]
    out = []
    for name, m in e["models"].items():
        fam = m["families"]
        out.append(f"{name}: {m['errors']:,} errors of {m['chars']:,} chars ({100 * m['error_rate']:.0f}%); removed by "
                   + ", ".join(f"{k} {100 * fam[k]['share']:.0f}%" for k in ("ngram", "memory", "rare", "word", "punct",
                                                                             "boost")) + f"; remaining {m['remaining']:,}")
    if ds == "warpeace":
        p = PAPER_ORACLES
        out.append(f"Paper (WP, best LSTM): errors {100 * p['error_rate']:.0f}%; n-gram {100 * p['ngram']:.0f}%, dynamic "
                   f"memory {100 * p['memory']:.0f}%, rare words {100 * p['rare']:.0f}%, word model {100 * p['word']:.0f}%;"
                   f" 50K LSTM {100 * p['small_error_rate']:.0f}% errors, {100 * p['extra_ngram_share']:.0f}% of its "
                   "extra errors are n-gram errors.")
    if e.get("scaling"):
        sc = e["scaling"]
        line = f"{sc['stronger']} makes {sc['error_difference']:,} fewer errors than {sc['weaker']}"
        shares = [(k, d["share"]) for k, d in sc["by_family"].items() if d.get("share") is not None]
        if shares:
            line += "; the difference by oracle: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares)
            if ds == "warpeace":
                line += f" (paper: n-gram {100 * PAPER_ORACLES['extra_ngram_share']:.0f}%)"
        out.append(line + ".")
    return out


TABLE1_HEAD = ["type", "layers", "budget", "params", "hidden", "dropout", "lr", "val", "test"]


def table1_rows(res: dict[str, Any]) -> list[list[str]]:
    order = {"rnn": 0, "lstm": 1, "gru": 2}  # the paper's order; budgets by size (any K keeps their order)
    rows = sorted((res.get("select") or {}).get("rows", []),
                  key=lambda r: (parse_budget(r["budget"], 100), order.get(r["cell"], 3), r["layers"]))
    return [[r["cell"], str(r["layers"]), r["budget"], f"{r['params']:,}", str(r["hidden"]), f"{r['dropout']:g}",
             f"{r['lr']:g}" if r.get("lr") is not None else "-", _f(r["best_val_loss"]), _f(r["test_loss_nats"])]
            for r in rows]


def table2_rows(res: dict[str, Any]) -> list[list[str]]:
    entries = (res.get("baselines") or {}).get("entries", {})
    ns = sorted({int(e["n"]) for e in entries.values()})
    return [[str(n), _f((entries.get(f"ngram/{n}") or {}).get("test_loss")),
             _f((entries.get(f"nnn/{n}") or {}).get("test_loss"))] for n in ns]


def paper_lines(ds: str, res: dict[str, Any]) -> list[str]:
    p = PAPER.get(ds)
    sel = (res.get("select") or {}).get("best")
    ours = f"ours: best model {sel['layers']}-layer {sel['cell']} {sel['budget']}, test {_f(sel['test_loss_nats'])}" \
        if sel else "ours: no finished model"
    if not p:
        return [f"No published numbers for {ds} (not a corpus of the paper); {ours}."]
    e = (res.get("baselines") or {}).get("entries", {})
    ng = max((v for v in e.values() if v["family"] == "ngram"), key=lambda v: v["n"], default=None)
    ng_txt = f"ours: largest n-gram run (n={ng['n']}) {_f(ng['test_loss'])}" if ng else "ours: none run"
    return [f"Paper, best recurrent net: {p['best_rnn']} nats/char; {ours}.",
            f"Paper, 20-gram: {p['ngram20']} nats/char; {ng_txt}.", f"Paper's data: {PAPER_DATA[ds]}."]


def findings_lines(res: dict[str, Any]) -> list[str]:
    """The paper's qualitative Table 1 and Figure 3 findings beside what our numbers show."""
    out = []
    rows = (res.get("select") or {}).get("rows", [])
    if rows:
        def best(key: str) -> str:
            groups: dict[Any, float] = {}
            for r in rows:
                groups[r[key]] = min(groups.get(r[key], float("inf")), r["test_loss_nats"])
            return ", ".join(f"{k} {v:.3f}" for k, v in sorted(groups.items(), key=lambda kv: str(kv[0])))
        out.append("Paper: depth >= 2 helps, 2 vs 3 layers is mixed; LSTM and GRU are close and far better than the "
                   f"RNN. Ours, best test loss by type: {best('cell')}; by depth: {best('layers')}.")
    for g in (res.get("gates") or {}).get("models", []):
        forget = [r for r in g["summary"] if r["gate"] in ("forget_gate", "update_gate")]
        if forget:
            out.append(f"Paper: some forget gates are right-saturated almost always, none left-saturated always, "
                       f"first-layer gates diffuse. Ours ({g['cell']}, {forget[0]['gate']}"
                       f"{' = PyTorch z, the paper has 1 - z' if g['cell'] == 'gru' else ''}): "
                       + "; ".join(f"layer {r['layer']}: {r['mostly_right']} of {r['units']} units mostly right, "
                                   f"{r['mostly_left']} mostly left" for r in forget))
    return out


INVOCATION_HEAD = ["date", "commit", "device", "workers", "torch"]


def invocation_rows(pv: dict[str, Any]) -> list[list[str]]:
    """One row per reproduce invocation; the commit is what ran the stages (older records lack it)."""
    return [[str(i.get("date", "-")), str(i.get("git_commit", "not recorded")), str(i.get("device", "-")),
             str(i.get("workers", "-")), str(i.get("torch", "-"))] for i in pv.get("invocations", [])]


CENSUS_NOTE = ("For every trained model, the share (%) of its cells (LSTM: tanh(c); GRU, RNN: h) that pass the "
               "discovery thresholds (|r| >= 0.5 for a graded feature, AUC >= 0.9 for a binary one) on the test split, "
               "per text feature; 'any memory feature' counts a cell once.")


def markdown_lines(results: dict[str, Any]) -> list[str]:
    pv = results["provenance"]
    lines = [f"# rnnlens reproduction ({results['preset']} preset)", "",
             f"rnnlens {pv['rnnlens_version']}, report written by commit {pv['git_commit']}, machine {pv['machine']}, "
             f"device {pv['device']}, last run {pv['last_run']}, compute {pv['compute_s_total']} s.", "",
             "Invocations (each ran the stages that were not yet up to date):", ""]
    lines += _md_table(INVOCATION_HEAD, invocation_rows(pv)) + ["", "## What differs", ""]
    lines += [f"- {d}" for d in differences(results)]
    for ds in results["datasets"]:
        res = results["results"].get(ds, {})
        lines += ["", f"## {ds}", "", "### Table 1: test loss of the grid (nats/char)", ""]
        lines += [f"- {x}" for x in paper_lines(ds, res)] + [""]
        lines += _md_table(TABLE1_HEAD, table1_rows(res))
        lines += [""] + [f"- {x}" for x in findings_lines(res)]
        lines += ["", f"### Training curves ({ds})", ""]
        if (res.get("curves") or {}).get("figure"):
            lines += [f"![validation loss against epochs, {ds}]({res['curves']['figure']})", ""]
        lines += [f"- {x}" for x in curve_lines(res.get("curves"))]
        lines += ["", "### Table 2: n-gram and n-NN test loss (nats/char)", ""]
        lines += _md_table(["n", "n-gram", "n-NN"], table2_rows(res))
        cells = res.get("cells")
        if cells:
            lines += ["", f"### Figure 2: interpretable cells ({cells['model']['cell']}, "
                      f"{cells['model']['layers']}-layer): {100 * cells['fraction_interpretable']:.1f}% of "
                      f"{cells['n_cells']} cells", ""]
            lines += _md_table(["feature", "best cell", "score"], [[f["name"], f["best"]["layer"] + ":" +
                               str(f["best"]["index"]) if f["best"] else "-", _f(f["best"]["score"]) if f["best"]
                               else f["skipped"] or "-"] for f in cells["features"]])
        for g in (res.get("gates") or {}).get("models", []):
            lines += ["", f"### Figure 3: gate saturation, {g['cell']} ({g['steps']:,} steps)", ""]
            lines += _md_table(["layer", "gate", "mean left", "mean right", "mostly right"],
                               [[str(r["layer"]), r["gate"], _f(r["mean_left"]), _f(r["mean_right"]),
                                 str(r["mostly_right"])] for r in g["summary"]])
        lines += ["", "### Figures 4, 5: LSTM against the n-gram and n-NN", ""] + [f"- {x}" for x in compare_lines(res)]
        lines += ["", "### Figure 6: errors by oracles", ""] + [f"- {x}" for x in errors_lines(res, ds)]
        if res.get("census"):
            lines += ["", "### Census of interpretable cells (not in the paper)", "", CENSUS_NOTE, "",
                      res["census"]["table"].rstrip()]
    lines += ["", "## Stages", ""]
    lines += _md_table(["stage", "status", "wall s"], [[k, v["status"] + (f": {v['error']}" if "error" in v else ""),
                                                       _f(v.get("wall_s"), 1)] for k, v in results["stages"].items()])
    return lines


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(not available)"]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _img(root: Path, path: str | None, alt: str) -> str:
    if not path or not (root / path).is_file():
        return f"<p><em>figure missing: {html.escape(alt)}</em></p>"
    data = base64.b64encode((root / path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f"{html.escape(alt)}</figcaption></figure>"


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p><em>not available</em></p>"
    h = "".join(f"<th>{html.escape(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def render_html(results: dict[str, Any], root: Path) -> str:
    """One self-contained page, sections in the paper's order."""
    parts = [f"<h1>rnnlens reproduction ({html.escape(results['preset'])} preset)</h1>"]
    pv = results["provenance"]
    parts.append(_html_table(["rnnlens", "report written by commit", "machine", "device", "last run", "compute s"],
                             [[str(pv[k]) for k in ("rnnlens_version", "git_commit", "machine", "device", "last_run",
                                                    "compute_s_total")]]))
    parts.append("<p>Invocations (each ran the stages that were not yet up to date):</p>"
                 + _html_table(INVOCATION_HEAD, invocation_rows(pv)))
    parts.append("<h2>What differs from the paper</h2><ul>" + "".join(f"<li>{html.escape(d)}</li>"
                                                                     for d in differences(results)) + "</ul>")
    for ds in results["datasets"]:
        res = results["results"].get(ds, {})
        parts.append(f"<h2>{html.escape(ds)}</h2><h3>Table 1: test loss of the grid (nats/char)</h3>")
        parts.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in paper_lines(ds, res)) + "</ul>")
        parts.append(_html_table(TABLE1_HEAD,
                                 table1_rows(res)))
        parts.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in findings_lines(res)) + "</ul>")
        parts.append(f"<h3>Training curves ({html.escape(ds)})</h3>")
        if (res.get("curves") or {}).get("figure"):
            parts.append(_img(root, res["curves"]["figure"], f"validation loss against epochs, {ds}"))
        parts.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in curve_lines(res.get("curves"))) + "</ul>")
        cells = res.get("cells")
        parts.append("<h3>Figure 2: interpretable cells</h3>")
        if cells:
            parts.append(f"<p>{100 * cells['fraction_interpretable']:.1f}% of {cells['n_cells']} cells of the best "
                         f"{html.escape(cells['model']['cell'])} track a memory feature.</p>")
            parts += [_img(root, f["figure"], f"{f['name']}: {f['best']['layer']}:{f['best']['index']} "
                           f"(score {f['best']['score']:.3f})") for f in cells["features"] if f["figure"] and f["best"]]
            parts.append(_img(root, cells["histogram"], "histogram of tanh(c) (paper: peaks at +-0.76)"))
        parts.append("<h3>Figure 3: gate saturation</h3>")
        for g in (res.get("gates") or {}).get("models", []):
            parts.append(_img(root, g["figure"], f"{g['layers']}-layer {g['cell']} {g['budget']}"))
        parts.append("<h3>Table 2: n-gram and n-NN baselines (test, nats/char)</h3>")
        parts.append(_html_table(["n", "n-gram", "n-NN"], table2_rows(res)))
        parts.append(_img(root, (res.get("baselines") or {}).get("figure"), "Table 2 against n"))
        parts.append("<h3>Figures 4, 5: LSTM against the n-gram and n-NN</h3><ul>" + "".join(
            f"<li>{html.escape(x)}</li>" for x in compare_lines(res)) + "</ul>")
        for name, path in ((res.get("compare") or {}).get("figures") or {}).items():
            parts.append(_img(root, path, name.replace("_", " ")))
        parts.append("<h3>Figure 6: errors by oracles</h3><ul>" + "".join(
            f"<li>{html.escape(x)}</li>" for x in errors_lines(res, ds)) + "</ul>")
        if res.get("errors"):
            parts.append(_img(root, res["errors"]["figure"], "error breakdown by oracles"))
        if res.get("census"):
            from ..cells.census import census_table

            parts.append(f"<h3>Census of interpretable cells (not in the paper)</h3><p>{html.escape(CENSUS_NOTE)}</p>")
            parts.append(_html_table(*census_table(res["census"]["rows"])))
            parts.append(_img(root, res["census"]["figure"], "share of each model's cells over the thresholds"))
        mm = res.get("modelmap")
        parts.append("<h3>Supplementary: map of the models</h3>")
        if mm:
            parts.append(_img(root, mm["figure"], f"models by agreement on the argmax over {mm['chars']:,} test "
                              "characters (classical MDS; the paper used t-SNE)"))
    parts.append("<h2>Stages</h2>")
    parts.append(_html_table(["stage", "status", "wall s"], [[k, v["status"] + (f": {v['error']}" if "error" in v
                              else ""), _f(v.get("wall_s"), 1)] for k, v in results["stages"].items()]))
    style = ("body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>rnnlens reproduction</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
