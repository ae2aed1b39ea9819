"""Tests for rnnlens.sample: seeding, greedy decoding against a step-by-step reference, prime handling."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnlens.exceptions import RnnlensError
from rnnlens.model import CharRNN, ModelConfig
from rnnlens.sample import default_prime, iter_sample, sample
from rnnlens.data.text import TextConfig, Vocab, read_symbols

ALPHABET = b"abcde \n"
TEXT_CFG = TextConfig()


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.build(read_symbols(ALPHABET, TEXT_CFG), "byte")


@pytest.fixture(scope="module", params=["lstm", "gru"])
def model(request, vocab: Vocab) -> CharRNN:
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(cell=request.param, layers=2, hidden=16, vocab_size=len(vocab)))
    m.reset_parameters(0.5)  # a random but far from uniform next-character distribution
    return m.eval()


@torch.no_grad()
def greedy_reference(model: CharRNN, vocab: Vocab, prime: str, length: int) -> str:
    """Feed the prime one character at a time, then always the argmax, carrying the state by hand."""
    state = None
    logits = None
    for i in vocab.encode(read_symbols(prime.encode(), TEXT_CFG)):
        logits, state = model(torch.tensor([[int(i)]]), state)
    out = []
    for _ in range(length):
        nxt = int(torch.argmax(logits[0, -1]))
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]]), state)
    return prime + vocab.decode(out)


def test_same_seed_same_text_different_seeds_differ(model: CharRNN, vocab: Vocab) -> None:
    a = sample(model, vocab, TEXT_CFG, "ab", 200, temperature=1.0, seed=1)
    assert sample(model, vocab, TEXT_CFG, "ab", 200, temperature=1.0, seed=1) == a
    others = {sample(model, vocab, TEXT_CFG, "ab", 200, temperature=1.0, seed=s) for s in (2, 3, 4)}
    assert a not in others and len(others) == 3


def test_seeding_does_not_depend_on_the_global_rng(model: CharRNN, vocab: Vocab) -> None:
    torch.manual_seed(123)
    a = sample(model, vocab, TEXT_CFG, "a", 50, seed=5)
    torch.manual_seed(999)
    torch.rand(10)
    assert sample(model, vocab, TEXT_CFG, "a", 50, seed=5) == a


def test_temperature_zero_is_greedy_decoding(model: CharRNN, vocab: Vocab) -> None:
    for prime in ("a", "cab e\nd"):
        expected = greedy_reference(model, vocab, prime, 60)
        for seed in (0, 7):  # the seed is irrelevant when greedy
            assert sample(model, vocab, TEXT_CFG, prime, 60, temperature=0, seed=seed) == expected


def test_a_tiny_temperature_approaches_greedy(model: CharRNN, vocab: Vocab) -> None:
    expected = greedy_reference(model, vocab, "ba", 40)
    assert sample(model, vocab, TEXT_CFG, "ba", 40, temperature=1e-4, seed=3) == expected


def test_first_character_follows_the_softmax(model: CharRNN, vocab: Vocab) -> None:
    """Across seeds, the first sampled character's frequencies match softmax(logits / T)."""
    prime, temperature, n = "ed", 1.5, 1000
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(vocab.encode(read_symbols(prime.encode(), TEXT_CFG))).view(1, -1))
    probs = torch.softmax(logits[0, -1].double() / temperature, dim=-1).numpy()
    counts = np.zeros(len(vocab))
    for seed in range(n):
        ch = sample(model, vocab, TEXT_CFG, prime, 1, temperature=temperature, seed=seed)[-1]
        counts[vocab.encode(read_symbols(ch.encode(), TEXT_CFG))[0]] += 1
    freq = counts / n
    tolerance = 4.5 * np.sqrt(probs * (1 - probs) / n) + 1e-3
    assert np.all(np.abs(freq - probs) <= tolerance), (freq, probs)


def test_output_starts_with_the_prime_and_has_the_length(model: CharRNN, vocab: Vocab) -> None:
    for prime, length in (("a", 0), ("a", 1), ("dead bead\n", 37)):
        text = sample(model, vocab, TEXT_CFG, prime, length, temperature=0.8, seed=0)
        assert text.startswith(prime)
        assert len(text) == len(prime) + length
        assert set(text) <= set(ALPHABET.decode())


def test_unseen_prime_characters_are_refused(model: CharRNN, vocab: Vocab) -> None:
    with pytest.raises(RnnlensError, match="not in the model's vocabulary") as info:
        sample(model, vocab, TEXT_CFG, "abZ", 10)
    assert "'Z'" in str(info.value)
    with pytest.raises(RnnlensError):
        sample(model, vocab, TEXT_CFG, "é", 10)  # two UTF-8 bytes, neither in the vocabulary


@pytest.mark.parametrize("kwargs, match", [({"prime": ""}, "prime"), ({"length": -1}, "^length must"),
                                           ({"temperature": -0.5}, "^temperature must")])
def test_bad_arguments_are_refused(model: CharRNN, vocab: Vocab, kwargs: dict, match: str) -> None:
    args = {"prime": "a", "length": 5, "temperature": 1.0} | kwargs
    with pytest.raises(RnnlensError, match=match) as info:
        sample(model, vocab, TEXT_CFG, args["prime"], args["length"], temperature=args["temperature"])
    assert info.value.field == next(iter(kwargs))  # the CLI shows it as that flag


def test_default_prime(vocab: Vocab) -> None:
    assert default_prime(vocab) == "\n"
    no_newline = Vocab.build(read_symbols(b"xyz", TEXT_CFG), "byte")
    assert default_prime(no_newline) == "x"


def test_streamed_pieces_join_to_the_whole_sample_and_never_cut_a_character(model: CharRNN) -> None:
    text = "é ü ß 漢字 ab\n".encode()  # multibyte characters: pieces of 3 bytes cut them in the middle
    v = Vocab.build(read_symbols(text, TEXT_CFG), "byte")
    torch.manual_seed(1)
    m = CharRNN(ModelConfig(cell=model.config.cell, layers=1, hidden=8, vocab_size=len(v))).eval()
    whole = sample(m, v, TEXT_CFG, "a", 300, 1.0, seed=4)
    pieces = list(iter_sample(m, v, TEXT_CFG, "a", 300, 1.0, seed=4, chunk=3))
    # joined pieces equal the whole text decoded at once: no multibyte character was split into U+FFFD halves
    assert "".join(pieces) == whole and pieces[0] == "a" and len(pieces) > 50


def test_an_endless_sample_streams_its_first_pieces_at_once(model: CharRNN, vocab: Vocab) -> None:
    pieces = iter_sample(model, vocab, TEXT_CFG, "ab", 10**15, 1.0, chunk=10)
    assert next(pieces) == "ab" and len(next(pieces)) == 10  # no work proportional to the length up front


def test_cli_streams_and_bounds_json(tmp_path, capsys) -> None:
    from rnnlens.cli import main

    text = tmp_path / "t.txt"
    text.write_bytes(b"abcde fgh\n" * 400)
    run = tmp_path / "run"
    assert main(["train", "--text", str(text), "--model", "gru", "--hidden", "8", "--batch-size", "4", "--seq-len",
                 "8", "--max-steps", "2", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--length", "40", "--prime", "ab"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ab") and len(out) == 2 + 40 + 1
    assert main(["sample", str(run), "--length", "40", "--prime", "ab", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == out[:-1]  # the same text streamed and whole
    assert main(["sample", str(run), "--length", str(10**11), "--json"]) == 2
    err = capsys.readouterr().err
    assert "too long for --json" in err and "Traceback" not in err
