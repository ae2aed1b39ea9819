"""Files of the Kneser-Ney n-gram model: validated loading of the .npz, and ARPA export.

The .npz (written by ``KneserNeyLM.save``) holds a JSON header as a uint8 array (format tag, n, order,
vocabulary size, unit, vocabulary symbols), the padded training text, the discounts and, per order L,
the arrays of :class:`rnnlens.ngram.counts.OrderTable` as ``o{L}_{field}``. Nothing is pickled.

ARPA export: every character is one "word" token ``c<hex symbol>`` (``c41`` for "A"; ``c<hex id>`` when
the model has no vocabulary symbols). Every n-gram of every order seen in training is listed with
``log10 P(w | h)`` (the model's interpolated probability with exactly that context) and, below the top
order, its backoff weight ``log10 gamma``. For an interpolated model this is exact: an ARPA reader that
backs off (``P(w | h) = bo(h) * P(w | h')`` when ``hw`` is not listed) gives our probabilities for every
context. All K vocabulary symbols are unigrams, even those unseen in training. ``<s>``, ``</s>`` and
``<unk>`` are listed with log10 probability -99 because ARPA readers (KenLM) require them; score text
without sentence markers (KenLM: ``full_scores(s, bos=False, eos=False)``) and the results match ours.
"""
from __future__ import annotations

import json
import os
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnlens.exceptions import RnnlensError
from rnnlens.fsutil import atomic_write
from rnnlens.ngram.counts import OrderTable

if TYPE_CHECKING:
    from rnnlens.ngram.model import KneserNeyLM

_FIX = "re-create it with `rnnlens ngram ... --save PATH`"
_INT_FIELDS = ("fwd_keys", "rev_keys", "rev_rows", "pos")


def _bad(path: str | os.PathLike, what: str) -> RnnlensError:
    return RnnlensError(f"{path} is not a valid rnnlens n-gram model ({what}); {_FIX}")


def _read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise _bad(path, "not an .npz archive")
        with npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise RnnlensError(f"n-gram model {path} does not exist; check the path or {_FIX}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise _bad(path, f"unreadable or truncated: {type(exc).__name__}") from None


def _header(path: str | os.PathLike, raw: np.ndarray | None) -> dict[str, Any]:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise _bad(path, "no header")
    try:
        hdr = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(path, "header is not JSON") from None
    from rnnlens.ngram.model import FORMAT, FORMAT_VERSION, MAX_N
    if not isinstance(hdr, dict) or hdr.get("format") != FORMAT:
        raise _bad(path, f"format is not {FORMAT!r}")
    if hdr.get("version") != FORMAT_VERSION:
        raise RnnlensError(f"{path} has n-gram format version {hdr.get('version')!r}, this rnnlens reads "
                           f"{FORMAT_VERSION}; {_FIX}")
    n, k, syms = hdr.get("n"), hdr.get("vocab_size"), hdr.get("symbols")
    if not (type(n) is int and 1 <= n <= MAX_N and hdr.get("order") == n + 1 and type(k) is int and k >= 1):
        raise _bad(path, "bad n, order or vocab_size in header")
    if syms is not None and (not isinstance(syms, list) or len(syms) != k or any(type(s) is not int for s in syms)):
        raise _bad(path, "vocabulary symbols do not match vocab_size")
    if hdr.get("unit") is not None and not isinstance(hdr.get("unit"), str):
        raise _bad(path, "bad unit")
    return hdr


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header and arrays of a saved model, checked for completeness and consistency (int64 / float64)."""
    arrays = _read_npz(path)
    hdr = _header(path, arrays.get("header"))
    order, K = hdr["order"], hdr["vocab_size"]
    need = ["text", "discounts", "discount_fallback", "root_gamma"]
    need += [f"o{L}_{f}" for L in range(1, order + 1) for f in OrderTable.FIELDS]
    missing = [k for k in need if k not in arrays]
    if missing:
        raise _bad(path, f"missing arrays, e.g. {missing[0]}")
    text = arrays["text"]
    if not np.issubdtype(text.dtype, np.integer) or text.ndim != 1 or not text.size or text.max() > K:
        raise _bad(path, "bad training text")
    arrays["text"] = text.astype(np.int64)
    if arrays["discounts"].shape != (order, 3) or arrays["discount_fallback"].shape != (order,) \
            or arrays["root_gamma"].shape != (1,):
        raise _bad(path, "bad discounts")
    prev_rows = 1
    for L in range(1, order + 1):
        tab = {f: arrays[f"o{L}_{f}"] for f in OrderTable.FIELDS}
        E = len(tab["fwd_keys"])
        if any(a.ndim != 1 or len(a) != E for a in tab.values()):
            raise _bad(path, f"arrays of order {L} differ in length")
        if any(not np.issubdtype(tab[f].dtype, np.integer) for f in _INT_FIELDS) or \
                tab["alpha"].dtype != np.float64 or tab["gamma"].dtype != np.float64:
            raise _bad(path, f"arrays of order {L} have wrong types")
        for f in _INT_FIELDS:
            arrays[f"o{L}_{f}"] = tab[f] = tab[f].astype(np.int64)
        if E and (tab["fwd_keys"].max() >= prev_rows * K or tab["rev_keys"].max() >= prev_rows * K
                  or tab["rev_rows"].min() < 0 or tab["rev_rows"].max() >= E
                  or tab["pos"].min() < -1 or tab["pos"].max() >= len(text) - order):
            raise _bad(path, f"arrays of order {L} are out of range")
        prev_rows = E
    return hdr, arrays


def token(model: "KneserNeyLM", i: int) -> str:
    """The ARPA word of id i: ``c`` + the symbol in hex (or the id when the model has no symbols)."""
    sym = model.symbols[i] if model.symbols is not None else i
    return f"c{sym:02x}"


def _grams(model: "KneserNeyLM", L: int) -> np.ndarray:
    """(G, L) all distinct L-grams of the training text (L = 1: every vocabulary id)."""
    if L == 1:
        return np.arange(model.vocab_size, dtype=np.int64)[:, None]
    win = np.lib.stride_tricks.sliding_window_view(model.text, L)
    win = win[(win != model.vocab_size).all(axis=1)]
    return np.unique(win, axis=0) if len(win) else np.zeros((0, L), dtype=np.int64)


def _padded(model: "KneserNeyLM", grams: np.ndarray) -> np.ndarray:
    pad = np.full((len(grams), model.n - grams.shape[1]), -1, dtype=np.int64)
    return np.concatenate([pad, grams], axis=1)


def write_arpa(model: "KneserNeyLM", path: str | os.PathLike) -> None:
    """Write every order 1..n+1 as an ARPA file (see module docstring); atomic."""
    order = model.cfg.order
    sections: list[list[str]] = []
    for L in range(1, order + 1):
        g = _grams(model, L)
        logp, _ = model._score(_padded(model, g[:, :-1]), g[:, -1])
        lp10 = logp / np.log(10.0)
        words = [" ".join(token(model, int(i)) for i in row) for row in g]
        if L < order:
            bo = np.log10(model.context_backoffs(_padded(model, g)))
            lines = [f"{p!r}\t{w}\t{b!r}" for p, w, b in zip(lp10.tolist(), words, bo.tolist())]
        else:
            lines = [f"{p!r}\t{w}" for p, w in zip(lp10.tolist(), words)]
        if L == 1:
            lines += ["-99.0\t<s>\t0.0", "-99.0\t</s>\t0.0", "-99.0\t<unk>\t0.0"]
        sections.append(lines)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write("\\data\\\n")
            for L, lines in enumerate(sections, start=1):
                fh.write(f"ngram {L}={len(lines)}\n")
            for L, lines in enumerate(sections, start=1):
                fh.write(f"\n\\{L}-grams:\n")
                fh.write("\n".join(lines) + "\n")
            fh.write("\n\\end\\\n")
    atomic_write(path, write)
