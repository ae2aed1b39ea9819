"""The paper's n-NN baseline: a one-hidden-layer tanh MLP on the one-hot codes of the last n characters.

For a position with context c_1..c_n (oldest first) and vocabulary size K:

    h      = tanh(W1 [onehot(c_1); ...; onehot(c_n)] + b1)        W1: (H, n*(K+1))
    logits = W2 h + b2                                             W2: (K, H)

Each one-hot code has K+1 slots: ids 0..K-1 and the "no symbol" slot K, used where the context runs
off the start of a row (the first n-1 predictions of every row). Because the input is a concatenation
of one-hot codes, ``W1 @ concat`` is the sum over slots i of column ``i*(K+1) + c_i`` of W1, so the
first layer is stored as an embedding table ``emb`` of shape (n*(K+1), H) (``emb[i*(K+1) + k]`` is
column ``i*(K+1) + k`` of W1) and computed as a sum of n lookups (``F.embedding_bag``, mode "sum"):
the same function at O(n*H) instead of O(n*K*H) per position.

Positions are the split's: the context of ``y[r, j]`` is ``x[r, :j+1]`` (its last n ids, padded with K
on the left), as :meth:`rnnlens.ngram.model.KneserNeyLM.score_rows` does. Training uses every position of every
train row, shuffled with a seeded generator, in minibatches; after every epoch the val loss is measured
and the best-on-val weights are kept; training stops after ``patience`` epochs without improvement.
The recipe is the paper's: RMSProp (lr 2e-3, alpha 0.95), element-wise clipping at 5, uniform(-0.08,
0.08) initialisation, and the learning rate times 0.95 after every epoch past ``lr_decay_after``.

A symbol of the vocabulary that never occurs in training keeps its initial (random, tiny) input
weights, and its output logit is only pushed down, so it gets a small probability; a symbol outside
the vocabulary cannot be encoded at all (``Vocab.encode`` raises). With the corpus-wide vocabulary
(``Vocab.build`` over the whole text, as char-rnn did) the test split never holds an unknown symbol.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnlens.checkpoint import check_state_dict, load_tensors, save_tensors
from rnnlens.exceptions import RnnlensError
from rnnlens.recipe import TrainConfig, clip_gradients, lr_for_epoch, make_optimizer, set_lr
from rnnlens.data.splits import Split
from rnnlens.data.text import Vocab

MAX_N = 64
FORMAT = "rnnlens-nnn"
FORMAT_VERSION = 1
_EVAL_CHUNK = 1 << 16  # positions per forward pass when scoring (bounds memory at 64K x K floats)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class NNNConfig:
    """How an n-NN is built and trained (the paper's recipe as defaults)."""

    n: int = 4                    # context length in characters
    hidden: int = 256             # tanh hidden units H
    epochs: int = 20              # at most this many epochs
    epoch_positions: int = 0      # train positions per epoch (0: all of them); validation follows each epoch
    batch: int = 4096             # positions per minibatch
    patience: int = 3             # stop after this many epochs without a better val loss (0: never)
    lr: float = 2e-3
    alpha: float = 0.95           # RMSProp decay
    eps: float = 1e-8
    lr_decay: float = 0.95        # multiply the lr by this after every epoch past lr_decay_after
    lr_decay_after: int = 10
    clip: float = 5.0             # element-wise gradient clip (0: off)
    init_range: float = 0.08      # uniform(-r, r) initialisation
    seed: int = 0

    def __post_init__(self) -> None:
        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)
        checks = [
            (is_int(self.n) and 1 <= self.n <= MAX_N,
             f"n-NN context length n must be an integer in 1..{MAX_N}, got {self.n!r}; pass e.g. --n 4"),
            (is_int(self.hidden) and self.hidden >= 1, f"hidden size must be a positive integer, got {self.hidden!r}"),
            (is_int(self.epochs) and self.epochs >= 1, f"epochs must be a positive integer, got {self.epochs!r}"),
            (is_int(self.epoch_positions) and self.epoch_positions >= 0,
             f"epoch_positions must be an integer >= 0, got {self.epoch_positions!r}"),
            (is_int(self.batch) and self.batch >= 1, f"batch must be a positive integer, got {self.batch!r}"),
            (is_int(self.patience) and self.patience >= 0, f"patience must be an integer >= 0, got {self.patience!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise RnnlensError(message)
        self.recipe()  # validates lr, alpha, decay, clip, init range

    def recipe(self) -> TrainConfig:
        """The shared recipe settings, for rnnlens.recipe's optimizer and schedule."""
        return TrainConfig(epochs=float(self.epochs), lr=self.lr, alpha=self.alpha, eps=self.eps,
                           lr_decay=self.lr_decay, lr_decay_after=self.lr_decay_after, clip=self.clip,
                           init_range=self.init_range, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NNNConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _windows(x: torch.Tensor, n: int, pad: int) -> torch.Tensor:
    """(B, N) ids -> (B, N + n - 1): each row left-padded with n-1 ``pad`` ids."""
    return torch.cat([torch.full((x.shape[0], n - 1), pad, dtype=torch.long, device=x.device), x], dim=1)


class RowContexts:
    """The positions of a split's rows and their n-character contexts, gathered on demand.

    Position p = r * N + j (row-major over (B, N)) has context ``x[r, j-n+1 .. j]`` (K where j-n+1 < 0)
    and target ``y[r, j]``. Only the padded rows are stored, so memory stays at (B, N) ids.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None, n: int, vocab_size: int, device: torch.device) -> None:
        xt = torch.as_tensor(np.asarray(x, dtype=np.int64), device=device)
        self.n, self.B, self.N = n, int(xt.shape[0]), int(xt.shape[1])
        self.padded = _windows(xt, n, vocab_size)  # (B, N + n - 1)
        self.y = None if y is None else torch.as_tensor(np.asarray(y, dtype=np.int64), device=device).reshape(-1)
        self.offsets = torch.arange(n, device=device)

    def __len__(self) -> int:
        return self.B * self.N

    def contexts(self, pos: torch.Tensor) -> torch.Tensor:
        """(M,) flat positions -> (M, n) context ids, oldest first, K = no symbol."""
        r, j = pos // self.N, pos % self.N
        return self.padded[r[:, None], j[:, None] + self.offsets[None, :]]


class NNNModel(nn.Module):
    """The n-NN; ``forward`` maps (M, n) context ids (0..K, K = no symbol) to (M, K) logits."""

    def __init__(self, n: int, hidden: int, vocab_size: int) -> None:
        super().__init__()
        self.n, self.hidden, self.vocab_size = int(n), int(hidden), int(vocab_size)
        self.emb = nn.Parameter(torch.empty(self.n * (self.vocab_size + 1), self.hidden))  # W1 transposed
        self.b1 = nn.Parameter(torch.empty(self.hidden))
        self.out = nn.Linear(self.hidden, self.vocab_size)
        self.register_buffer("slot", torch.arange(self.n) * (self.vocab_size + 1), persistent=False)

    def init_uniform(self, r: float, generator: torch.Generator) -> None:
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.rand(p.shape, generator=generator) * 2 * r - r)

    def hidden_layer(self, ctx: torch.Tensor) -> torch.Tensor:
        """(M, n) context ids -> (M, H) tanh activations (the one-hot concat times W1, as n lookups)."""
        return torch.tanh(F.embedding_bag(ctx + self.slot, self.emb, mode="sum") + self.b1)

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden_layer(ctx))  # (M, K)

    @property
    def device(self) -> torch.device:
        return self.emb.device

    def _rows(self, x: np.ndarray, y: np.ndarray | None) -> RowContexts:
        x = np.asarray(x)
        if x.ndim != 2 or (y is not None and np.shape(y) != x.shape):
            raise RnnlensError(f"x and y must both be (B, N), got {x.shape} and {np.shape(y)}; pass a Split's x and y")
        for name, a in (("inputs x", x), ("targets y", y)):
            if a is not None and np.size(a) and (np.min(a) < 0 or np.max(a) >= self.vocab_size):
                raise RnnlensError(f"{name} must be ids in 0..{self.vocab_size - 1}, found {np.min(a)}..{np.max(a)}; "
                                   "encode the text with the model's vocabulary")
        return RowContexts(x, y, self.n, self.vocab_size, self.device)

    @torch.no_grad()
    def log_probs_rows(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(B, N) natural-log probabilities (float64) of ``y[r, j]`` given ``x[r, :j+1]`` (its last n ids)."""
        rows = self._rows(x, y)
        out = np.empty(len(rows), dtype=np.float64)
        for a in range(0, len(rows), _EVAL_CHUNK):
            pos = torch.arange(a, min(a + _EVAL_CHUNK, len(rows)), device=self.device)
            logp = F.log_softmax(self(rows.contexts(pos)).double(), dim=-1)
            out[a:a + len(pos)] = logp.gather(1, rows.y[pos, None])[:, 0].cpu().numpy()
        return out.reshape(rows.B, rows.N)

    @torch.no_grad()
    def distributions_rows(self, x: np.ndarray) -> np.ndarray:
        """(B, N, K) float32 next-character probabilities after ``x[r, :j+1]``.

        Computed 64K positions at a time; the result itself takes B*N*K*4 bytes (WP test: 115 MB), so
        pass column slices of a split for longer texts (the first n-1 columns of a slice then lose context).
        """
        rows = self._rows(x, None)
        out = np.empty((len(rows), self.vocab_size), dtype=np.float32)
        for a in range(0, len(rows), _EVAL_CHUNK):
            pos = torch.arange(a, min(a + _EVAL_CHUNK, len(rows)), device=self.device)
            out[a:a + len(pos)] = F.softmax(self(rows.contexts(pos)).float(), dim=-1).cpu().numpy()
        return out.reshape(rows.B, rows.N, self.vocab_size)

    def loss_rows(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean negative log-likelihood in nats per character over a (B, N) split."""
        return float(-self.log_probs_rows(x, y).mean())


# ----- training ----------------------------------------------------------------------------------------
def _check_splits(splits: dict[str, Split]) -> None:
    for name in ("train", "val"):
        if name not in splits or splits[name].num_chars == 0:
            why = "trains on" if name == "train" else "keeps the best weights on"
            raise RnnlensError(f"the {name} split is empty; the n-NN {why} it: use a longer text or other "
                               "--fractions")


def train_nnn(splits: dict[str, Split], vocab_size: int, cfg: NNNConfig, device: torch.device | str = "cpu",
              progress: Progress | None = None) -> tuple[NNNModel, dict[str, Any]]:
    """Train one n-NN on ``splits["train"]``, keeping the best weights on ``splits["val"]``.

    Returns the model (best-on-val weights, in eval mode) and an info dict: ``best_val`` (nats/char),
    ``best_epoch`` (1-based), ``epochs_run``, ``history`` (per epoch: train loss, val loss, lr, seconds),
    ``stopped`` ("patience" or "epochs"), ``train_s``, ``params``.
    """
    _check_splits(splits)
    device = torch.device(device)
    recipe = cfg.recipe()
    gen = torch.Generator().manual_seed(cfg.seed)
    model = NNNModel(cfg.n, cfg.hidden, vocab_size)
    model.init_uniform(cfg.init_range, gen)
    model.to(device)
    train, val = splits["train"], splits["val"]
    rows = RowContexts(train.x, train.y, cfg.n, vocab_size, device)
    params = list(model.parameters())
    opt = make_optimizer(params, recipe)
    per_epoch = cfg.epoch_positions or len(rows)
    order = torch.randperm(len(rows), generator=gen)
    cursor = 0
    best_val, best_state, best_epoch, bad = math.inf, None, 0, 0
    history: list[dict[str, float]] = []
    stopped = "epochs"
    t_start = time.perf_counter()
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        lr = lr_for_epoch(recipe, epoch)
        set_lr(opt, lr)
        model.train()
        total, seen = torch.zeros((), device=device), 0
        remaining = per_epoch
        while remaining > 0:
            if cursor >= len(order):  # a fresh shuffle for every pass over the train positions
                order, cursor = torch.randperm(len(rows), generator=gen), 0
            take = min(cfg.batch, remaining, len(order) - cursor)
            pos = order[cursor:cursor + take].to(device)
            cursor, remaining = cursor + take, remaining - take
            loss = F.cross_entropy(model(rows.contexts(pos)), rows.y[pos])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(params, cfg.clip)
            opt.step()
            total, seen = total + loss.detach() * take, seen + take
        model.eval()
        val_loss = model.loss_rows(val.x, val.y)
        train_loss = float(total) / seen
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                        "seconds": time.perf_counter() - t0})
        if progress:
            progress(f"{cfg.n}-NN H={cfg.hidden} epoch {epoch + 1}: train {train_loss:.4f}, val {val_loss:.4f} "
                     f"nats/char ({time.perf_counter() - t0:.1f} s)")
        if val_loss < best_val:
            best_val, best_epoch, bad = val_loss, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if cfg.patience and bad >= cfg.patience:
                stopped = "patience"
                break
    if best_state is None:
        raise RnnlensError(f"the {cfg.n}-NN's val loss was never finite (training diverged); lower --lr")
    model.load_state_dict(best_state)
    model.eval()
    info = {"best_val": best_val, "best_epoch": best_epoch, "epochs_run": len(history), "history": history,
            "stopped": stopped, "train_s": time.perf_counter() - t_start,
            "params": sum(p.numel() for p in model.parameters())}
    return model, info


def train_nnn_grid(splits: dict[str, Split], vocab_size: int, cfg: NNNConfig, hiddens: Sequence[int],
                   device: torch.device | str = "cpu",
                   progress: Progress | None = None) -> tuple[NNNModel, dict[str, Any]]:
    """Train one n-NN per hidden size in ``hiddens`` and keep the one with the best val loss.

    The info is the winner's, plus ``grid``: {hidden: best val loss} for every size tried.
    """
    if not hiddens:
        raise RnnlensError("the hidden-size grid is empty; pass at least one size, e.g. --hidden 256")
    best: tuple[NNNModel, dict[str, Any]] | None = None
    grid: dict[str, float] = {}
    t0 = time.perf_counter()
    for h in hiddens:
        model, info = train_nnn(splits, vocab_size, NNNConfig.from_dict({**cfg.to_dict(), "hidden": int(h)}),
                                device, progress)
        grid[str(h)] = info["best_val"]
        if best is None or info["best_val"] < best[1]["best_val"]:
            best = (model, info)
    assert best is not None
    model, info = best
    return model, {**info, "hidden": model.hidden, "grid": grid, "grid_s": time.perf_counter() - t0}


# ----- saving and loading ------------------------------------------------------------------------------
def save_nnn(path: str | os.PathLike, model: NNNModel, vocab: Vocab, extra: dict[str, Any] | None = None) -> None:
    """Weights as safetensors with JSON metadata (format, n, hidden, vocabulary, unit), written atomically."""
    if len(vocab) != model.vocab_size:
        raise RnnlensError(f"vocabulary of {len(vocab)} symbols given for a model of K={model.vocab_size}; "
                           "pass the vocabulary the model was trained with")
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "n": model.n, "hidden": model.hidden,
            "vocab_size": model.vocab_size, "unit": vocab.unit, "symbols": list(vocab.symbols), **(extra or {})}
    save_tensors(path, dict(model.state_dict()), meta)


def load_nnn(path: str | os.PathLike, vocab: Vocab | None = None,
             device: torch.device | str = "cpu") -> tuple[NNNModel, Vocab, dict[str, Any]]:
    """Read a model written by :func:`save_nnn` -> (model in eval mode, its vocabulary, metadata).

    With ``vocab``, the saved vocabulary and unit must equal it (else a one-line RnnlensError).
    """
    tensors, meta = load_tensors(path, kind="n-NN model")
    if meta.get("format") != FORMAT:
        raise RnnlensError(f"{path} is not an n-NN model (format {meta.get('format')!r}); pass a file written by "
                           "`rnnlens nnn --save`")
    try:
        saved = Vocab(unit=meta["unit"], symbols=tuple(meta["symbols"]))
        model = NNNModel(int(meta["n"]), int(meta["hidden"]), len(saved))
    except (KeyError, TypeError, ValueError):
        raise RnnlensError(f"n-NN model {path} has a damaged header; save it again with `rnnlens nnn --save`") from None
    if vocab is not None and saved.unit != vocab.unit:
        raise RnnlensError(f"n-NN model {path} reads unit {saved.unit!r}, not {vocab.unit!r}; pass --unit {saved.unit}")
    if vocab is not None and saved.symbols != vocab.symbols:
        raise RnnlensError(f"n-NN model {path} has another vocabulary ({len(saved)} symbols, this text's has "
                           f"{len(vocab)}); score the text it was trained on, or train a model for this text")
    check_state_dict(model, tensors, path)  # type: ignore[arg-type]
    model.load_state_dict(tensors)
    model.to(torch.device(device)).eval()
    return model, saved, meta


__all__ = ["MAX_N", "NNNConfig", "NNNModel", "RowContexts", "train_nnn", "train_nnn_grid", "save_nnn", "load_nnn"]
