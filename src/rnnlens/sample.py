"""Sampling text from a trained model: prime it, then draw one character at a time."""

from __future__ import annotations

import torch

from .exceptions import RnnlensError
from .model import CharRNN
from .data.text import Vocab, text_to_symbols, TextConfig


def default_prime(vocab: Vocab) -> str:
    """A newline when the vocabulary has one (text usually follows one), else the first symbol."""
    newline = ord("\n")
    return "\n" if newline in vocab.symbols else vocab.decode([0])


@torch.no_grad()
def sample(
    model: CharRNN,
    vocab: Vocab,
    text_cfg: TextConfig,
    prime: str,
    length: int,
    temperature: float = 1.0,
    seed: int = 0,
) -> str:
    """``prime`` followed by ``length`` sampled characters.

    ``temperature`` divides the logits (lower: more conservative); 0 picks the most likely character.
    Prime characters never seen in training raise ``RnnlensError``.
    """
    if length < 0:
        raise RnnlensError(f"length must be >= 0, got {length}", field="length")
    if temperature < 0:
        raise RnnlensError(f"temperature must be >= 0, got {temperature}", field="temperature")
    if not prime:
        raise RnnlensError("prime is empty; pass at least one character to start from", field="prime")
    ids = vocab.encode(text_to_symbols(prime, text_cfg))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        return prime + vocab.decode(_draw(model, ids, length, temperature, gen))
    finally:
        model.train(was_training)


def _draw(model: CharRNN, ids, length: int, temperature: float, gen: torch.Generator) -> list[int]:
    device = model.head.weight.device
    logits, state = model(torch.as_tensor(ids, device=device).view(1, -1))  # (1, T, K)
    last = logits[0, -1]
    out: list[int] = []
    for _ in range(length):
        if temperature == 0:
            nxt = int(last.argmax())
        else:
            probs = torch.softmax(last.double().cpu() / temperature, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]], device=device), state)
        last = logits[0, -1]
    return out
