"""Tests of rnnlens.ngram.model (+ ngram_counts, ngram_io, commands/ngram) against a brute-force reference."""
from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pytest

from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.ngram.model import KneserNeyLM, NGramConfig, row_streams
from rnnlens.ngram.counts import FALLBACK_DISCOUNTS, discounts
from rnnlens.ngram.files import token

WORDS = ["the ", "then ", "hen ", "at ", "that ", "hat ", "a ", "tea ", "eat "]


# ----- brute-force reference: plain dicts, straight from the formulas --------------------------------
def reference(streams: list[list[int]], K: int, n: int):
    """(prob(w, context_tuple), matched(w, context_tuple), discounts) of interpolated modified KN."""
    N = n + 1
    raw: dict[tuple, int] = defaultdict(int)
    left: dict[tuple, set] = defaultdict(set)
    for s in streams:
        for L in range(1, N + 1):
            for i in range(len(s) - L + 1):
                g = tuple(s[i:i + L])
                raw[g] += 1
                left[g].add(s[i - 1] if i > 0 else "start")
    adj = {g: (c if len(g) == N else len(left[g])) for g, c in raw.items()}
    D = {}
    for L in range(1, N + 1):
        nk = [sum(1 for g, a in adj.items() if len(g) == L and a == k) for k in (1, 2, 3, 4)]
        if 0 in nk[:3]:
            D[L] = FALLBACK_DISCOUNTS
            continue
        Y = nk[0] / (nk[0] + 2 * nk[1])
        d = tuple(k - (k + 1) * Y * nk[k] / nk[k - 1] for k in (1, 2, 3))
        D[L] = d if all(0 < d[k - 1] <= k for k in (1, 2, 3)) else FALLBACK_DISCOUNTS
    followers: dict[tuple, dict] = defaultdict(dict)
    for g, a in adj.items():
        followers[g[:-1]][g[-1]] = a

    def prob(w: int, h: tuple) -> float:
        h = h[-n:] if n else ()
        L = len(h) + 1
        lower = 1.0 / K if L == 1 else prob(w, h[1:])
        f = followers.get(h)
        if not f:
            return lower
        total = sum(f.values())
        disc = lambda a: D[L][min(a, 3) - 1]  # noqa: E731
        gamma = sum(disc(a) for a in f.values()) / total
        a = f.get(w, 0)
        return (max(a - disc(a), 0.0) / total if a else 0.0) + gamma * lower

    def matched(w: int, h: tuple) -> int:
        h = h[-n:]
        return max([j for j in range(len(h) + 1) if (tuple(h[len(h) - j:]) + (w,)) in raw] or [0])

    return prob, matched, D


def word_text(rng: np.random.Generator, length: int) -> np.ndarray:
    """Ids of random words from WORDS (repeats make long multi-count n-grams), vocabulary ' aehnt' + 'x'."""
    alphabet = " aehntx"
    s = "".join(rng.choice(WORDS) for _ in range(length))[:length]
    return np.array([alphabet.index(ch) for ch in s], dtype=np.int64)


def random_contexts(rng: np.random.Generator, M: int, n: int, K: int, text: np.ndarray) -> np.ndarray:
    """(M, n) contexts: half copied from the text (seen), half random; left-padded with -1 at random lengths."""
    ctx = rng.integers(0, K, size=(M, n))
    for r in range(0, M, 2):
        i = int(rng.integers(0, len(text) - n))
        ctx[r] = text[i:i + n]
    for r in range(M):
        ctx[r, :int(rng.integers(0, n + 1))] = -1
    return ctx


# ----- equivalence with the reference ------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
def test_matches_brute_force_reference(n: int) -> None:
    rng = np.random.default_rng(n)
    K = 7  # 'x' (id 6) never occurs in training: it only gets the uniform share
    # words (long repeats), uniform noise over 6 ids (many once-seen grams), a 5-symbol stream
    streams = [word_text(rng, 300), rng.integers(0, K - 1, size=150), word_text(rng, 5)]
    model = KneserNeyLM.fit_streams(streams, K, NGramConfig(n))
    prob, matched, D = reference([s.tolist() for s in streams], K, n)
    assert np.allclose(model.discounts, [D[L] for L in range(1, n + 2)], rtol=0, atol=1e-12)
    test = np.concatenate([word_text(rng, 150), streams[1][20:90], rng.integers(0, K, size=100)])
    lp, mt = model.score_stream(test)
    want = [math.log(prob(int(test[i]), tuple(test[:i].tolist()))) for i in range(1, len(test))]
    np.testing.assert_allclose(lp, want, rtol=0, atol=1e-12)
    assert mt.tolist() == [matched(int(test[i]), tuple(test[:i].tolist())) for i in range(1, len(test))]
    ctx = random_contexts(rng, 40, n, K, streams[0])
    dist = model.next_distributions(ctx)
    want_d = [[prob(w, tuple(int(c) for c in row if c >= 0)) for w in range(K)] for row in ctx]
    np.testing.assert_allclose(dist, want_d, rtol=0, atol=1e-12)


def test_reference_cases_use_real_discounts() -> None:
    """The brute-force comparison above exercises the discount formula, not only the fallback."""
    rng = np.random.default_rng(3)
    model = KneserNeyLM.fit_streams([word_text(rng, 300)], 7, NGramConfig(3))
    assert not model.discount_fallback.all()


def test_distributions_sum_to_one_seen_and_unseen() -> None:
    rng = np.random.default_rng(7)
    text = word_text(rng, 20000)
    model = KneserNeyLM.fit(text, 7, NGramConfig(12))
    ctx = random_contexts(rng, 2000, 12, 7, text)
    dist = model.next_distributions(ctx)
    assert dist.shape == (2000, 7) and (dist > 0).all()
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # the distribution agrees with per-target scoring of the same contexts
    w = rng.integers(0, 7, size=2000)
    lp, _ = model._score(ctx, w)
    np.testing.assert_allclose(np.log(dist[np.arange(2000), w]), lp, rtol=0, atol=1e-12)


def test_compact_tables_match_reference_on_long_repeats() -> None:
    """Long repeated stretches and once-seen grams (the implicit part of the tables) score exactly."""
    rng = np.random.default_rng(11)
    base = word_text(rng, 80)
    text = np.concatenate([base, word_text(rng, 40), base[:50], word_text(rng, 30), base])
    n = 15
    model = KneserNeyLM.fit(text, 7, NGramConfig(n))
    total = sum(len(t.fwd_keys) for t in model.tables)
    distinct = sum(len({tuple(text[i:i + L]) for i in range(len(text) - L + 1)}) for L in range(1, n + 2))
    assert total < distinct  # once-seen grams past the frontier are not tabled
    prob, matched, _ = reference([text.tolist()], 7, n)
    test = np.concatenate([base[10:70], word_text(rng, 40)])
    lp, mt = model.score_stream(test)
    want = [math.log(prob(int(test[i]), tuple(test[:i].tolist()))) for i in range(1, len(test))]
    np.testing.assert_allclose(lp, want, rtol=0, atol=1e-12)
    assert mt.max() == n


def test_score_rows_uses_each_rows_own_context() -> None:
    rng = np.random.default_rng(5)
    text = word_text(rng, 500)
    model = KneserNeyLM.fit(text, 7, NGramConfig(4))
    x = rng.integers(0, 7, size=(3, 9))
    y = rng.integers(0, 7, size=(3, 9))  # deliberately not x shifted: y[r, j] is scored given x[r, :j+1]
    lp, mt = model.score_rows(x, y)
    prob, matched, _ = reference([text.tolist()], 7, 4)
    for r in range(3):
        for j in range(9):
            h = tuple(x[r, :j + 1].tolist())
            assert lp[r, j] == pytest.approx(math.log(prob(int(y[r, j]), h)), abs=1e-12)
            assert mt[r, j] == matched(int(y[r, j]), h)


def test_streams_do_not_form_ngrams_across_boundaries() -> None:
    a, b = np.array([0, 1, 2]), np.array([3, 4])
    model = KneserNeyLM.fit_streams([a, b], 5, NGramConfig(2))
    _, mt = model.score_stream(np.array([1, 2, 3]))
    assert mt.tolist() == [1, 0]  # "1 2" was seen; "2 3" only exists across the boundary
    joined = KneserNeyLM.fit(np.concatenate([a, b]), 5, NGramConfig(2))
    assert joined.score_stream(np.array([1, 2, 3]))[1].tolist() == [1, 2]
    assert row_streams(np.array([[0, 1], [2, 3]]), np.array([[1, 4], [3, 0]]))[0].tolist() == [0, 1, 4]


# ----- discounts ---------------------------------------------------------------------------------------
def test_discount_formula() -> None:
    adj = np.array([1] * 10 + [2] * 4 + [3] * 2 + [4] * 1 + [9] * 3)
    Y = 10 / (10 + 2 * 4)
    d, fb = discounts(adj)
    assert not fb
    assert d == pytest.approx((1 - 2 * Y * 4 / 10, 2 - 3 * Y * 2 / 4, 3 - 4 * Y * 1 / 2))


@pytest.mark.parametrize("adj", [[1, 1, 1, 3, 3], [2, 2, 3], [1, 2, 2], [1] * 5 + [2] * 9 + [3] + [4] * 9])
def test_degenerate_counts_of_counts_fall_back(adj: list[int]) -> None:
    # n2 = 0, n1 = 0, n3 = 0, and D3 = 3 - 4Y*9/1 < 0: all fall back to the sane (0.5, 1, 1.5)
    assert discounts(np.array(adj)) == (FALLBACK_DISCOUNTS, True)


def test_tiny_text_falls_back_and_stays_normalised() -> None:
    model = KneserNeyLM.fit(np.array([0, 1, 0, 1, 2]), 4, NGramConfig(3))  # n2 = 0 in most orders
    assert model.discount_fallback.any()
    dist = model.next_distributions(np.array([[0, 1, 0], [-1, -1, -1], [3, 3, 3], [-1, 1, 2]]))
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-12)
    assert (dist > 0).all()


# ----- validation, persistence -------------------------------------------------------------------------
def test_config_and_input_validation() -> None:
    for bad in (0, 65, -3, 2.5, True):
        with pytest.raises(RnnlensError, match="1..64"):
            NGramConfig(bad)
    with pytest.raises(RnnlensError, match="empty"):
        KneserNeyLM.fit(np.zeros(0, dtype=np.int64), 3, NGramConfig(2))
    with pytest.raises(RnnlensError, match="ids in 0..2"):
        KneserNeyLM.fit(np.array([0, 3]), 3, NGramConfig(2))
    model = KneserNeyLM.fit(np.array([0, 1, 2]), 3, NGramConfig(2))
    with pytest.raises(RnnlensError, match="ids in"):
        model.score_stream(np.array([0, 5]))


def test_save_load_roundtrip_and_bad_files(tmp_path) -> None:
    rng = np.random.default_rng(2)
    text = word_text(rng, 3000)
    model = KneserNeyLM.fit(text, 7, NGramConfig(8), unit="byte", symbols=[ord(c) for c in " aehntx"])
    path = tmp_path / "m.npz"
    model.save(path)
    back = KneserNeyLM.load(path)
    assert (back.n, back.vocab_size, back.unit, back.symbols) == (8, 7, "byte", model.symbols)
    test = word_text(rng, 400)
    np.testing.assert_array_equal(back.score_stream(test)[0], model.score_stream(test)[0])
    raw = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "text.npz").write_bytes(b"not a model")
    np.save(tmp_path / "arr.npy", np.arange(3))
    np.savez(tmp_path / "other.npz", header=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    for name in ("trunc.npz", "text.npz", "arr.npy", "other.npz", "missing.npz"):
        with pytest.raises(RnnlensError) as exc:
            KneserNeyLM.load(tmp_path / name)
        assert "\n" not in str(exc.value) and ";" in str(exc.value)


# ----- ARPA and KenLM ----------------------------------------------------------------------------------
def test_arpa_refuses_high_orders_unless_forced(tmp_path) -> None:
    model = KneserNeyLM.fit(np.array([0, 1, 2, 0, 1]), 3, NGramConfig(6))
    with pytest.raises(RnnlensError, match="force"):
        model.to_arpa(tmp_path / "m.arpa")
    model.to_arpa(tmp_path / "m.arpa", force=True)
    head = (tmp_path / "m.arpa").read_text().splitlines()
    assert head[:2] == ["\\data\\", "ngram 1=6"]


@pytest.mark.parametrize("n", [1, 3, 5])
def test_kenlm_scores_our_arpa_like_we_do(tmp_path, n: int) -> None:
    kenlm = pytest.importorskip("kenlm")
    rng = np.random.default_rng(20 + n)
    model = KneserNeyLM.fit_streams([word_text(rng, 4000), word_text(rng, 500)], 7, NGramConfig(n),
                                    symbols=[ord(c) for c in " aehntx"])
    model.to_arpa(tmp_path / "m.arpa")
    km = kenlm.Model(str(tmp_path / "m.arpa"))
    test = np.concatenate([word_text(rng, 300), rng.integers(0, 7, size=100)])
    sentence = " ".join(token(model, int(i)) for i in test)
    ks = list(km.full_scores(sentence, bos=False, eos=False))
    lp, mt = model.score_stream(test)
    # KenLM stores float32 log10 values: agreement to ~1e-6 nats. Its first token has no context (skipped).
    np.testing.assert_allclose(np.array([s[0] for s in ks[1:]]) * math.log(10), lp, rtol=0, atol=5e-6)
    assert [s[1] - 1 for s in ks[1:]] == mt.tolist()  # KenLM's n-gram length = our matched context + 1


# ----- CLI ---------------------------------------------------------------------------------------------
def test_cli_json_save_load_and_errors(tmp_path, capsys) -> None:
    rng = np.random.default_rng(9)
    text = "".join(rng.choice(WORDS) for _ in range(1500)).encode()
    src = tmp_path / "t.txt"
    src.write_bytes(text)
    common = ["ngram", "--text", str(src), "--n", "4", "--batch-size", "5", "--seq-len", "20"]
    assert main(common + ["--json", "--save", str(tmp_path / "m.npz")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"n", "order", "loss_nats", "loss_bits", "chars", "build_s", "score_s"}
    assert out["order"] == 5 and out["loss_bits"] == pytest.approx(out["loss_nats"] / math.log(2))
    assert main(common + ["--json", "--load", str(tmp_path / "m.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["loss_nats"] == pytest.approx(out["loss_nats"], abs=1e-12)
    other = tmp_path / "o.txt"
    other.write_bytes(text + b"Z")
    assert main(["ngram", "--text", str(other), "--load", str(tmp_path / "m.npz"), "--batch-size", "5",
                 "--seq-len", "20"]) == 2
    assert "not in the model's vocabulary" in capsys.readouterr().err
    assert main(common + ["--load", str(tmp_path / "m.npz"), "--unit", "char"]) == 2
    assert "pass --unit byte" in capsys.readouterr().err
    assert main(common[:3] + ["--n", "0"]) == 2
    assert "1..64" in capsys.readouterr().err


# ----- the paper's number ------------------------------------------------------------------------------
@pytest.mark.slow
def test_warpeace_20gram_matches_paper(shared_data) -> None:
    from rnnlens.data.splits import SplitConfig, make_splits
    from rnnlens.data.text import TextConfig, Vocab, read_symbols

    symbols = read_symbols(shared_data / "warpeace_input.txt", TextConfig(unit="byte"))
    vocab = Vocab.build(symbols, "byte")
    splits = make_splits(vocab.encode(symbols), SplitConfig(layout="interleaved", fractions=(0.8, 0.1, 0.1),
                                                            batch_size=100, seq_len=100))
    train, test = splits["train"], splits["test"]
    model = KneserNeyLM.fit_streams(row_streams(train.x, train.y), len(vocab), NGramConfig(20))
    lp, _ = model.score_rows(test.x, test.y)
    assert len(vocab) == 87 and lp.size == 330_000
    assert -lp.mean() == pytest.approx(1.195, rel=0.005)
