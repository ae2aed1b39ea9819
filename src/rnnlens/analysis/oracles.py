"""Error analysis by oracles (the paper's Fig. 6): which kinds of errors does a model make?

An *error* is a predicted character given probability < ``threshold`` (0.5 in the paper). The oracles are
applied in the paper's order; each removes, from the errors still left, those it would have fixed:

1. ``ngram`` n = 1..9: some n-gram model with context length <= n gives the right character >= threshold.
2. ``memory`` n in 100, 500, 1000, 50000 (dynamic n-long memory): the error is inside a word, at its second
   character or later, and the word occurs as a substring of the n characters of text just before the
   word's first character (``memory_match="word"``: the whole word; ``"prefix"``: the word up to and
   including the erroneous character; ``"predict"``, not the paper's wording: the memory as a model, which
   fixes the error when the occurrences of the word so far at word starts in the window are followed by
   the correct character at least ``threshold`` of the time). ``memory_scope="split"`` (default): the text looked back at is the
   analysed split's own text, the text the model read for these predictions (the inputs, ``targets - 1``,
   in the order given, one stretch per run of consecutive offsets: in the interleaved layout each row of the
   split, rows in order); a word that began before its stretch counts from the stretch's first character.
   ``"text"`` (before issue 14): the whole text before the word, train and validation text included.
3. ``rare`` n = 0..5: the error is inside a word and the word occurs <= n times (as a whole word) in the
   training split; from the word's first character on (``rare_from="first"``, default) or, as before
   issue 14, from its second (``"second"``).
4. ``word``: the error is the first character of a word, i.e. it follows a space, tab, newline or quote
   (:mod:`rnnlens.data.textclass`), whatever the character itself is. An apostrophe between two letters is
   part of the word, not a quote (``apostrophe="word"``, default; ``"quote"`` before issue 14).
5. ``punct``: the character is punctuation.
6. ``boost`` b = 0.1, 0.2, ... up to ``boost_max`` (default: the threshold, so the cascade ends with nothing
   remaining): adding b to the correct character's probability would lift it to the threshold.

Within an oracle the parameters are nested (a larger n catches everything a smaller one does), so step
``(oracle, v)`` removes the errors caught with parameter v that no earlier step removed. Whatever no oracle
removes is ``remaining``. Everything works on flat arrays over the M predictions of a split: ``targets``
holds each predicted character's offset in the whole text (ids), so words may reach outside the split (a
word cut by a split or row boundary is still the whole word of the text).
:meth:`OracleConfig.before_issue_14` gives the earlier definitions, for comparison.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..exceptions import RnnlensError
from ..data.textclass import CharClasses, WordSpans, ids_to_str

ORACLES = ("ngram", "memory", "rare", "word", "punct", "boost")
_NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class OracleConfig:
    """Threshold and the parameters of every oracle (see the module docstring)."""

    threshold: float = 0.5
    ngram_ns: tuple[int, ...] = tuple(range(1, 10))
    memory_windows: tuple[int, ...] = (100, 500, 1000, 50000)
    memory_match: str = "word"
    memory_scope: str = "split"    # split: the analysed split's own text; text: the whole text before it
    rare_counts: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    rare_from: str = "first"       # first: a rare word's every character; second: from its second on
    boosts: tuple[float, ...] | None = None  # None: 0.1, 0.2, ... up to boost_max
    boost_max: float | None = None  # None: the threshold (nothing remains)
    apostrophe: str = "word"       # word: an apostrophe between letters is part of the word; quote: a quote

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise RnnlensError(f"error threshold must be in (0, 1], got {self.threshold}; the paper uses 0.5")
        for name, val, allowed in (("memory match", self.memory_match, ("word", "prefix", "predict")),
                                   ("memory scope", self.memory_scope, ("split", "text")),
                                   ("rare-from", self.rare_from, ("first", "second")),
                                   ("apostrophe", self.apostrophe, ("word", "quote"))):
            if val not in allowed:
                raise RnnlensError(f"{name} must be {' or '.join(map(repr, allowed))}, got {val!r}")
        if self.boosts is not None and self.boost_max is not None:
            raise RnnlensError("give the boosts or their maximum, not both (--boost or --boost-max)")
        if self.boost_max is not None and not 0.0 < self.boost_max <= 1.0:
            raise RnnlensError(f"boost max must be in (0, 1], got {self.boost_max}; e.g. --boost-max 0.4")
        for name, vals, lo in (("n-gram n", self.ngram_ns, 1), ("memory window", self.memory_windows, 1),
                               ("rare-word count", self.rare_counts, 0), ("boost", self.boost_levels, 0)):
            if list(vals) != sorted(set(vals)) or any(v < lo for v in vals):
                raise RnnlensError(f"{name} values must be distinct, increasing and >= {lo}, got {list(vals)}")

    @property
    def boost_levels(self) -> tuple[float, ...]:
        """The boosts tried: ``boosts`` when given, else 0.1, 0.2, ... below ``boost_max`` and ``boost_max``
        itself (the threshold when unset: p + threshold >= threshold for every p, so nothing remains)."""
        if self.boosts is not None:
            return tuple(float(b) for b in self.boosts)
        cap = self.threshold if self.boost_max is None else float(self.boost_max)
        return tuple(round(0.1 * k, 10) for k in range(1, 11) if 0.1 * k < cap - 1e-9) + (cap,)

    @classmethod
    def before_issue_14(cls, **changes) -> "OracleConfig":
        """The definitions used before issue 14 (memory over the whole text, rare words from their second
        character, boosts up to 0.4, every apostrophe a quote), with ``changes`` applied."""
        old = dict(memory_scope="text", rare_from="second", boost_max=0.4, apostrophe="quote")
        if changes.get("boosts") is not None:
            old.pop("boost_max")
        return cls(**{**old, **changes})

    def params(self, oracle: str) -> tuple:
        return {"ngram": self.ngram_ns, "memory": self.memory_windows, "rare": self.rare_counts,
                "word": (None,), "punct": (None,), "boost": self.boost_levels}[oracle]

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "ngram_ns": list(self.ngram_ns),
                "memory_windows": list(self.memory_windows), "memory_match": self.memory_match,
                "memory_scope": self.memory_scope, "rare_counts": list(self.rare_counts),
                "rare_from": self.rare_from, "boosts": list(self.boost_levels), "boost_max": self.boost_max,
                "apostrophe": self.apostrophe}


@dataclass
class Step:
    oracle: str
    param: float | int | None
    removed: int


@dataclass
class Breakdown:
    """The oracle cascade's result for one model over M predictions.

    category: (M,) int64: -1 for a correct prediction, the index into ``steps`` of the step that removed an
    error, or ``len(steps)`` for an error no oracle removed.
    """

    chars: int
    errors: int
    steps: list[Step]
    category: np.ndarray = field(repr=False)

    @property
    def remaining(self) -> int:
        return int((self.category == len(self.steps)).sum())

    def family_counts(self) -> dict[str, int]:
        """Errors removed per oracle (all its parameters), plus ``remaining``."""
        out = {o: 0 for o in ORACLES}
        for s in self.steps:
            out[s.oracle] += s.removed
        out["remaining"] = self.remaining
        return out

    def to_dict(self) -> dict:
        e = max(self.errors, 1)
        return {
            "chars": self.chars, "errors": self.errors, "error_rate": self.errors / max(self.chars, 1),
            "steps": [{"oracle": s.oracle, "param": s.param, "removed": s.removed, "share": s.removed / e}
                      for s in self.steps],
            "families": {k: {"removed": v, "share": v / e} for k, v in self.family_counts().items()},
            "remaining": self.remaining,
        }


def train_word_counts(rows: Sequence[np.ndarray], classes: CharClasses) -> Counter:
    """How often each word (a str of ``chr(id)``) occurs in the training row streams (each row on its own)."""
    counts: Counter = Counter()
    for row in rows:
        row = np.asarray(row, dtype=np.int64)
        spans = WordSpans.of(row, classes)
        starts = np.flatnonzero((spans.start == np.arange(len(row))))
        s = ids_to_str(row)
        counts.update(s[a:b] for a, b in zip(starts.tolist(), spans.end[starts].tolist()))
    return counts


def _first_level(hit: np.ndarray) -> np.ndarray:
    """(P, M) booleans per parameter -> (M,) index of the first parameter that hits, or _NEVER."""
    if hit.shape[0] == 0:
        return np.full(hit.shape[1], _NEVER, dtype=np.int64)
    first = np.argmax(hit, axis=0).astype(np.int64)
    first[~hit.any(axis=0)] = _NEVER
    return first


def _stretches(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M,) target offsets -> (M,) stretch index of each prediction and (G, 2) [start, end) text offsets of
    the G stretches the model read: the inputs ``targets - 1``, one stretch per run of consecutive offsets."""
    if not len(targets):
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.int64)
    brk = np.flatnonzero(np.diff(targets) != 1) + 1
    first = np.concatenate([[0], brk])
    last = np.concatenate([brk - 1, [len(targets) - 1]])
    group = np.zeros(len(targets), dtype=np.int64)
    group[brk] = 1
    return np.cumsum(group), np.stack([targets[first] - 1, targets[last]], axis=1)


def _memory_levels(err: np.ndarray, targets: np.ndarray, spans: WordSpans, text_str: str,
                   cfg: OracleConfig) -> np.ndarray:
    level = np.full(len(targets), _NEVER, dtype=np.int64)
    windows = np.asarray(cfg.memory_windows)
    if not len(windows):
        return level
    biggest = int(windows[-1])
    word_at = spans.start >= 0  # (T,) inside a word
    if cfg.memory_scope == "split":  # the split's own text: its stretches, in order, one after the other
        group, bounds = _stretches(targets)
        seen = "".join(text_str[a:b] for a, b in bounds.tolist())
        seen_word = np.concatenate([word_at[a:b] for a, b in bounds.tolist()]) if len(bounds) else word_at[:0]
        base = np.concatenate([[0], np.cumsum(bounds[:, 1] - bounds[:, 0])[:-1]]) if len(bounds) else bounds[:, 0]
    for k in np.flatnonzero(err).tolist():
        t = int(targets[k])
        s = int(spans.start[t])
        if s < 0 or s == t:  # not in a word, or its first character
            continue
        if cfg.memory_scope == "split":
            g = int(group[k])
            at = int(base[g]) + max(0, s - int(bounds[g, 0]))  # the word's start in the split's own text
            hay, hay_word = seen, seen_word
        else:
            at, hay, hay_word = s, text_str, word_at
        if cfg.memory_match == "predict":
            level[k] = _predict_level(hay, hay_word, text_str[s:t], text_str[t], at, windows, cfg.threshold)
            continue
        needle = text_str[s:int(spans.end[t])] if cfg.memory_match == "word" else text_str[s:t + 1]
        j = hay.rfind(needle, max(0, at - biggest), at)  # the nearest earlier occurrence
        if j >= 0:
            level[k] = int(np.searchsorted(windows, at - j, side="left"))
    return level


def _predict_level(hay: str, hay_word: np.ndarray, ctx: str, correct: str, at: int, windows: np.ndarray,
                   threshold: float) -> int:
    """``memory_match="predict"``: the memory as a model. Every occurrence of the word so far (``ctx``) at
    the start of a word in ``hay[at - n:at]`` votes for the character after it; the first window n whose
    votes give the correct character a share >= threshold fixes the error (``_NEVER`` if none does)."""
    lo, m = max(0, at - int(windows[-1])), len(ctx)
    dist, hit = [], []
    j = hay.find(ctx, lo, at - 1)  # ctx and the character after it end before the word
    while j >= 0:
        if j == 0 or not hay_word[j - 1]:
            dist.append(at - j)
            hit.append(hay[j + m] == correct)
        j = hay.find(ctx, j + 1, at - 1)
    if not dist:
        return _NEVER
    d = np.asarray(dist[::-1])  # nearest first: ascending distance
    share = np.cumsum(hit[::-1]) / np.arange(1, len(d) + 1)
    for k, n in enumerate(windows.tolist()):
        c = int(np.searchsorted(d, n, side="right"))  # occurrences within the window
        if c and share[c - 1] >= threshold:
            return k
    return _NEVER


def _rare_levels(err: np.ndarray, targets: np.ndarray, spans: WordSpans, text_str: str, counts: Counter,
                 cfg: OracleConfig) -> np.ndarray:
    level = np.full(len(targets), _NEVER, dtype=np.int64)
    limits = np.asarray(cfg.rare_counts)
    for k in np.flatnonzero(err).tolist():
        t = int(targets[k])
        s = int(spans.start[t])
        if s < 0 or (s == t and cfg.rare_from == "second"):
            continue
        c = counts.get(text_str[s:int(spans.end[t])], 0)
        j = int(np.searchsorted(limits, c, side="left"))  # first limit >= count
        if j < len(limits):
            level[k] = j
    return level


def oracle_breakdown(prob: np.ndarray, targets: np.ndarray, text: np.ndarray, classes: CharClasses,
                     ngram_probs: dict[int, np.ndarray], train_counts: Counter,
                     cfg: OracleConfig = OracleConfig()) -> Breakdown:
    """Run the oracle cascade over M predictions.

    prob: (M,) probability the model gave each correct character. targets: (M,) offset in ``text`` of each
    predicted character (>= 1). text: (T,) ids of the whole text. ngram_probs: n -> (M,) probability under
    the n-gram model, for every n of ``cfg.ngram_ns``. train_counts: from :func:`train_word_counts` (with
    classes of the same ``apostrophe`` mode). ``cfg.apostrophe`` decides how apostrophes count here.
    """
    p = np.asarray(prob, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    text = np.asarray(text, dtype=np.int64).reshape(-1)
    if p.shape != targets.shape:
        raise RnnlensError(f"prob and targets must have the same length, got {p.shape} and {targets.shape}")
    if len(targets) and (targets.min() < 1 or targets.max() >= len(text)):
        raise RnnlensError("target offsets must be in 1..len(text)-1 (each prediction has a previous character)")
    missing = [n for n in cfg.ngram_ns if n not in ngram_probs]
    if missing:
        raise RnnlensError(f"the n-gram oracle needs n-gram probabilities for n = {missing}; fit those models")
    err = p < cfg.threshold
    classes = classes.with_apostrophe(cfg.apostrophe)
    spans = WordSpans.of(text, classes)
    _, punct_at, opener_at = classes.at(text)
    text_str = ids_to_str(text)
    thr = cfg.threshold
    ngram = _first_level(np.stack([np.asarray(ngram_probs[n]).reshape(-1) >= thr for n in cfg.ngram_ns])
                         if cfg.ngram_ns else np.zeros((0, len(p)), bool))
    left = err & (ngram == _NEVER)  # the word oracles only ever see errors the n-gram oracle leaves
    levels = {
        "ngram": ngram,
        "memory": _memory_levels(left, targets, spans, text_str, cfg),
        "rare": _rare_levels(left, targets, spans, text_str, train_counts, cfg),
        "word": np.where(opener_at[targets - 1], 0, _NEVER),
        "punct": np.where(punct_at[targets], 0, _NEVER),
        "boost": _first_level(np.stack([p + b >= thr for b in cfg.boost_levels]) if cfg.boost_levels
                              else np.zeros((0, len(p)), bool)),
    }
    category = np.where(err, -2, -1).astype(np.int64)  # -2: an error not yet removed
    steps: list[Step] = []
    for oracle in ORACLES:
        for k, param in enumerate(cfg.params(oracle)):
            hit = (category == -2) & (levels[oracle] <= k)
            category[hit] = len(steps)
            steps.append(Step(oracle, param, int(hit.sum())))
    category[category == -2] = len(steps)
    return Breakdown(chars=len(p), errors=int(err.sum()), steps=steps, category=category)


def compare_breakdowns(a: Breakdown, b: Breakdown, names: tuple[str, str] = ("a", "b")) -> dict:
    """Which kinds of error the better model (fewer errors) avoids, two ways.

    ``by_family``: per oracle, the weaker model's count minus the stronger's, and its share of the total
    difference in errors (the paper: 81% of the 50K LSTM's extra errors are n-gram errors).
    ``fixed``: the weaker model's errors at which the stronger model is right, by the weaker's category;
    ``new``: the stronger model's errors at which the weaker is right.
    """
    if a.chars != b.chars or len(a.steps) != len(b.steps):
        raise RnnlensError("the two breakdowns cover different predictions or oracles; analyse the same split "
                           "of the same text with the same oracle settings")
    (weak, wname), (strong, sname) = sorted([(a, names[0]), (b, names[1])], key=lambda t: -t[0].errors)
    diff = weak.errors - strong.errors
    fw, fs = weak.family_counts(), strong.family_counts()
    fixed_mask = (weak.category >= 0) & (strong.category < 0)
    fixed = {}
    for fam in list(ORACLES) + ["remaining"]:
        idx = [i for i, s in enumerate(weak.steps) if s.oracle == fam] if fam != "remaining" else [len(weak.steps)]
        fixed[fam] = int((fixed_mask & np.isin(weak.category, idx)).sum())
    return {
        "weaker": wname, "stronger": sname, "error_difference": diff,
        "by_family": {k: {"difference": fw[k] - fs[k], "share": (fw[k] - fs[k]) / diff if diff else None}
                      for k in fw},
        "fixed": {"total": int(fixed_mask.sum()), "by_family": fixed},
        "new": int(((strong.category >= 0) & (weak.category < 0)).sum()),
    }


def breakdown_markdown(breakdowns: dict[str, Breakdown]) -> str:
    """A markdown table: one row per oracle step, per model the errors removed and their share of all errors."""
    names = list(breakdowns)
    first = breakdowns[names[0]]
    head = "| oracle | param | " + " | ".join(f"{n} removed | {n} share" for n in names) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(names))]
    lines.append("| errors | | " + " | ".join(f"{b.errors:,} | {b.errors / max(b.chars, 1):.1%} of chars"
                                              for b in breakdowns.values()) + " |")
    for i, s in enumerate(first.steps):
        cells = [f"{b.steps[i].removed:,} | {b.steps[i].removed / max(b.errors, 1):.1%}" for b in breakdowns.values()]
        lines.append(f"| {s.oracle} | {'' if s.param is None else s.param} | " + " | ".join(cells) + " |")
    lines.append("| remaining | | " + " | ".join(f"{b.remaining:,} | {b.remaining / max(b.errors, 1):.1%}"
                                                 for b in breakdowns.values()) + " |")
    return "\n".join(lines) + "\n"
