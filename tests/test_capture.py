"""Capture equals the fused training path (h, logits) and a step-by-step reference from the equations
(c, gates); streaming, name filters, the on-disk store and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlens.capture.core import activation_names, gate_names, iter_capture, resolve_names, run_with_cache
from rnnlens.capture.store import capture_split, capture_to_dir, open_capture
from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.evaluate import evaluate
from rnnlens.model import CharRNN, ModelConfig
from rnnlens.data.splits import Split, SplitConfig, make_splits, stream_split

TOL = 1e-5
K, H, B, T = 7, 8, 3, 13


def make_model(cell: str, layers: int, seed: int = 0) -> CharRNN:
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(cell=cell, layers=layers, hidden=H, vocab_size=K))
    model.reset_parameters(0.5)  # larger than the paper's 0.08 so gates actually move
    return model.eval()


def random_state(model: CharRNN, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    n = 2 if model.config.cell == "lstm" else 1
    return tuple(torch.rand(model.config.layers, B, H, generator=g) * 2 - 1 for _ in range(n))


def reference(model: CharRNN, x: torch.Tensor, state: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """Step by step, in float64, straight from PyTorch's documented equations (LSTM rows [i f g o], GRU [r z n])."""
    cfg = model.config
    sig, tanh = torch.sigmoid, torch.tanh
    inp = F.one_hot(x, K).double()  # (B, T, K)
    out: dict[str, list] = {}
    for layer in range(cfg.layers):
        w_ih, w_hh, b_ih, b_hh = (getattr(model.rnn, f"{k}_l{layer}").double()
                                  for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        h = state[0][layer].double()
        c = state[1][layer].double() if cfg.cell == "lstm" else None
        rec: dict[str, list] = {}
        for t in range(x.shape[1]):
            xt = inp[:, t]
            if cfg.cell == "lstm":
                pre = xt @ w_ih.T + b_ih + h @ w_hh.T + b_hh
                i, f, g, o = pre.chunk(4, dim=-1)
                i, f, g, o = sig(i), sig(f), tanh(g), sig(o)
                c = f * c + i * g
                h = o * tanh(c)
                vals = {"input_gate": i, "forget_gate": f, "candidate": g, "output_gate": o, "c": c, "h": h}
            elif cfg.cell == "gru":
                gi, gh = xt @ w_ih.T + b_ih, h @ w_hh.T + b_hh
                r = sig(gi[:, :H] + gh[:, :H])
                z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
                n = tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                h = (1 - z) * n + z * h
                vals = {"reset_gate": r, "update_gate": z, "candidate": n, "h": h}
            else:
                pre = xt @ w_ih.T + b_ih + h @ w_hh.T + b_hh
                h = tanh(pre)
                vals = {"pre": pre, "h": h}
            for k, v in vals.items():
                rec.setdefault(k, []).append(v)
        for k, v in rec.items():
            out[f"layers.{layer}.{k}"] = torch.stack(v, dim=1)
        inp = out[f"layers.{layer}.h"]
    out["logits"] = inp @ model.head.weight.double().T + model.head.bias.double()
    return out


def fused_layer_outputs(model: CharRNN, x: torch.Tensor, state) -> list[torch.Tensor]:
    """Layer l's h from the fused kernel (nn.LSTM/GRU/RNN) truncated to layers 0..l with the same weights."""
    cfg = model.config
    outs = []
    for top in range(cfg.layers):
        sub = type(model.rnn)(K, H, num_layers=top + 1, batch_first=True)
        sub.load_state_dict({k: v for k, v in model.rnn.state_dict().items() if int(k.rsplit("_l", 1)[1]) <= top})
        s = tuple(t[: top + 1] for t in state)
        o, _ = sub(F.one_hot(x, K).float(), s if cfg.cell == "lstm" else s[0])
        outs.append(o)
    return outs


@pytest.mark.parametrize("method", ["fused", "steps"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_capture_equals_fused_path_and_step_reference(cell: str, layers: int, method: str) -> None:
    model = make_model(cell, layers)
    x = torch.randint(0, K, (B, T), generator=torch.Generator().manual_seed(2))
    state = random_state(model)
    block = run_with_cache(model, x, state, method=method)
    logits, new_state = model(x, state)  # the fused training path
    assert torch.allclose(block["logits"], logits, atol=TOL, rtol=0)
    for got, want in zip(block.state, new_state):
        assert torch.allclose(got, want, atol=TOL, rtol=0)
    for layer, h in enumerate(fused_layer_outputs(model, x, state)):
        assert torch.allclose(block[f"layers.{layer}.h"], h, atol=TOL, rtol=0)
    ref = reference(model, x, state)
    assert set(ref) == set(block.acts)  # every name is checked, nothing extra
    for name, want in ref.items():
        got = block[name]
        assert got.shape == want.shape, name
        assert (got.double() - want).abs().max().item() < TOL, name
    # the gates really vary (a test on saturated or constant gates would prove little)
    for name in gate_names(model.config):
        assert block[name].std() > 0.05


def test_names_filter_selects_and_matches_full_capture() -> None:
    model = make_model("lstm", 3)
    x = torch.randint(0, K, (B, T))
    y = torch.randint(0, K, (B, T))
    full = run_with_cache(model, x, targets=y)
    part = run_with_cache(model, x, names="layers.1.forget_gate, layers.*.c,loss", targets=y)
    assert list(part.acts) == ["layers.0.c", "layers.1.c", "layers.1.forget_gate", "layers.2.c", "loss"]
    for name, v in part.acts.items():
        assert torch.equal(v, full[name])
    for pattern in ("layers.*.input_gate", "layers.*.forget_gate,loss", "layers.0.c"):  # c or gates not kept
        for name, v in run_with_cache(model, x, names=pattern, targets=y, method="steps").acts.items():
            assert torch.equal(v, full[name]), (pattern, name)
    only = run_with_cache(model, x, names=lambda n: n.endswith(".h"))
    assert list(only.acts) == ["layers.0.h", "layers.1.h", "layers.2.h"]
    assert resolve_names(model.config, ["logits"]) == ["logits"]
    assert gate_names(model.config)[:3] == ["layers.0.forget_gate", "layers.0.input_gate", "layers.0.output_gate"]
    assert "next_prob" not in activation_names(model.config, with_targets=False)
    with pytest.raises(RnnlensError, match="matches no activation"):
        run_with_cache(model, x, names="layers.3.h")
    with pytest.raises(RnnlensError, match="need target"):
        run_with_cache(model, x, names="loss")
    with pytest.raises(RnnlensError, match="matches no activation"):
        run_with_cache(make_model("gru", 1), x, names="layers.0.forget_gate")


def test_next_prob_and_loss_brute_force() -> None:
    model = make_model("gru", 2)
    x, y = torch.randint(0, K, (B, T)), torch.randint(0, K, (B, T))
    block = run_with_cache(model, x, targets=y)
    probs = torch.softmax(model(x)[0], dim=-1)
    for b in range(B):
        for t in range(T):
            p = probs[b, t, y[b, t]].item()
            assert abs(block["next_prob"][b, t].item() - p) < TOL
            assert abs(block["loss"][b, t].item() + np.log(p)) < 1e-4


def split_of(ids: np.ndarray) -> Split:
    return make_splits(ids, SplitConfig(batch_size=4, seq_len=5, fractions=(0.5, 0.25, 0.25)))["test"]


@pytest.mark.parametrize("method", ["fused", "steps"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_streaming_carries_state_like_one_long_call(cell: str, method: str) -> None:
    model = make_model(cell, 2)
    ids = np.random.default_rng(0).integers(0, K, 4 * 5 * 12 + 1)  # + 1: the last character is only a target
    split = split_of(ids)  # (4, 15): three blocks of 5
    blocks = list(iter_capture(model, split, seq_len=5, method=method))
    assert [b.start for b in blocks] == [0, 5, 10]
    whole = run_with_cache(model, torch.from_numpy(split.x), targets=torch.from_numpy(split.y), method="fused")
    for name, v in whole.acts.items():
        streamed = torch.cat([b[name] for b in blocks], dim=1)
        assert torch.allclose(streamed, v, atol=TOL, rtol=0), name
    mean_loss = float(torch.cat([b["loss"] for b in blocks], dim=1).double().mean())
    assert abs(mean_loss - evaluate(model, split, 5).loss_nats) < 1e-5
    cap = capture_split(model, split, 5, names="layers.1.*,loss", max_chars=8)  # 2 columns of 4 rows
    assert cap.shape == (4, 2) and cap["layers.1.h"].shape == (4, 2, H)
    assert np.allclose(cap["layers.1.h"], whole["layers.1.h"][:, :2].numpy(), atol=TOL)


def test_store_round_trip_positions_and_overwrite(tmp_path: Path) -> None:
    model = make_model("lstm", 2)
    ids = np.random.default_rng(1).integers(0, K, 4 * 5 * 12 + 3)  # trimmed: no wrap-around target
    split = split_of(ids)
    mem = capture_split(model, split, 5)
    d32 = capture_to_dir(model, split, 5, tmp_path / "c32", dtype="float32")
    d16 = capture_to_dir(model, split, 5, tmp_path / "c16", dtype="float16", info={"note": "x"})
    assert d32.names == mem.names and isinstance(d32["layers.0.c"], np.memmap)
    for n in mem.names:
        assert np.array_equal(d32[n], mem[n]), n
        tol = 2e-3 * max(1.0, float(np.abs(mem[n]).max()))
        assert np.allclose(d16[n].astype(np.float32), mem[n], atol=tol), n
    assert d16["layers.0.h"].dtype == np.float16 and d16["loss"].dtype == np.float32
    assert d16.info["note"] == "x" and d16.info["split"] == "test"
    pos = d16.positions()
    assert np.array_equal(ids[pos], d16.x)  # offsets point at the input characters
    assert np.array_equal(ids[pos + 1], d16.y)
    rows, cols = d16.locate(pos.reshape(-1))
    assert np.array_equal(d16.flat("layers.1.h")[5], d16["layers.1.h"][rows[5], cols[5]])
    assert np.all(np.diff(d16.flat_positions()) > 0)
    with pytest.raises(RnnlensError, match="not in this capture"):
        d16.locate(0)
    again = capture_to_dir(model, split, 5, tmp_path / "c16", names="loss")
    assert again.names == ["loss"] and not (tmp_path / "c16" / "layers.0.h.npy").exists()
    assert not list((tmp_path / "c16").glob(".*.tmp"))


def test_bad_input_is_a_one_line_error(tmp_path: Path) -> None:
    model = make_model("lstm", 1)
    with pytest.raises(RnnlensError, match="ids must be in 0..6"):
        run_with_cache(model, torch.tensor([[0, 7]]))
    with pytest.raises(RnnlensError, match="integer"):
        run_with_cache(model, torch.zeros(2, 3))
    with pytest.raises(RnnlensError, match="unknown capture method"):
        run_with_cache(model, torch.tensor([[0, 1]]), method="magic")
    with pytest.raises(RnnlensError, match="no time steps"):
        run_with_cache(model, torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(RnnlensError, match="dtype"):
        capture_split(model, stream_split(np.arange(7), 2), 5, dtype="int8")
    with pytest.raises(RnnlensError, match="empty"):
        list(iter_capture(model, Split("test", np.zeros((2, 0), np.int64), np.zeros((2, 0), np.int64)), 5))
    with torch.no_grad():
        model.rnn.weight_hh_l0[0, 0] = float("nan")
    with pytest.raises(RnnlensError, match="non-finite"):
        run_with_cache(model, torch.tensor([[0, 1, 2]]))
    with pytest.raises(RnnlensError, match="not a capture directory"):
        open_capture(tmp_path)


def test_model_is_left_untouched() -> None:
    model = make_model("lstm", 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run_with_cache(model, torch.randint(0, K, (B, T)))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("caprun")
    text = root / "t.txt"
    text.write_text("the cat sat on the mat. " * 150 + "(a [b] c) " * 60)
    rc = main(["train", "--text", str(text), "--batch-size", "4", "--seq-len", "16", "--hidden", "16",
               "--layers", "2", "--max-steps", "20", "--eval-every", "10", "--out", str(root / "run"),
               "--quiet", "--device", "cpu"])
    assert rc == 0
    return root


def test_cli_capture(tiny_run: Path, capsys: pytest.CaptureFixture) -> None:
    out = tiny_run / "cap"
    rc = main(["capture", str(tiny_run / "run"), "--split", "val", "--names", "layers.*.forget_gate,loss",
               "--out", str(out), "--json", "--device", "cpu"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    cap = open_capture(out)
    assert cap.names == ["layers.0.forget_gate", "layers.1.forget_gate", "loss"] == report["names"]
    assert report["chars"] == cap.x.size and abs(report["loss_nats"] - float(cap["loss"].mean())) < 1e-6
    probe = tiny_run / "p.txt"
    probe.write_text("the mat sat on the cat")
    assert main(["capture", str(tiny_run / "run"), "--text", str(probe), "--out", str(tiny_run / "cap2"),
                 "--dtype", "float32", "--device", "cpu"]) == 0
    assert open_capture(tiny_run / "cap2")["layers.1.c"].dtype == np.float32
    capsys.readouterr()
    probe.write_text("the mat sat on the dog!")  # d, g and ! never occur in training
    assert main(["capture", str(tiny_run / "run"), "--text", str(probe), "--out", str(tiny_run / "cap3")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnlens: error:") and "\n" not in err
    assert main(["capture", str(tiny_run / "run"), "--names", "nope", "--out", str(tiny_run / "cap4")]) == 2
    assert "matches no activation" in capsys.readouterr().err
    empty = tiny_run / "noweights"
    empty.mkdir()
    (empty / "config.json").write_text((tiny_run / "run" / "config.json").read_text())
    assert main(["capture", str(empty), "--out", str(tiny_run / "cap5")]) == 2
    assert "no best weights" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["flush", "x.npy"])
def test_a_full_disk_while_capturing_is_one_error_and_leaves_no_temp_files(tmp_path: Path, monkeypatch, where) -> None:
    import errno

    from rnnlens.capture import store
    from rnnlens.exceptions import DiskFullError

    model = make_model("lstm", 1)
    split = split_of(np.random.default_rng(2).integers(0, K, 4 * 5 * 6 + 3))
    capture_to_dir(model, split, 5, tmp_path / "cap", names="loss")  # a previous capture, then the disk fills

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "flush":
        monkeypatch.setattr(np.memmap, "flush", full)
    else:
        monkeypatch.setattr(store, "_save_npy", lambda path, arr: (Path(path).write_bytes(b"\0"), full()))
    with pytest.raises(DiskFullError) as info:
        capture_to_dir(model, split, 5, tmp_path / "cap", names="loss")
    named = "x.npy" if where == "x.npy" else "loss.npy"
    assert str(info.value).startswith(f"no space left on device while writing {tmp_path / 'cap' / named}; ")
    assert not [p.name for p in (tmp_path / "cap").iterdir() if p.name.endswith(".tmp")]
    assert not (tmp_path / "cap" / "index.json").exists()  # no index points at a half capture
    with pytest.raises(RnnlensError, match="not a capture directory"):
        open_capture(tmp_path / "cap")


def test_counted_columns_warmup_and_max_chars() -> None:
    from rnnlens.capture.core import counted_columns
    split = Split("test", np.zeros((4, 40), np.int64), np.zeros((4, 40), np.int64))
    assert counted_columns(split) == (0, 40)
    assert counted_columns(split, 0, 5) == (5, 40)
    assert counted_columns(split, 0, 30) == (10, 40)  # the warmup is at most a quarter of a row
    assert counted_columns(split, 10, 5) == (5, 8)  # 10 predictions over 4 rows: 3 columns after the warmup
    assert counted_columns(split, 10_000, 5) == (5, 40)
    with pytest.raises(RnnlensError, match="max_chars"):
        counted_columns(split, -1)
