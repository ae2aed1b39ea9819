"""The models shipped in models/ stay loadable, honest and consistent with their cards and the index.

Every folder under ``models/`` is discovered at collection time, so a newly exported model is covered without
editing this file. Offline, CPU, a few seconds: nothing here trains or reads more than a short string, except
the corpus checksum, which is checked only when the corpus is in the data directory.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from rnnlens.data.corpora import CORPORA, data_dir
from rnnlens.data.splits import stream_split
from rnnlens.data.text import text_to_symbols
from rnnlens.evaluate import evaluate
from rnnlens.fsutil import read_json
from rnnlens.model import CharRNN
from rnnlens.run import BEST, CONFIG, SNAPSHOTS, STATE, SUMMARY, load_config, load_model, load_weights

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHIPPED = sorted(p for p in MODELS.iterdir() if p.is_dir()) if MODELS.is_dir() else []
FORBIDDEN = ("*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", STATE)

# A short text in each corpus' style (written for this test, not taken from the corpora); War and Peace has
# CRLF line ends. A model of another corpus is checked on its vocabulary's symbols instead (no loss bound).
SNIPPETS = {
    "warpeace": "The old prince looked at his son and said nothing, and the princess went to the window.\r\n",
    "linux": "static int foo_probe(struct device *dev)\n{\n\tif (!dev)\n\t\treturn -EINVAL;\n\treturn 0;\n}\n",
}


def data_dirs() -> list[Path]:
    """Where a full corpus may be: rnnlens' data directory ($RNNLENS_DATA, else ~/.cache/rnnlens/data), then the
    shared data folder of tests/conftest.py ($RNNLENS_SHARED_DATA, else ../shared/data beside the repository)."""
    return [data_dir(), Path(os.environ.get("RNNLENS_SHARED_DATA", REPO.parent / "shared" / "data"))]


shipped = pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
SNAPSHOT_FILES = [s for p in SHIPPED for s in sorted((p / SNAPSHOTS).glob("*.safetensors"))]


def test_models_are_shipped():
    assert SHIPPED, f"no model folders under {MODELS}"


@shipped
def test_the_model_builds_and_its_weights_load_with_matching_shapes(folder):
    cfg = load_config(folder)
    model, cfg2, meta = load_model(folder)
    assert cfg2 == cfg and isinstance(model, CharRNN) and not model.training
    summary = read_json(folder / SUMMARY)
    assert model.num_parameters() == summary["params"]
    assert cfg.model.to_dict() == summary["model"] and len(cfg.vocab) == cfg.model.vocab_size
    with safe_open(str(folder / BEST), framework="pt") as fh:
        stored = {k[len("model."):]: fh.get_tensor(k) for k in fh.keys()}
    params = model.state_dict()
    assert set(stored) == set(params)
    for name, tensor in stored.items():
        assert tensor.shape == params[name].shape, name
        assert torch.equal(tensor, params[name]), name  # loaded as stored, nothing cast or dropped
    assert meta["step"] == summary["best_step"] and meta["val_loss"] == pytest.approx(summary["best_val_loss"])


@shipped
def test_weights_are_fp32_and_there_is_no_optimizer_state_or_pickle(folder):
    for path in [folder / BEST, *sorted((folder / SNAPSHOTS).glob("*.safetensors"))]:
        with safe_open(str(path), framework="pt") as fh:
            dtypes = {k: fh.get_tensor(k).dtype for k in fh.keys()}
        assert dtypes and set(dtypes.values()) == {torch.float32}, f"{path}: {dtypes}"
        assert all(k.startswith("model.") for k in dtypes), f"{path} holds more than model weights"
    bad = sorted(str(p.relative_to(folder)) for pattern in FORBIDDEN for p in folder.rglob(pattern))
    assert not bad, f"{folder.name} ships optimizer state or pickles: {bad}"


@pytest.mark.parametrize("path", SNAPSHOT_FILES, ids=[f"{s.parents[1].name}/{s.stem}" for s in SNAPSHOT_FILES])
def test_snapshots_load_into_the_model_at_the_step_they_are_named_after(path):
    _, meta = load_weights(path, load_config(path.parents[1]))
    assert meta["kind"] == "snapshot" and path.stem == f"step-{meta['step']:08d}"


@shipped
def test_the_card_prints_the_summary_and_the_corpus_checksum(folder):
    card = (folder / "README.md").read_text()
    summary, cfg = read_json(folder / SUMMARY), load_config(folder)
    assert f"**{summary['test_loss_nats']:.4f} nats/char**" in card
    assert f"{summary['test_loss_bits']:.4f} bits/char" in card
    assert f"best validation loss | {summary['best_val_loss']:.4f} nats/char at update {summary['best_step']}" in card
    assert f"{summary['params']:,} parameters" in card and f"dropout {cfg.model.dropout:g}" in card
    assert f"sha256 `{cfg.source.sha256}`" in card and len(cfg.source.sha256) == 64


@shipped
def test_the_corpus_in_the_data_directory_has_the_recorded_checksum(folder):
    src = load_config(folder).source
    spec = CORPORA.get(src.dataset or "")
    if spec is None or spec.filename is None:
        pytest.skip(f"{folder.name} was trained on {src.label}, not a named corpus with a file")
    found = [d / spec.filename for d in data_dirs() if (d / spec.filename).is_file()]
    if not found:
        pytest.skip(f"corpus {spec.filename} not in {', '.join(map(str, data_dirs())) or 'any data directory'} "
                    "(set RNNLENS_DATA to the folder holding it)")
    raw = found[0].read_bytes()
    assert (len(raw), hashlib.sha256(raw).hexdigest()) == (src.size, src.sha256), found[0]
    assert src.sha256 == spec.sha256  # and it is the corpus rnnlens knows by that name


@shipped
def test_a_forward_pass_gives_normalised_log_probs_that_evaluate_agrees_with(folder):
    model, cfg, _ = load_model(folder)
    snippet = SNIPPETS.get(cfg.source.dataset or "")
    if snippet is not None:
        ids = cfg.vocab.encode(text_to_symbols(snippet, cfg.text))
    else:
        ids = torch.arange(len(cfg.vocab)).repeat(2).numpy()
    x = torch.from_numpy(ids[:-1]).long()[None]  # (1, T)
    y = torch.from_numpy(ids[1:]).long()  # (T,)
    with torch.no_grad():
        logits, _ = model(x)  # (1, T, K)
    logp = F.log_softmax(logits[0].double(), dim=-1)  # (T, K)
    assert torch.isfinite(logits).all()
    assert torch.allclose(logp.exp().sum(-1), torch.ones(len(y), dtype=torch.float64), atol=1e-9)
    nll = float(-logp[torch.arange(len(y)), y].mean())
    # evaluate() carries the state across blocks of 7: the same loss as the one pass above
    got = evaluate(model, stream_split(ids, batch_size=1), seq_len=7)
    assert got.chars == len(y) and got.loss_nats == pytest.approx(nll, abs=1e-5)
    if snippet is not None:  # a trained model predicts its own corpus' style far better than uniform
        assert nll < 0.6 * math.log(cfg.model.vocab_size), f"{folder.name}: {nll:.3f} nats/char on {snippet!r}"


def test_the_index_lists_every_model_with_its_numbers():
    index = (MODELS / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in index.splitlines() if line.startswith("| [")}
    assert sorted(rows) == sorted(f"[{p.name}]({p.name}/)" for p in SHIPPED)
    for folder in SHIPPED:
        row, s, cfg = rows[f"[{folder.name}]({folder.name}/)"], read_json(folder / SUMMARY), load_config(folder)
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1:9] == [cfg.source.label, cfg.model.cell.upper(), f"{cfg.model.layers} x {cfg.model.hidden}",
                              f"{s['params']:,}", f"{cfg.model.dropout:g}", s["precision"], f"{s['epochs']:g}",
                              f"{s['best_val_loss']:.4f}"], folder.name
        assert cells[9] == f"**{s['test_loss_nats']:.4f}**" and cells[10] == f"{s['wall_s'] / 3600:.2f} h", folder.name
