"""rnnlens: train character-level recurrent language models and look inside them.

The front door (see docs/api.md)::

    import rnnlens as rl
    run = rl.train(dataset="pystdlib", hidden=32, max_steps=200, out="runs/tiny", device="cpu")
    logits, cache = run.run_with_cache("import os\\n")   # cache["layers.1.c"][t]: state after character t
    rl.KneserNeyLM.from_run(run, n=5).score("import os\\n")

``rnnlens.train`` is the function ``rl.train``; the training loop is ``from rnnlens.train import train``.
"""

__version__ = "0.1.0"

from .exceptions import RnnlensError  # noqa: E402
from .api import Run, load, prepare_run, train  # noqa: E402
from .newrun import new_run_config  # noqa: E402
from .ngram.model import KneserNeyLM, NGramConfig  # noqa: E402
from .run import DataSource, RunConfig, load_config, load_model  # noqa: E402
from .model import CharRNN, ModelConfig  # noqa: E402
from .recipe import TrainConfig  # noqa: E402
from .data.text import TextConfig, Vocab  # noqa: E402
from .data.splits import Split, SplitConfig, make_splits, stream_split  # noqa: E402
from .capture.core import activation_names, iter_capture, run_with_cache  # noqa: E402
from .capture.hooks import iter_hooked, run_with_hooks, set_cell  # noqa: E402
from .analysis.ablation import AblationConfig, ablate, rank_cells  # noqa: E402
from .evaluate import EvalResult, evaluate  # noqa: E402
from .sample import sample  # noqa: E402
from .cells.discover import DiscoveryConfig, discover  # noqa: E402
from .cells.analysis import find_cells  # noqa: E402
from .analysis.gates import SaturationConfig, gate_saturation  # noqa: E402
from .export import export_model  # noqa: E402

__all__ = [
    "__version__", "RnnlensError",
    "Run", "load", "train", "prepare_run", "new_run_config", "KneserNeyLM", "NGramConfig",
    "RunConfig", "DataSource", "load_config", "load_model", "CharRNN", "ModelConfig", "TrainConfig",
    "TextConfig", "Vocab", "Split", "SplitConfig", "make_splits", "stream_split",
    "activation_names", "iter_capture", "run_with_cache", "run_with_hooks", "iter_hooked", "set_cell",
    "AblationConfig", "ablate", "rank_cells", "EvalResult", "evaluate", "sample",
    "DiscoveryConfig", "discover", "find_cells", "SaturationConfig", "gate_saturation", "export_model",
]
