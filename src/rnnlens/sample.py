"""Sampling text from a trained model: prime it, then draw one character at a time.

:func:`iter_sample` yields the text in pieces as it is drawn (the CLI prints them at once, so an endless
sample can be watched and stopped with Ctrl-C); :func:`sample` returns it whole.
"""

from __future__ import annotations

import codecs
from typing import Iterator

import numpy as np
import torch

from .exceptions import RnnlensError
from .model import CharRNN
from .data.text import Vocab, text_to_symbols, TextConfig


def default_prime(vocab: Vocab) -> str:
    """A newline when the vocabulary has one (text usually follows one), else the first symbol."""
    newline = ord("\n")
    return "\n" if newline in vocab.symbols else vocab.decode([0])


def sample(model: CharRNN, vocab: Vocab, text_cfg: TextConfig, prime: str, length: int, temperature: float = 1.0,
           seed: int = 0) -> str:
    """``prime`` followed by ``length`` sampled characters.

    ``temperature`` divides the logits (lower: more conservative); 0 picks the most likely character.
    Prime characters never seen in training raise ``RnnlensError``.
    """
    return "".join(iter_sample(model, vocab, text_cfg, prime, length, temperature, seed))


def iter_sample(model: CharRNN, vocab: Vocab, text_cfg: TextConfig, prime: str, length: int,
                temperature: float = 1.0, seed: int = 0, chunk: int = 64) -> Iterator[str]:
    """The prime, then the sampled text in pieces of about ``chunk`` characters as they are drawn; joined, the
    same text as :func:`sample` (bytes are decoded incrementally, so a character is never cut in two)."""
    if length < 0:
        raise RnnlensError(f"length must be >= 0, got {length}", field="length")
    if temperature < 0:
        raise RnnlensError(f"temperature must be >= 0, got {temperature}", field="temperature")
    if not prime:
        raise RnnlensError("prime is empty; pass at least one character to start from", field="prime")
    ids = vocab.encode(text_to_symbols(prime, text_cfg))
    return _pieces(model, vocab, prime, ids, length, temperature, seed, max(chunk, 1))


def _pieces(model: CharRNN, vocab: Vocab, prime: str, ids, length: int, temperature: float, seed: int,
            chunk: int) -> Iterator[str]:
    yield prime
    gen = torch.Generator(device="cpu").manual_seed(seed)
    table = np.asarray(vocab.symbols, dtype=np.int64)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace") if vocab.unit == "byte" else None
    was_training = model.training
    model.eval()
    try:
        pending: list[int] = []
        for nxt in _draw(model, ids, length, temperature, gen):
            pending.append(nxt)
            if len(pending) >= chunk:
                yield _decode(table[pending], decoder)
                pending = []
        yield _decode(table[pending], decoder) + (decoder.decode(b"", final=True) if decoder else "")
    finally:
        model.train(was_training)


def _decode(symbols: np.ndarray, decoder) -> str:
    if decoder is None:
        return "".join(map(chr, symbols.tolist()))
    return decoder.decode(symbols.astype(np.uint8).tobytes())


@torch.no_grad()
def _draw(model: CharRNN, ids, length: int, temperature: float, gen: torch.Generator) -> Iterator[int]:
    device = model.head.weight.device
    logits, state = model(torch.as_tensor(ids, device=device).view(1, -1))  # (1, T, K)
    last = logits[0, -1]
    for _ in range(length):
        if temperature == 0:
            nxt = int(last.argmax())
        else:
            probs = torch.softmax(last.double().cpu() / temperature, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        yield nxt
        logits, state = model(torch.tensor([[nxt]], device=device), state)
        last = logits[0, -1]
