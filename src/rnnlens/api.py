"""The front door: ``rl.load(path) -> Run`` and ``rl.train(...) -> Run``.

A :class:`Run` is the Python handle on one run folder (the ``--out`` of ``rnnlens train``, or a shipped
model folder ``models/<name>`` with ``config.json`` and ``best.safetensors``): the model in eval mode, its
:class:`RunConfig` and vocabulary, and the analyses as methods. Text goes in as a ``str`` (read with the
run's unit and newline mode) or as ids; positions are positions in that text::

    import rnnlens as rl
    run = rl.load("runs/quickstart/lstm")
    logits, cache = run.run_with_cache("def f(x):\\n    return x\\n")
    cache["layers.1.c"][5]        # the cell state of layer 1 after reading character 5, shape (H,)

``rl.train`` and ``rnnlens train`` both go through :func:`prepare_run` (settings -> a new run folder, or
the folder to resume) and the training loop :func:`rnnlens.train.train`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .capture.core import NamesFilter, resolve_names, run_with_cache
from .data.splits import Split, stream_split
from .data.text import Vocab, text_to_symbols
from .evaluate import evaluate
from .exceptions import RnnlensError
from .fsutil import read_json
from .model import CharRNN
from .newrun import SETTINGS, default_out, new_run_config
from .run import CONFIG, SUMMARY, RunConfig, load_config, load_model, load_splits, load_symbols
from .runtime import resolve_device
from .train import Reporter, TrainOutcome, init_run, train as train_loop

TextOrIds = str | Sequence[int] | np.ndarray | torch.Tensor
WEIGHTS = {"best": "best", "last": "state"}


class Run:
    """A trained model with its run folder, config and vocabulary (see :func:`load`)."""

    def __init__(self, path: str | os.PathLike, model: CharRNN, config: RunConfig, meta: dict | None = None,
                 data_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.model = model          # in eval mode
        self.config = config
        self.meta = meta or {}      # the weights file's metadata (step, val_loss, ...)
        self.data_dir = data_dir    # where named corpora are read from (None: $RNNLENS_DATA)
        self._splits: dict[str, Split] | None = None

    def __repr__(self) -> str:
        m = self.config.model
        return (f"Run({str(self.path)!r}: {m.layers}-layer {m.cell}, hidden {m.hidden}, K={m.vocab_size}, "
                f"{self.config.source.label}, step {self.meta.get('step')})")

    @property
    def vocab(self) -> Vocab:
        return self.config.vocab

    @property
    def device(self) -> torch.device:
        return self.model.head.weight.device

    @property
    def summary(self) -> dict | None:
        """summary.json of a finished run (status, losses, steps, ...), or None."""
        path = self.path / SUMMARY
        return read_json(path) if path.is_file() else None

    # ----- text <-> ids ------------------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        """int64 ids (N,) of a string, read with the run's unit and newline mode; unseen characters raise."""
        if not isinstance(text, str):
            raise RnnlensError(f"text must be a str, got {type(text).__name__}; decode bytes first", field="text")
        return self.vocab.encode(text_to_symbols(text, self.config.text))

    def decode(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> str:
        """The text of ids."""
        if torch.is_tensor(ids):
            ids = ids.detach().cpu().numpy()
        return self.vocab.decode(ids)

    def ids(self, text_or_ids: TextOrIds) -> torch.Tensor:
        """A string or ids as a 1-D int64 tensor on the model's device (N,), checked against the vocabulary."""
        if isinstance(text_or_ids, str):
            ids = torch.from_numpy(self.encode(text_or_ids))
        else:
            ids = torch.as_tensor(np.asarray(text_or_ids.cpu() if torch.is_tensor(text_or_ids) else text_or_ids))
            if ids.dim() != 1 or (ids.numel() and ids.dtype.is_floating_point):
                raise RnnlensError(f"ids must be a 1-D sequence of integers, got shape {tuple(ids.shape)} "
                                   f"({ids.dtype}); pass a str or run.encode(text)", field="text_or_ids")
            ids = ids.long()
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(self.vocab)):
                raise RnnlensError(f"ids must be in 0..{len(self.vocab) - 1}; encode the text with run.encode",
                                   field="text_or_ids")
        if ids.numel() == 0:
            raise RnnlensError("the text is empty; pass at least one character", field="text_or_ids")
        return ids.to(self.device)

    # ----- the model over a text ---------------------------------------------------------------------
    def run_with_cache(self, text_or_ids: TextOrIds, names: NamesFilter = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Read the text as one stream from the zero state: ``logits`` (N, K), where row t predicts character
        t + 1, and ``cache``: name -> activation indexed by position, ``cache["layers.1.c"][t]`` (H,) the
        state after reading character t. ``names`` selects what is kept (patterns as in
        :func:`rnnlens.capture.core.resolve_names`; default: every h, c, gate and candidate, and logits)."""
        ids = self.ids(text_or_ids)
        want = resolve_names(self.config.model, names, with_targets=False)
        block = run_with_cache(self.model, ids[None], None, want if "logits" in want else [*want, "logits"])
        logits = block["logits"][0]  # (N, K)
        cache = {n: block[n][0] for n in want}
        return logits, cache

    def run_with_hooks(self, text_or_ids: TextOrIds, hooks: dict[str, Callable], names: NamesFilter = None
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``run_with_cache`` with interventions: ``hooks`` maps a layer name (``"layers.1.c"``) to
        ``fn(value, t)``, called at every step t on that step's value (1, H) inside the recurrence; a returned
        tensor or number replaces it, so the edit feeds every later step and the layers above
        (:mod:`rnnlens.capture.hooks`). E.g. zero cell 74: ``{"layers.1.c": rl.set_cell(74, 0.0)}``."""
        from .capture.hooks import run_with_hooks

        ids = self.ids(text_or_ids)
        want = resolve_names(self.config.model, names, with_targets=False)
        block = run_with_hooks(self.model, ids[None], hooks, None, want if "logits" in want else [*want, "logits"])
        return block["logits"][0], {n: block[n][0] for n in want}

    def ablate(self, cell: str, value: str | float = "zero", split: str = "test", text: str | None = None,
               max_chars: int = 100_000, state: str | None = None, out: str | os.PathLike | None = None):
        """Set ``cell`` (``"LAYER:INDEX"``) to ``value`` (zero, mean or a number) at every step over a split or
        a text and compare with the clean model (:func:`rnnlens.analysis.ablation.ablate`): an
        :class:`~rnnlens.analysis.ablation.Ablation` (``.loss_nats``, ``.ablated_loss_nats``, ``.regions``,
        ``.characters``). With ``out``, also writes ablation.json and the heatmap there."""
        from .analysis.ablation import AblationConfig, ablate, write_ablation
        from .cells.analysis import parse_cell

        symbols, stream, _ = self._source(split, text)
        layer, index = parse_cell(cell, self.config)
        result = ablate(self.model, self.config, symbols, stream, AblationConfig(layer, index, value, state, max_chars))
        if out is not None:
            write_ablation(result, symbols, self.vocab.unit, out, f"{self.path.name} {result.cell}", run=self.path)
        return result

    def loss(self, text_or_ids: TextOrIds) -> float:
        """Mean cross-entropy in nats per character of every character after the first, given what precedes
        it (the text read as one stream, as ``rnnlens eval`` reads each row)."""
        ids = self.ids(text_or_ids).cpu().numpy()
        return evaluate(self.model, stream_split(ids, 1, "text"), self.config.split.seq_len).loss_nats

    def next_probs(self, text_or_ids: TextOrIds) -> torch.Tensor:
        """(N, K) probabilities of the next character after each position of the text."""
        logits, _ = self.run_with_cache(text_or_ids, names="logits")
        return F.softmax(logits, dim=-1)

    def sample(self, prime: str | None = None, length: int = 200, temperature: float = 1.0, seed: int = 0) -> str:
        """``prime`` (default: a newline) followed by ``length`` sampled characters (see rnnlens.sample)."""
        from .sample import default_prime, sample

        prime = default_prime(self.vocab) if prime is None else prime
        return sample(self.model, self.vocab, self.config.text, prime, length, temperature, seed)

    # ----- data and analyses -------------------------------------------------------------------------
    def splits(self) -> dict[str, Split]:
        """The run's train/val/test splits (its corpus, checked against the stored checksum); read once."""
        if self._splits is None:
            self._splits = load_splits(self.config, self.data_dir)
        return self._splits

    def _source(self, split: str, text: str | None) -> tuple[np.ndarray, Split, str]:
        """(all symbols of the source, the split to stream, a label): one of the splits, or a text cut into
        rows as ``--text`` is by the CLI."""
        if text is not None:
            symbols = text_to_symbols(text, self.config.text)
            return symbols, stream_split(self.vocab.encode(symbols), self.config.split.batch_size, "text"), "text"
        if split not in ("train", "val", "test"):
            raise RnnlensError(f"split must be train, val or test, got {split!r}", field="split")
        return load_symbols(self.config, self.data_dir), self.splits()[split], f"{self.config.source.label} {split}"

    def cells(self, split: str = "test", text: str | None = None, max_chars: int = 50_000, top: int = 5,
              syntax: str = "auto", state: str | None = None, out: str | os.PathLike | None = None):
        """Interpretable cells (:func:`rnnlens.cells.analysis.find_cells`) over a split or a text: a
        :class:`~rnnlens.cells.discover.DiscoveryReport` (``.features[i].best``, ``.format_lines()``). With
        ``out``, also writes report.html, report.json and one PNG per feature there."""
        from .cells.analysis import find_cells, state_label, write_findings

        symbols, stream, label = self._source(split, text)
        findings = find_cells(self.model, self.config, symbols, stream, label, state, max_chars, top, syntax)
        if out is not None:
            write_findings(findings, out, self.vocab.unit, f"Interpretable cells of {self.path.name} on {label} "
                           f"({state_label(findings.state)})", run=self.path)
        return findings.report

    def gates(self, split: str = "test", text: str | None = None, max_chars: int = 0, left: float = 0.1,
              right: float = 0.9, mostly: float = 0.9):
        """Gate saturation (:func:`rnnlens.analysis.gates.gate_saturation`) over a split or a text: a
        :class:`~rnnlens.analysis.gates.SaturationResult` (``.summary()``, ``.to_dict()``)."""
        from .analysis.gates import SaturationConfig, gate_saturation

        _, stream, _ = self._source(split, text)
        return gate_saturation(self.model, stream, self.config.split.seq_len, SaturationConfig(left, right, mostly),
                               max_chars)


def load(path: str | os.PathLike, weights: str = "best", device: torch.device | str = "cpu",
         data_dir: str | os.PathLike | None = None) -> Run:
    """The run (or model) folder ``path`` with its ``best`` weights (or ``last``: the latest training state)."""
    if weights not in WEIGHTS:
        raise RnnlensError(f"weights must be best or last, got {weights!r}", field="weights")
    model, cfg, meta = load_model(path, WEIGHTS[weights], resolve_device(device))
    return Run(path, model, cfg, meta, data_dir)


def prepare_run(out: str | os.PathLike | None = None, resume: bool = False, device: torch.device | str = "cpu",
                **settings: Any) -> tuple[Path, RunConfig, dict[str, Split] | None]:
    """The folder to train and its config: a new run made from ``settings`` (see
    :func:`rnnlens.newrun.new_run_config`; ``out`` defaults to ``runs/<dataset>-<model>-<layers>l-<size>``),
    or with ``resume`` the existing run ``out``, whose saved settings are kept. Also the splits, when read."""
    given = {k: v for k, v in settings.items() if v is not None}
    if resume:
        if out is None:
            raise RnnlensError("resume needs out, the run folder to continue", field="resume")
        extra = sorted(set(given) - {"data_dir"})
        if extra:
            raise RnnlensError(f"resume continues the run with its saved settings; drop {', '.join(extra)} "
                               "(or train a new run in another folder)", field="resume")
        if not (Path(out) / CONFIG).is_file():
            raise RnnlensError(f"{out} holds no run to resume (no {CONFIG}); start it without resume")
        return Path(out), load_config(out), None
    cfg, splits = new_run_config(device=device, **given)
    out = Path(out) if out is not None else default_out(cfg, given.get("params"), given.get("hidden"))
    init_run(out, cfg)
    return out, cfg, splits


def train(out: str | os.PathLike | None = None, *, resume: bool = False, device: torch.device | str = "auto",
          reporter: Reporter | None = None, should_stop: Callable[[], bool] | None = None, **settings: Any) -> Run:
    """Train a new run (or ``resume`` one) to its end and return it loaded with its best weights.

    ``settings`` are those of ``rnnlens train`` under their flag names: ``dataset="pystdlib"`` (default) or
    ``text=PATH``; ``model="lstm"``, ``layers=2``, ``params="130k"`` or ``hidden=N``, ``dropout``;
    ``unit``, ``newline``, ``layout``, ``fractions``, ``batch_size``, ``seq_len``, ``data_dir``; and the
    recipe: ``epochs``, ``max_steps``, ``lr``, ``eval_every``, ``seed``, ``precision``, ... (see
    :class:`rnnlens.recipe.TrainConfig`); ``tensorboard=True`` (or a folder) also logs the scalars for
    TensorBoard in ``RUN/tensorboard`` (or there; :mod:`rnnlens.tblog`). A run that stalls or diverges is returned too: check
    ``run.summary["status"]``. Ctrl-C saves the state and raises ``KeyboardInterrupt``;
    ``rl.train(out, resume=True)`` continues it.
    """
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise RnnlensError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}", field=unknown[0])
    device = resolve_device(device)
    path, _, splits = prepare_run(out, resume, device, **settings)
    outcome: TrainOutcome = train_loop(path, device, reporter, data_dir=settings.get("data_dir"), splits=splits,
                                       should_stop=should_stop)
    if outcome.status == "interrupted":
        raise KeyboardInterrupt(f"training of {path} interrupted at step {outcome.step}; the state is saved: "
                                f"rl.train({str(path)!r}, resume=True) continues it")
    return load(path, device=device, data_dir=settings.get("data_dir"))
