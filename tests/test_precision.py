"""Training precision: choosing it, bf16 autocast in the training loop, exact resume within a precision."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from rnnlens import precision
from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.run import load_config
from rnnlens.train import train

from test_train import make_text

TINY = ["--batch-size", "4", "--seq-len", "16", "--hidden", "16", "--layers", "2", "--dropout", "0.1",
        "--eval-every", "10", "--eval-chars", "300", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return make_text(tmp_path_factory.mktemp("text") / "tiny.txt", n_words=1500)


def test_explicit_choices_are_kept_and_unknown_ones_refused():
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"
    assert precision.resolve_precision(None, "cpu") == "fp32"
    with pytest.raises(RnnlensError, match="unknown precision 'fp16'"):
        precision.resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("flags, expected", [({"avx2", "avx512_bf16"}, "bf16"), ({"avx2", "amx_bf16"}, "bf16"),
                                             ({"avx2", "avx512f"}, "fp32"), (set(), "fp32")])
def test_auto_picks_bf16_only_on_cpus_that_do_it_natively(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert precision.resolve_precision("auto", "cpu") == expected
    native, why = precision.native_bf16("cpu")
    assert native == (expected == "bf16") and ("neither" in why) != native


def test_fp32_autocast_changes_nothing_and_bf16_computes_in_bf16():
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    with precision.autocast("fp32", "cpu"):
        assert (a @ b).dtype == torch.float32
    with precision.autocast("bf16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16


def test_auto_is_recorded_as_the_precision_it_chose(tmp_path, text, monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    out = tmp_path / "run"
    assert main(["train", "--text", str(text), *TINY, "--model", "gru", "--max-steps", "3", "--precision", "auto",
                 "--out", str(out), "--json"]) == 0
    assert load_config(out).train.precision == "fp32"
    assert json.loads(capsys.readouterr().out)["precision"] == "fp32"


def test_bf16_training_resumes_bit_exactly(tmp_path, text, capsys):
    """GRU in bf16 (runs on any CPU): an interrupted and resumed run ends bit-identical to an uninterrupted one."""
    base = ["train", "--text", str(text), *TINY, "--model", "gru", "--max-steps", "30", "--precision", "bf16"]
    assert main([*base, "--out", str(tmp_path / "ref"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["precision"] == "bf16" and load_config(tmp_path / "ref").train.precision == "bf16"
    # the interrupted twin: stop after 12 updates, then resume through the CLI
    cut = tmp_path / "cut"
    from rnnlens.commands.train import build_config
    from rnnlens.cli import build_parser
    from rnnlens.train import init_run

    args = build_parser().parse_args([*base, "--out", str(cut)])
    cfg, splits = build_config(args, torch.device("cpu"))
    init_run(cut, cfg)
    stops = iter([False] * 11 + [True])
    assert train(cut, "cpu", splits=splits, should_stop=lambda: next(stops)).status == "interrupted"
    assert main(["train", "--resume", "--out", str(cut), "--quiet", "--device", "cpu"]) == 0
    for name in ("best.safetensors", "state.safetensors"):
        ref, got = load_file(str(tmp_path / "ref" / name)), load_file(str(cut / name))
        for key in ref:
            if key.startswith("model."):
                assert ref[key].dtype == torch.float32  # the weights stay fp32
                assert torch.equal(ref[key], got[key]), f"{name}:{key} differs after resume"


def test_bf16_loss_follows_fp32_closely(tmp_path, text, capsys):
    losses = {}
    for prec in ("fp32", "bf16"):
        assert main(["train", "--text", str(text), *TINY, "--model", "gru", "--max-steps", "20", "--precision", prec,
                     "--out", str(tmp_path / prec), "--json"]) == 0
        losses[prec] = json.loads(capsys.readouterr().out)["best_val_loss"]
    assert losses["fp32"] != losses["bf16"]  # bf16 really ran
    assert abs(losses["fp32"] - losses["bf16"]) < 0.02 * losses["fp32"]


def test_a_bf16_lstm_on_a_cpu_without_native_bf16_is_a_one_line_error(tmp_path, text, capsys, monkeypatch):
    if precision.native_bf16("cpu")[0]:
        # this CPU trains bf16 LSTMs natively: play a CPU without AVX512-BF16/AMX, whose oneDNN refuses the LSTM
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())
        fused = torch.nn.LSTM.forward

        def refuse(self, *args, **kwargs):
            if torch.is_autocast_enabled("cpu"):
                raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive")
            return fused(self, *args, **kwargs)

        monkeypatch.setattr(torch.nn.LSTM, "forward", refuse)
    out = tmp_path / "run"
    code = main(["train", "--text", str(text), *TINY, "--model", "lstm", "--max-steps", "3", "--precision", "bf16",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot train a lstm in bf16" in err and "--precision fp32" in err and "Traceback" not in err


def test_resume_refuses_a_new_precision(tmp_path, text, capsys):
    out = tmp_path / "run"
    assert main(["train", "--text", str(text), *TINY, "--model", "gru", "--max-steps", "2", "--out", str(out)]) == 0
    assert main(["train", "--resume", "--out", str(out), "--precision", "bf16"]) == 2
    assert "drop --precision" in capsys.readouterr().err
