"""Reference models fitted on a run's own train split, their per-character scores, and a cache for them.

The analyses compare a run's recurrent model with n-gram and n-NN models of the same text, split and
vocabulary. Fitting a WP 9-gram takes seconds, scoring it too, so the *scores* (the probability of every
correct character of a split, (B, N) float32) are cached as ``.npz`` files under a cache folder, keyed by
a fingerprint of the run's data (corpus checksum, text, split and vocabulary settings): runs on the same
data share them, and a changed setting never reads a stale file. n-NN models are cached whole.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..capture.store import capture_split
from ..exceptions import RnnlensError
from ..fsutil import atomic_write, read_json
from ..model import CharRNN
from ..ngram.model import KneserNeyLM, NGramConfig, row_streams
from ..run import RunConfig
from ..data.splits import Split

log = logging.getLogger(__name__)
CACHE_FORMAT = "rnnlens-baseline-scores-v1"


def data_fingerprint(cfg: RunConfig) -> str:
    """12 hex digits identifying the run's text, split layout and vocabulary (not its model)."""
    d = cfg.to_dict()
    key = json.dumps({k: d[k] for k in ("source", "text", "split", "vocab")}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def model_probs(model: CharRNN, split: Split, seq_len: int) -> np.ndarray:
    """(B, N) float32 probability the model gives each correct character of ``split`` (state carried)."""
    with torch.no_grad():
        return np.asarray(capture_split(model, split, seq_len, names="next_prob")["next_prob"], dtype=np.float32)


def _save_scores(path: Path, probs: np.ndarray, meta: dict) -> None:
    header = np.frombuffer(json.dumps({"format": CACHE_FORMAT, **meta}).encode(), dtype=np.uint8)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, header=header, probs=probs.astype(np.float32))

    atomic_write(path, write)


def _load_scores(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """Cached scores, or None when the file is missing, damaged or of another shape (then it is refitted)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            head = json.loads(bytes(z["header"]).decode())
            probs = np.asarray(z["probs"], dtype=np.float32)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        log.warning("ignoring unreadable cache file %s", path)
        return None
    if head.get("format") != CACHE_FORMAT or probs.shape != shape:
        return None
    return probs


def cached_scores(cache_dir: str | os.PathLike | None, name: str, shape: tuple[int, ...],
                  compute: Callable[[], np.ndarray], meta: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """Scores from ``cache_dir/name.npz`` when present, else ``compute()`` (saved there). Returns (probs, hit)."""
    path = Path(cache_dir) / f"{name}.npz" if cache_dir is not None else None
    if path is not None:
        got = _load_scores(path, shape)
        if got is not None:
            return got, True
    probs = np.asarray(compute(), dtype=np.float32)
    if path is not None:
        _save_scores(path, probs, meta)
    return probs, False


def fit_ngram(cfg: RunConfig, splits: dict[str, Split], n: int) -> KneserNeyLM:
    """The n-gram (context n) fitted on the run's train split, each train row a separate stream."""
    tr = splits["train"]
    return KneserNeyLM.fit_streams(row_streams(tr.x, tr.y), len(cfg.vocab), NGramConfig(n),
                                   unit=cfg.vocab.unit, symbols=cfg.vocab.symbols)


def ngram_probs(cfg: RunConfig, splits: dict[str, Split], ns: list[int], split_names: list[str],
                cache_dir: str | os.PathLike | None,
                progress: Callable[[str], None] | None = None) -> dict[str, dict[int, np.ndarray]]:
    """split name -> n -> (B, N) probability of each correct character under the n-gram (cached)."""
    fp = data_fingerprint(cfg)
    out: dict[str, dict[int, np.ndarray]] = {s: {} for s in split_names}
    for n in ns:
        model: list[KneserNeyLM] = []

        def get() -> KneserNeyLM:
            if not model:
                if progress:
                    progress(f"fitting the {n}-gram on the train split")
                model.append(fit_ngram(cfg, splits, n))
            return model[0]

        for s in split_names:
            sp = splits[s]
            meta = {"kind": "ngram", "n": n, "split": s, "fingerprint": fp}

            def compute() -> np.ndarray:  # the matched context lengths come for free: keep them too
                logp, matched = get().score_rows(sp.x, sp.y)
                if cache_dir is not None:
                    _save_scores(Path(cache_dir) / f"ngram-{n}-{s}-{fp}-matched.npz", matched.astype(np.float32),
                                 {**meta, "kind": "ngram-matched"})
                return np.exp(logp)

            out[s][n], _ = cached_scores(cache_dir, f"ngram-{n}-{s}-{fp}", sp.x.shape, compute, meta)
    return out


def ngram_matched(cfg: RunConfig, splits: dict[str, Split], n: int, split_name: str,
                  cache_dir: str | os.PathLike | None, progress: Callable[[str], None] | None = None) -> np.ndarray:
    """(B, N) int64: the context length the n-gram matched for each character of the split (kenlm's
    ``full_scores`` length minus one: n when the whole n-character context occurred in training). Cached
    beside the scores; fits the n-gram only when the cache lacks them."""
    fp, sp = data_fingerprint(cfg), splits[split_name]

    def compute() -> np.ndarray:
        if progress:
            progress(f"fitting the {n}-gram on the train split (matched context lengths)")
        return fit_ngram(cfg, splits, n).score_rows(sp.x, sp.y)[1]

    got, _ = cached_scores(cache_dir, f"ngram-{n}-{split_name}-{fp}-matched", sp.x.shape, compute,
                           {"kind": "ngram-matched", "n": n, "split": split_name, "fingerprint": fp})
    return np.rint(got).astype(np.int64)


def ngram_row_distributions(model: KneserNeyLM, x: np.ndarray) -> np.ndarray:
    """(B, N) row inputs -> (B*N, K) next-character distributions, each row's context only (row-major)."""
    x = np.asarray(x, dtype=np.int64)
    pad = np.full((x.shape[0], model.n - 1), -1, dtype=np.int64)
    win = np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, x], axis=1), model.n, axis=1)
    return model.next_distributions(win.reshape(-1, model.n))


def nnn_module():
    """``rnnlens.baselines.nnn`` (the n-NN baseline), or a one-line error when this installation lacks it."""
    try:
        return importlib.import_module("rnnlens.baselines.nnn")
    except ModuleNotFoundError as exc:
        if exc.name != "rnnlens.baselines.nnn":
            raise
        raise RnnlensError("the n-NN baseline (rnnlens.baselines.nnn) is not available in this version; "
                           "leave out --nnn") from None


def check_baselines_dir(from_dir: str | os.PathLike, cfg: RunConfig) -> Path:
    """A ``rnnlens baselines`` output folder whose models were trained on this run's text, split and unit."""
    d = Path(from_dir)
    try:
        setup = read_json(d / "results.json")["setup"]
    except (OSError, ValueError, KeyError, TypeError):
        raise RnnlensError(f"{d} is not a baselines output folder (no readable results.json); pass the --out of "
                           "`rnnlens baselines` or the reproduction's stages/baselines/<corpus> folder") from None
    mine = json.loads(json.dumps({"text": cfg.text.to_dict(), "split": cfg.split.to_dict()}))
    if any(setup.get(k) != v for k, v in mine.items()) or (cfg.source.sha256 and setup.get("sha256")
                                                            not in (None, cfg.source.sha256)):
        raise RnnlensError(f"the baselines in {d} were trained on another text, unit or split than this run; "
                           "pass a baselines folder of the same data, or leave out --nnn-from")
    return d


def nnn_models(cfg: RunConfig, splits: dict[str, Split], ns: list[int], base: Any,
               cache_dir: str | os.PathLike | None, device: torch.device | str = "cpu",
               progress: Callable[[str], None] | None = None, hiddens: Sequence[int] | None = None,
               from_dir: str | os.PathLike | None = None) -> dict[int, tuple[Any, str]]:
    """n -> (the n-NN of context n for the run's train split, its cache name).

    With ``from_dir`` (a ``rnnlens baselines`` output folder of the same data, see :func:`check_baselines_dir`)
    its tuned ``models/nnn-<n>.safetensors`` are used where present (cache name ``nnn-<n>-baselines-<file
    hash>-<data fingerprint>``). Any other n is trained with settings ``base`` (an ``NNNConfig``): over the
    hidden sizes ``hiddens`` (the one best on validation kept, as ``rnnlens baselines`` does), or at
    ``base.hidden`` when ``hiddens`` is None, and cached as ``<cache name>.safetensors`` under ``cache_dir``,
    named ``nnn-<n>-<settings hash>-<data fingerprint>``."""
    nnn = nnn_module()
    fp = data_fingerprint(cfg)
    tuned = check_baselines_dir(from_dir, cfg) / "models" if from_dir is not None else None
    out = {}
    for n in ns:
        if tuned is not None and (tuned / f"nnn-{n}.safetensors").is_file():
            path = tuned / f"nnn-{n}.safetensors"
            tag = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
            out[n] = (nnn.load_nnn(path, cfg.vocab, device)[0], f"nnn-{n}-baselines-{tag}-{fp}")
            if progress:
                progress(f"the {n}-NN from {path} (hidden {out[n][0].hidden})")
            continue
        ncfg = nnn.NNNConfig.from_dict({**base.to_dict(), "n": int(n)})
        key = ncfg.to_dict() if hiddens is None else {**ncfg.to_dict(), "hidden": [int(h) for h in hiddens]}
        tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
        name = f"nnn-{n}-{tag}-{fp}"
        path = Path(cache_dir) / f"{name}.safetensors" if cache_dir is not None else None
        if path is not None and path.is_file():
            out[n] = (nnn.load_nnn(path, cfg.vocab, device)[0], name)
            continue
        sizes = [ncfg.hidden] if hiddens is None else [int(h) for h in hiddens]
        if progress:
            progress(f"training the {n}-NN (hidden {', '.join(map(str, sizes))}, up to {ncfg.epochs} epochs)")
        model, info = nnn.train_nnn_grid(splits, len(cfg.vocab), ncfg, sizes, device, progress)
        if path is not None:
            nnn.save_nnn(path, model, cfg.vocab, {"best_val": info["best_val"], "fingerprint": fp,
                                                  "grid": info["grid"]})
        out[n] = (model, name)
    return out


def nnn_probs(models: dict[int, tuple[Any, str]], splits: dict[str, Split], split_names: list[str],
              cache_dir: str | os.PathLike | None) -> dict[str, dict[int, np.ndarray]]:
    """split name -> n -> (B, N) probability of each correct character under the n-NN (cached per model)."""
    out: dict[str, dict[int, np.ndarray]] = {s: {} for s in split_names}
    for n, (model, name) in models.items():
        for s in split_names:
            sp = splits[s]
            out[s][n], _ = cached_scores(cache_dir, f"{name}-{s}", sp.x.shape,
                                         lambda: np.exp(model.log_probs_rows(sp.x, sp.y)),
                                         {"kind": "nnn", "n": n, "split": s, "model": name})
    return out
