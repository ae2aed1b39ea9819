"""The oracle cascade of rnnlens.analysis.oracles on hand-made texts whose outcome is computed by hand, and against
brute force (the character classes: tests/test_textclass.py; the errors command: tests/test_breakdown.py)."""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from rnnlens.exceptions import RnnlensError
from rnnlens.analysis.oracles import OracleConfig, breakdown_markdown, compare_breakdowns, oracle_breakdown, train_word_counts
from rnnlens.data.textclass import CharClasses, WordSpans, ids_to_str
from rnnlens.data.splits import SplitConfig, make_splits
from rnnlens.data.text import Vocab

TEXT = 'ab ab, zq ab"zz'
#       012345678901234
CFG = OracleConfig(ngram_ns=(1, 2), memory_windows=(3, 10), rare_counts=(0, 1), boosts=(0.1, 0.3))


def encode(text: str, vocab_text: str | None = None) -> tuple[np.ndarray, Vocab]:
    sym = np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64)
    vocab = Vocab.build(np.frombuffer((vocab_text or text).encode(), dtype=np.uint8), "byte")
    return vocab.encode(sym), vocab


def hand_case():
    ids, vocab = encode(TEXT)
    targets = np.arange(1, len(TEXT))
    p = np.full(len(targets), 0.9)
    g1 = np.full(len(targets), 0.1)
    g2 = np.full(len(targets), 0.2)
    errs = {1: 0.2, 4: 0.2, 5: 0.3, 6: 0.0, 8: 0.05, 10: 0.3, 11: 0.4, 12: 0.45, 13: 0.1, 14: 0.35}
    for t, v in errs.items():
        p[t - 1] = v
    g2[1 - 1] = 0.6   # offset 1: the 2-gram gets it
    g1[5 - 1] = 0.7   # offset 5: the 1-gram gets it (and counts for n <= 2 too)
    g2[5 - 1] = 0.1
    # word counts are keyed by ids_to_str(ids of the word), as train_word_counts makes them
    counts = Counter({ids_to_str(vocab.encode(np.frombuffer(w.encode(), np.uint8))): c
                      for w, c in (("ab", 7), ("zq", 1), ("zz", 5))})
    return ids, vocab, targets, p, {1: g1, 2: g2}, counts


def test_hand_made_cascade():
    ids, vocab, targets, p, grams, counts = hand_case()
    b = oracle_breakdown(p, targets, ids, CharClasses.for_vocab(vocab), grams, counts, CFG)
    assert b.chars == 14 and b.errors == 10
    got = [(s.oracle, s.param, s.removed) for s in b.steps]
    assert got == [("ngram", 1, 1), ("ngram", 2, 1), ("memory", 3, 1), ("memory", 10, 1), ("rare", 0, 0),
                   ("rare", 1, 1), ("word", None, 2), ("punct", None, 1), ("boost", 0.1, 0), ("boost", 0.3, 1)]
    assert b.remaining == 1
    where = {int(t): (b.steps[c].oracle if 0 <= c < len(b.steps) else c) for t, c in zip(targets, b.category)}
    assert where == {1: "ngram", 2: -1, 3: -1, 4: "memory", 5: "ngram", 6: len(b.steps), 7: -1, 8: "rare",
                     9: -1, 10: "word", 11: "memory", 12: "punct", 13: "word", 14: "boost"}
    fam = b.family_counts()
    assert fam == {"ngram": 2, "memory": 2, "rare": 1, "word": 2, "punct": 1, "boost": 1, "remaining": 1}
    d = b.to_dict()
    assert d["families"]["word"]["share"] == pytest.approx(0.2)
    assert d["error_rate"] == pytest.approx(10 / 14)
    md = breakdown_markdown({"m": b})
    assert "| memory | 10 | 1 | 10.0% |" in md and "| remaining | | 1 | 10.0% |" in md


def test_threshold_changes_the_error_set():
    ids, vocab, targets, p, grams, counts = hand_case()
    cfg = OracleConfig(threshold=0.25, ngram_ns=(1, 2), memory_windows=(3, 10), rare_counts=(0, 1), boosts=(0.1,))
    b = oracle_breakdown(p, targets, ids, CharClasses.for_vocab(vocab), grams, counts, cfg)
    assert b.errors == int((p < 0.25).sum()) == 5  # offsets 1, 4, 6, 8, 13


def test_subset_of_targets_keeps_each_category():
    """With ``memory_scope="text"`` a split that starts inside a word (offset 11 is 'b' of a word starting at
    10) still sees the whole word and the text before it: every prediction's category depends only on the
    text. With ``"split"`` (the default) the look-back sees only the analysed predictions' own text, so the
    earlier "ab" (offsets 0..4) is out of reach and offset 11 loses its memory hit."""
    ids, vocab, targets, p, grams, counts = hand_case()
    cls = CharClasses.for_vocab(vocab)
    sel = slice(10, 14)  # offsets 11..14
    sub = (p[sel], targets[sel], ids, cls, {n: g[sel] for n, g in grams.items()}, counts)
    text_cfg = dataclasses.replace(CFG, memory_scope="text")
    full = oracle_breakdown(p, targets, ids, cls, grams, counts, text_cfg)
    assert oracle_breakdown(*sub, text_cfg).category.tolist() == full.category[sel].tolist()
    full = oracle_breakdown(p, targets, ids, cls, grams, counts, CFG)
    part = oracle_breakdown(*sub, CFG)
    assert full.steps[full.category[10]].oracle == "memory"
    assert part.steps[part.category[0]].oracle == "boost"  # p = 0.3 at offset 11: + 0.3 reaches 0.5
    assert part.category.tolist()[1:] == full.category[sel].tolist()[1:]


def test_first_characters_of_the_text_and_bad_offsets():
    ids, vocab = encode('"ab')
    cls = CharClasses.for_vocab(vocab)
    # offset 1 ('a') follows the opening quote at offset 0: a word start
    b = oracle_breakdown(np.array([0.1]), np.array([1]), ids, cls, {}, Counter(), OracleConfig(ngram_ns=(), rare_counts=()))
    assert [s.oracle for s in b.steps if s.removed] == ["word"]
    with pytest.raises(RnnlensError):
        oracle_breakdown(np.array([0.1]), np.array([0]), ids, cls, {}, Counter(), OracleConfig(ngram_ns=()))
    with pytest.raises(RnnlensError):  # missing n-gram scores
        oracle_breakdown(np.array([0.1]), np.array([1]), ids, cls, {}, Counter(), OracleConfig(ngram_ns=(1,)))


def test_no_errors_and_empty_categories():
    ids, vocab, targets, p, grams, counts = hand_case()
    b = oracle_breakdown(np.ones_like(p), targets, ids, CharClasses.for_vocab(vocab), grams, counts, CFG)
    assert b.errors == 0 and b.remaining == 0 and all(s.removed == 0 for s in b.steps)
    assert b.to_dict()["families"]["ngram"]["share"] == 0


def test_memory_prefix_mode():
    ids, vocab = encode("abc abd")
    cls = CharClasses.for_vocab(vocab)
    t = np.array([5])  # the 'b' of "abd": the whole word never occurred before, its prefix "ab" did
    for match, caught in (("word", False), ("prefix", True)):
        cfg = OracleConfig(ngram_ns=(), memory_windows=(4, 100), memory_match=match, memory_scope="text",
                           rare_counts=(), boosts=())  # one prediction: its split would hold no text before it
        b = oracle_breakdown(np.array([0.1]), t, ids, cls, {}, Counter(), cfg)
        assert (b.steps[0].removed == 1) is caught
        if caught:
            assert b.steps[0].param == 4  # "ab" at 0..1 lies within the 4 characters before the word (4..6)


def brute_memory_rare(text: str, t: int, windows, limits, counts: Counter, match: str):
    """Straight from the definitions, on Python strings (memory from a word's second character, rare words
    from its first)."""
    isw = lambda c: c.isalnum()  # noqa: E731
    if not isw(text[t]):
        return None, None
    s = t
    while s > 0 and isw(text[s - 1]):
        s -= 1
    e = t
    while e < len(text) and isw(text[e]):
        e += 1
    word = text[s:e]
    if match == "predict":  # every earlier word start with the word so far votes for its next character
        ctx = text[s:t]
        votes = [(s - j, text[j + len(ctx)] == text[t]) for j in range(s - len(ctx))
                 if text.startswith(ctx, j) and (j == 0 or not isw(text[j - 1]))]
        share = lambda w: [v for d, v in votes if d <= w]  # noqa: E731
        mem = next((w for w in windows if share(w) and sum(share(w)) / len(share(w)) >= 0.5), None) if s < t else None
    else:
        needle = word if match == "word" else text[s:t + 1]
        mem = next((w for w in windows if needle in text[max(0, s - w):s]), None) if s < t else None
    rare = next((n for n in limits if counts.get(word, 0) <= n), None)
    return mem, rare


@pytest.mark.parametrize("match", ["word", "prefix", "predict"])
def test_memory_and_rare_against_brute_force(match):
    rng = np.random.default_rng(1)
    text = "".join(rng.choice(list("aab b c"), size=600))
    ids, vocab = encode(text, vocab_text="abc ")
    cls = CharClasses.for_vocab(vocab)
    counts = Counter({ids_to_str(encode(w, "abc ")[0]): c for w, c in (("ab", 0), ("a", 3), ("b", 1), ("aab", 6))})
    plain = Counter({"ab": 0, "a": 3, "b": 1, "aab": 6})
    cfg = OracleConfig(ngram_ns=(), memory_windows=(5, 20, 80), memory_match=match, rare_counts=(0, 1, 2, 3),
                       boosts=())
    targets = np.arange(1, len(text))
    b = oracle_breakdown(np.zeros(len(targets)), targets, ids, cls, {}, counts, cfg)
    steps = [(s.oracle, s.param) for s in b.steps]
    for k, t in enumerate(targets.tolist()):
        mem, rare = brute_memory_rare(text, t, cfg.memory_windows, cfg.rare_counts, plain, match)
        cat = b.category[k]
        got = steps[cat] if cat < len(steps) else None
        if mem is not None:
            assert got == ("memory", mem), t
        elif rare is not None:
            assert got == ("rare", rare), t
        else:
            assert got is None or got[0] in ("word", "punct"), t


def test_compare_breakdowns_by_hand():
    ids, vocab, targets, p, grams, counts = hand_case()
    cls = CharClasses.for_vocab(vocab)
    big = oracle_breakdown(p, targets, ids, cls, grams, counts, CFG)
    better = p.copy()
    better[[0, 4, 7]] = 0.9   # fixes offsets 1 and 5 (n-gram errors) and 8 (rare)
    better[1] = 0.1           # and makes a new error at offset 2 (a space after 'b': no oracle catches it)
    small = oracle_breakdown(better, targets, ids, cls, grams, counts, CFG)
    cmp = compare_breakdowns(big, small, ("weak", "strong"))
    assert cmp["weaker"] == "weak" and cmp["stronger"] == "strong"
    assert cmp["error_difference"] == 10 - 8
    assert cmp["fixed"] == {"total": 3, "by_family": {"ngram": 2, "memory": 0, "rare": 1, "word": 0, "punct": 0,
                                                       "boost": 0, "remaining": 0}}
    assert cmp["new"] == 1
    assert cmp["by_family"]["ngram"] == {"difference": 2, "share": 1.0}
    assert cmp["by_family"]["rare"]["difference"] == 1
    # the order of the arguments does not matter
    assert compare_breakdowns(small, big, ("strong", "weak"))["weaker"] == "weak"


def test_config_validation():
    with pytest.raises(RnnlensError):
        OracleConfig(threshold=0)
    with pytest.raises(RnnlensError):
        OracleConfig(memory_windows=(500, 100))
    with pytest.raises(RnnlensError):
        OracleConfig(memory_match="exact")
    with pytest.raises(RnnlensError):
        OracleConfig(rare_counts=(-1, 0))


# ----- the definitions of issue 14, each against the one before it --------------------------------------------
ONLY_MEMORY = dict(ngram_ns=(), rare_counts=(), boosts=())


def one_error(text: str, t: int, cfg: OracleConfig, counts: Counter | None = None, vocab_text: str | None = None):
    """The oracle (and its parameter) that removes a single error at offset t of text, or None."""
    ids, vocab = encode(text, vocab_text)
    targets = np.arange(1, len(ids))  # every prediction of the text, the one at t the only error
    p = np.where(targets == t, 0.01, 0.9)
    b = oracle_breakdown(p, targets, ids, CharClasses.for_vocab(vocab), {}, counts or Counter(), cfg)
    c = int(b.category[t - 1])
    return (b.steps[c].oracle, b.steps[c].param) if c < len(b.steps) else None


def test_memory_scope_split_never_looks_into_the_train_split():
    # Two rows of 32 characters (interleaved, B=2, S=8): per row train 16, val 8, test 8 characters.
    chars = [" "] * 65
    for at, word in ((40, "qz"), (60, "qz"), (26, "vw"), (57, "vw")):
        chars[at:at + 2] = word
    text = "".join(chars)
    ids, vocab = encode(text)
    sp = make_splits(ids, SplitConfig(fractions=(0.5, 0.25, 0.25), batch_size=2, seq_len=8))["test"]
    targets = sp.positions().reshape(-1) + 1
    assert targets.tolist() == list(range(25, 33)) + list(range(57, 65))  # test rows: inputs 24..31 and 56..63
    p = np.where(np.isin(targets, [58, 61]), 0.1, 0.9)  # errors at the 'w' of "vw" and the 'z' of "qz" (row 1)
    cls = CharClasses.for_vocab(vocab)

    def where(scope: str) -> dict[int, tuple | None]:
        b = oracle_breakdown(p, targets, ids, cls, {}, Counter(),
                             OracleConfig(memory_windows=(10, 50), memory_scope=scope, **ONLY_MEMORY))
        return {t: (b.steps[b.category[k]].oracle, b.steps[b.category[k]].param)
                if b.category[k] < len(b.steps) else None for k, t in enumerate(targets.tolist()) if p[k] < 0.5}

    # split: "qz" occurs only in row 1's train text (offset 40): out of reach. "vw" occurs in row 0's test text
    # (offset 26), which comes before row 1's in the split's own text: 8 - 2 + 1 = 7 characters back.
    assert where("split") == {58: ("memory", 10), 61: None}
    # text (before issue 14): the windows reach back into train text, 58 - 26 = 31 and 60 - 40 = 20 characters
    assert where("text") == {58: ("memory", 50), 61: ("memory", 50)}
    assert OracleConfig.before_issue_14().memory_scope == "text"


def test_rare_word_counts_from_its_first_character():
    counts = Counter({ids_to_str(encode("ab")[0][:2]): 3})  # an unrelated word; "qu" never seen in training
    cfg = OracleConfig(ngram_ns=(), memory_windows=(), rare_counts=(0, 1), boosts=())
    assert one_error("a qu", 2, cfg, counts) == ("rare", 0)  # the 'q' after a space: rare, not word model
    assert one_error("a qu", 2, OracleConfig.before_issue_14(ngram_ns=(), memory_windows=(), rare_counts=(), boosts=()),
                     counts) == ("word", None)
    assert one_error("a qu", 3, cfg, counts) == ("rare", 0)  # the second character: rare in both
    # the memory oracle keeps its "from the second character" qualifier
    mem = OracleConfig(ngram_ns=(), memory_windows=(10,), rare_counts=(), boosts=())
    assert one_error("qu qu", 3, mem) == ("word", None) and one_error("qu qu", 4, mem) == ("memory", 10)


def test_apostrophe_inside_a_word_is_part_of_it():
    text, vt = "x don't 'yes' Pierre's", "x don't 'yes' Pierre's"
    ids, vocab = encode(text, vt)
    word = CharClasses.for_vocab(vocab)
    quote = CharClasses.for_vocab(vocab, "quote")
    spans = WordSpans.of(ids, word)
    assert (spans.start[2], spans.end[2]) == (2, 7) and text[2:7] == "don't"
    assert (spans.start[14], spans.end[14]) == (14, 22) and text[14:22] == "Pierre's"
    assert (WordSpans.of(ids, quote).start[6]) == 6  # before issue 14: "don" + "t"
    # the quotes around 'yes' have a letter on one side only: still quotes
    inside = word.inword_apostrophes(ids)
    assert np.flatnonzero(inside).tolist() == [5, 20] and not quote.inword_apostrophes(ids).any()
    w, pu, op = word.at(ids)
    assert w[5] and not pu[5] and not op[5] and op[8] and pu[8] and op[12]
    counts = train_word_counts([ids], word)
    assert counts[ids_to_str(ids[2:7])] == 1 and counts[ids_to_str(ids[14:22])] == 1
    cfg = OracleConfig(ngram_ns=(), memory_windows=(), rare_counts=(), boosts=())
    assert one_error(text, 6, cfg, vocab_text=vt) is None  # the 't' of don't: inside a word, no word-model error
    assert one_error(text, 5, cfg, vocab_text=vt) is None  # the apostrophe itself: part of the word, not punct
    assert one_error(text, 9, cfg, vocab_text=vt) == ("word", None)  # the 'y' after an opening quote
    old = OracleConfig.before_issue_14(ngram_ns=(), memory_windows=(), rare_counts=(), boosts=())
    assert one_error(text, 6, old, vocab_text=vt) == ("word", None)
    assert one_error(text, 5, old, vocab_text=vt) == ("punct", None)
    # the char unit also knows the typographic apostrophe
    cv = Vocab(unit="char", symbols=tuple(sorted(map(ord, "don’t "))))
    cids = cv.encode(np.array([ord(c) for c in "don’t"]))
    assert CharClasses.for_vocab(cv).inword_apostrophes(cids).tolist() == [False, False, False, True, False]


def test_boosts_go_up_to_the_threshold_and_nothing_remains():
    assert OracleConfig().boost_levels == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert OracleConfig(threshold=0.25).boost_levels == (0.1, 0.2, 0.25)
    assert OracleConfig(boost_max=0.4).boost_levels == OracleConfig.before_issue_14().boost_levels == (0.1, 0.2, 0.3, 0.4)
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, size=300) ** 3
    cfg = OracleConfig(ngram_ns=(), memory_windows=(), rare_counts=())
    ids, vocab = encode("a" * 301)
    args = (np.arange(1, 301), ids, CharClasses.for_vocab(vocab), {}, Counter())
    b = oracle_breakdown(p, *args, cfg)
    assert b.errors == int((p < 0.5).sum()) > 0 and b.remaining == 0
    assert b.steps[-1].param == 0.5 and b.steps[-1].removed == int((p < 0.1).sum()) > 0
    old = oracle_breakdown(p, *args, OracleConfig.before_issue_14(ngram_ns=(), memory_windows=(), rare_counts=()))
    assert old.remaining == int((p < 0.1).sum())


def test_before_issue_14_and_new_options_validated():
    old = OracleConfig.before_issue_14().to_dict()
    assert (old["memory_scope"], old["rare_from"], old["boosts"], old["apostrophe"]) == (
        "text", "second", [0.1, 0.2, 0.3, 0.4], "quote")
    new = OracleConfig().to_dict()
    assert (new["memory_scope"], new["rare_from"], new["boosts"], new["apostrophe"]) == (
        "split", "first", [0.1, 0.2, 0.3, 0.4, 0.5], "word")
    for bad in (dict(memory_scope="train"), dict(rare_from="third"), dict(apostrophe="none"),
                dict(boost_max=0.0), dict(boosts=(0.1,), boost_max=0.4)):
        with pytest.raises(RnnlensError):
            OracleConfig(**bad)
