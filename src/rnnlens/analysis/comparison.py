"""``rnnlens compare`` as a library call: a trained run against its n-gram (and n-NN) baselines.

Writes under ``out``: ``compare.json`` (everything), ``venn.png``, ``per_char.png`` + ``per_char.md``,
``by_context.md`` (the losses by the reference n-gram's matched context length, and the stretches of text
where the n-gram leads most), ``braces.png`` (text with braces), ``dynamics.png`` (runs with snapshots) and ``cache/`` (baseline scores
and n-NN models, reused by later calls). Baselines are fitted on the run's own train split; the "best"
n-gram / n-NN of the lists given is the one with the lowest *validation* loss, and each n-NN's hidden size is
chosen on validation over ``nnn_hiddens`` (or the tuned models of a ``rnnlens baselines`` folder are reused,
``nnn_from``). As in the paper, the Venn diagram shows the best n-gram and the best n-NN, while the
per-character table and the ``}``-distance figure compare against the ``reference_ngram`` (the 20-gram).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import plots
from .braces import DEFAULT_EDGES, bucket_means, match_braces
from ..capture.store import capture_split
from .compare import (context_buckets, dynamics_point, error_mask, per_char_stats, softmax, top_differences,
                      venn_counts, winning_stretches)
from ..exceptions import RnnlensError
from ..fsutil import atomic_write_json, atomic_write_text, record_path
from ..baselines.refscores import (fit_ngram, model_probs, ngram_matched, ngram_probs, ngram_row_distributions,
                                  nnn_models, nnn_module, nnn_probs)
from ..run import SNAPSHOTS, RunConfig, load_model, load_symbols, load_weights
from ..data.splits import make_splits
from ..data.text import symbols_to_text

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CompareConfig:
    """What ``rnnlens compare`` computes (defaults: the paper's settings where it has any)."""

    ngram_ns: tuple[int, ...] = (20,)
    nnn_ns: tuple[int, ...] = ()
    nnn_settings: dict[str, Any] = field(default_factory=dict)  # NNNConfig fields other than n and hidden
    nnn_hiddens: tuple[int, ...] = (128, 256, 512, 1024)  # hidden sizes tried per n-NN, best on validation kept
    nnn_from: str | None = None    # a `rnnlens baselines` output folder whose tuned n-NNs are reused
    reference_ngram: int = 20      # the n-gram of the per-character and brace comparisons (0: best on val)
    split: str = "test"
    threshold: float = 0.5
    top: int = 10
    min_count: int = 50            # characters seen fewer times in the split are left out of the top lists
    brace_edges: tuple[int, ...] = DEFAULT_EDGES
    dynamics: str = "auto"         # auto (n-NN when rnnlens.baselines.nnn exists, else n-gram), nnn, ngram, off
    dynamics_ns: tuple[int, ...] = (1, 2, 3, 4)
    max_chars: int = 100_000       # predictions used for the training dynamics (0: the whole split)
    context_edges: tuple[int, ...] = (0, 1, 3, 5, 10, 15, 20)  # buckets of the reference n-gram's matched context
    stretch_width: int = 200       # characters per stretch of text where the reference n-gram leads most
    stretches: int = 5             # how many such stretches are listed (0: none)

    def __post_init__(self) -> None:
        if not self.ngram_ns:
            raise RnnlensError("compare needs at least one n-gram; pass e.g. --ngram 5 20")
        if self.dynamics not in ("auto", "nnn", "ngram", "off"):
            raise RnnlensError(f"--dynamics must be auto, nnn, ngram or off, got {self.dynamics!r}")
        if not 0 < self.threshold <= 1:
            raise RnnlensError(f"--threshold must be in (0, 1], got {self.threshold}")
        if self.reference_ngram < 0:
            raise RnnlensError(f"--reference-ngram must be >= 0 (0: the best on validation), "
                               f"got {self.reference_ngram}")
        e = list(self.context_edges)
        if not e or e[0] != 0 or e != sorted(set(e)):
            raise RnnlensError(f"--context-buckets must be distinct, increasing and start at 0, got {e}")
        if not self.nnn_hiddens or any(h < 1 for h in self.nnn_hiddens):
            raise RnnlensError(f"--nnn-hidden needs hidden sizes >= 1, got {list(self.nnn_hiddens)}")


def _best(probs_val: dict[int, np.ndarray]) -> tuple[int, dict[int, float]]:
    losses = {n: float(-np.mean(np.log(np.maximum(p, 1e-30)))) for n, p in probs_val.items()}
    return min(losses, key=losses.get), losses


def _snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    out = []
    for p in sorted((run_dir / SNAPSHOTS).glob("step-*.safetensors")):
        try:
            out.append((int(p.stem.split("-")[1]), p))
        except (IndexError, ValueError):
            continue
    return out


def _dynamics(run_dir: Path, cfg: RunConfig, splits: dict, ccfg: CompareConfig, cache: Path, device: Any,
              say: Progress) -> dict | None:
    snaps = _snapshots(run_dir)
    if ccfg.dynamics == "off":
        return None
    if not snaps:
        return {"skipped": f"no snapshots in {run_dir.name}/{SNAPSHOTS}; train with --snapshot-every N"}
    kind = ccfg.dynamics
    if kind == "auto":
        try:
            nnn_module()
            kind = "nnn"
        except RnnlensError:
            kind = "ngram"
    sp = splits[ccfg.split]
    first = capture_split(load_weights(snaps[0][1], cfg, device)[0], sp, cfg.split.seq_len, names="logits",
                          max_chars=ccfg.max_chars)
    cols = first.x.shape[1]
    y = first.y.reshape(-1)
    refs: dict[str, np.ndarray] = {}
    if kind == "nnn":
        models = nnn_models(cfg, splits, list(ccfg.dynamics_ns), _nnn_base(ccfg), cache / "cache", device, say,
                            ccfg.nnn_hiddens, ccfg.nnn_from)
        for n, (m, _) in models.items():
            refs[f"{n}-NN"] = m.distributions_rows(sp.x[:, :cols]).reshape(-1, len(cfg.vocab))
    else:
        for n in ccfg.dynamics_ns:
            refs[f"{n}-gram"] = ngram_row_distributions(fit_ngram(cfg, splits, n), sp.x[:, :cols])
    points = []
    for k, (step, path) in enumerate(snaps):
        say(f"dynamics: snapshot {step} ({k + 1}/{len(snaps)})")
        cap = first if k == 0 else capture_split(load_weights(path, cfg, device)[0], sp, cfg.split.seq_len,
                                                 names="logits", max_chars=ccfg.max_chars)
        dist = softmax(cap["logits"].reshape(-1, len(cfg.vocab)))
        points.append({"step": step, **dynamics_point(dist, refs, y)})
    return {"reference": kind, "chars": int(len(y)), "refs": list(refs), "points": points}


def _nnn_base(ccfg: CompareConfig) -> Any:
    return nnn_module().NNNConfig.from_dict({**ccfg.nnn_settings, "n": 1, "hidden": ccfg.nnn_hiddens[0]})


def run_compare(run_dir: str | os.PathLike, out: str | os.PathLike, ccfg: CompareConfig = CompareConfig(),
                data_dir: str | os.PathLike | None = None, device: Any = "cpu",
                say: Progress = lambda _m: None) -> dict:
    """Compute every comparison, write figures and tables under ``out``, return the JSON-able result."""
    run_dir, out = Path(run_dir), Path(out)
    model, cfg, _ = load_model(run_dir, "best", device)
    symbols = load_symbols(cfg, data_dir)
    splits = make_splits(cfg.vocab.encode(symbols), cfg.split)
    if ccfg.split not in splits or splits[ccfg.split].num_chars == 0:
        raise RnnlensError(f"the {ccfg.split} split of this run is empty; choose another --split")
    sp = splits[ccfg.split]
    names = sorted({ccfg.split, "val"})
    say(f"scoring the {ccfg.split} split with the run's model")
    p_model = model_probs(model, sp, cfg.split.seq_len).reshape(-1)
    mname = cfg.model.cell.upper()
    ng = ngram_probs(cfg, splits, list(ccfg.ngram_ns), names, out / "cache", say)
    best_ng, ng_val = _best(ng["val"])
    probs = {mname: p_model, f"{best_ng}-gram": ng[ccfg.split][best_ng].reshape(-1)}
    result: dict[str, Any] = {"run": record_path(run_dir), "split": ccfg.split, "chars": int(sp.num_chars),
                              "threshold": ccfg.threshold, "model": mname,
                              "ngram": {"val_loss": ng_val, "best": best_ng}}
    if ccfg.nnn_ns:
        models = nnn_models(cfg, splits, list(ccfg.nnn_ns), _nnn_base(ccfg), out / "cache", device, say,
                            ccfg.nnn_hiddens, ccfg.nnn_from)
        nn = nnn_probs(models, splits, names, out / "cache")
        best_nn, nn_val = _best(nn["val"])
        probs[f"{best_nn}-NN"] = nn[ccfg.split][best_nn].reshape(-1)
        result["nnn"] = {"val_loss": nn_val, "best": best_nn, "hidden": {n: m.hidden for n, (m, _) in models.items()},
                         "source": {n: "baselines" if "-baselines-" in name else "trained"
                                    for n, (_, name) in models.items()},
                         "hiddens": list(ccfg.nnn_hiddens),
                         "from": record_path(ccfg.nnn_from) if ccfg.nnn_from else None}
    result["loss"] = {k: float(-np.mean(np.log(np.maximum(p, 1e-30)))) for k, p in probs.items()}
    errs = {k: error_mask(p, ccfg.threshold) for k, p in probs.items()}
    result["errors"] = {k: int(e.sum()) for k, e in errs.items()}
    result["venn"] = venn_counts(errs)
    plots.save_figure(plots.venn_figure(result["venn"], list(errs), f"errors (P < {ccfg.threshold}) on "
                                        f"{ccfg.split}, {sp.num_chars:,} chars"), out / "venn.png")

    ref = ccfg.reference_ngram or best_ng
    ngname = f"{ref}-gram"
    p_ref = (ng[ccfg.split][ref] if ref in ng[ccfg.split]
             else ngram_probs(cfg, splits, [ref], [ccfg.split], out / "cache", say)[ccfg.split][ref]).reshape(-1)
    result["reference_ngram"] = {"n": ref, "loss": float(-np.mean(np.log(np.maximum(p_ref, 1e-30)))),
                                 "chosen": "best on validation" if not ccfg.reference_ngram else "fixed"}
    cols = {mname: p_model, ngname: p_ref, **{k: v for k, v in probs.items() if k not in (mname, ngname)}}
    stats = per_char_stats(sp.y.reshape(-1), cols, cfg.vocab)
    top = top_differences(stats, mname, ngname, ccfg.top, ccfg.min_count)
    result["per_char"] = {"stats": stats, "top": top, "min_count": ccfg.min_count, "reference": ngname}
    atomic_write_text(out / "per_char.md", _per_char_md(top, list(cols)))
    plots.save_figure(plots.per_char_figure(top, mname, ngname, f"mean P(correct) per character, {ccfg.split}"),
                      out / "per_char.png")

    matched = ngram_matched(cfg, splits, ref, ccfg.split, out / "cache", say)
    result["by_context"] = _by_context(symbols, cfg, sp, matched, {mname: p_model, ngname: p_ref}, ref, ccfg, out)
    result["braces"] = _braces(symbols, cfg, sp, {mname: p_model, ngname: p_ref}, ccfg, out)
    dyn = _dynamics(run_dir, cfg, splits, ccfg, out, device, say)
    if dyn is not None:
        result["dynamics"] = dyn
        if "points" in dyn:
            plots.save_figure(plots.dynamics_figure([p["step"] for p in dyn["points"]], dyn["points"], dyn["refs"],
                                                    f"{mname} during training vs {'n-NN' if dyn['reference'] == 'nnn' else 'n-gram'} models "
                                                    f"({dyn['chars']:,} chars)"), out / "dynamics.png")
    atomic_write_json(out / "compare.json", result)
    return result


def _braces(symbols: np.ndarray, cfg: RunConfig, sp: Any, probs: dict[str, np.ndarray], ccfg: CompareConfig,
            out: Path) -> dict:
    if ord("}") not in cfg.vocab.symbols:
        return {"skipped": "this text has no '}'"}
    close_id = cfg.vocab.symbols.index(ord("}"))
    match = match_braces(symbols)
    targets = sp.positions().reshape(-1) + 1
    dist = match.distances(len(symbols))[targets]
    is_close = sp.y.reshape(-1) == close_id
    sel = is_close & (dist >= 1)
    rows = bucket_means(dist[sel], {k: p[sel] for k, p in probs.items()}, ccfg.brace_edges)
    plots.save_figure(plots.brace_figure(rows, list(probs), f"closing braces in the {ccfg.split} split "
                                         f"({int(sel.sum()):,} matched)"), out / "braces.png")
    return {"closing": int(is_close.sum()), "matched": int(sel.sum()), "unmatched": int((is_close & ~sel).sum()),
            "buckets": rows}


def _by_context(symbols: np.ndarray, cfg: RunConfig, sp: Any, matched: np.ndarray, probs: dict[str, np.ndarray],
                n: int, ccfg: CompareConfig, out: Path) -> dict:
    """The loss of the model and the reference n-gram by the n-gram's matched context length, and the
    stretches of the split where the n-gram leads most (verbatim repeats of the training text show there)."""
    model, ngram = list(probs)
    loss = {k: -np.log(np.maximum(p, 1e-30)) for k, p in probs.items()}  # (M,) nats
    edges = tuple(e for e in ccfg.context_edges if e <= n) or (0,)
    rows = context_buckets(matched.reshape(-1), loss, edges)
    diff = (loss[model] - loss[ngram]).reshape(sp.x.shape)  # (B, N): > 0 where the n-gram is better
    starts = sp.positions() + 1  # (B, N) text offset of each predicted character
    stretches = []
    for r, j, mean in winning_stretches(diff, ccfg.stretch_width, ccfg.stretches):
        a = int(starts[r, j])
        stretches.append({"row": r, "column": j, "offset": a, "mean_lead": mean,
                          "text": symbols_to_text(symbols[a:a + ccfg.stretch_width], cfg.vocab.unit),
                          "matched_full": float(np.mean(matched[r, j:j + ccfg.stretch_width] >= n))})
    lead = float(np.mean(diff))
    atomic_write_text(out / "by_context.md", _by_context_md(rows, stretches, model, ngram, n, lead, ccfg, diff.size))
    return {"n": n, "edges": list(edges), "buckets": rows, "lead": lead, "stretches": stretches}


def _by_context_md(rows: list[dict], stretches: list[dict], model: str, ngram: str, n: int, lead: float,
                   ccfg: CompareConfig, chars: int) -> str:
    fence = "`" * 3
    lines = [f"Loss (nats/char) of {model} and the {ngram} by the context length the {ngram} matched "
             f"({ccfg.split} split, {chars:,} characters). Overall the {ngram} is "
             f"{'ahead' if lead > 0 else 'behind'} by {abs(lead):.4f}; 'part of the gap' is each bucket's part of "
             f"{model} - {ngram} (the parts add up to the overall difference).", "",
             f"| matched context | chars | share | {model} | {ngram} | part of the gap |", "|---|---|---|---|---|---|"]
    for row in rows:
        hi = row["hi"]
        span = f"{row['lo']}+" if hi is None else str(row["lo"]) if hi == row["lo"] + 1 else f"{row['lo']}-{hi - 1}"
        if row["count"]:
            lines.append(f"| {span} | {row['count']:,} | {100 * row['share']:.1f}% | {row[model]:.3f} | "
                         f"{row[ngram]:.3f} | {row[model + ' total'] - row[ngram + ' total']:+.4f} |")
    if stretches:
        lines += ["", f"The {len(stretches)} stretches of {ccfg.stretch_width} characters where the {ngram} leads most:"]
        for k, st in enumerate(stretches, 1):
            lines += ["", f"{k}. offset {st['offset']:,}: lead {st['mean_lead']:.3f} nats/char, the full {n}-character "
                          f"context matched for {100 * st['matched_full']:.0f}% of it", "", fence,
                      st["text"].replace(fence, "'''"), fence]
    return "\n".join(lines) + "\n"


def _per_char_md(top: dict[str, list[dict]], models: list[str]) -> str:
    lines = []
    for key in ("gains", "losses"):
        lines += [f"### {models[0]} {key} vs {models[1]}", "",
                  "| char | count | " + " | ".join(models) + " | difference |", "|" + "---|" * (len(models) + 3)]
        for r in top[key]:
            lines.append(f"| {r['char'].replace('|', chr(92) + '|')} | {r['count']:,} | " + " | ".join(f"{r[m]:.3f}" for m in models)
                         + f" | {r['diff']:+.3f} |")
        lines.append("")
    return "\n".join(lines)
