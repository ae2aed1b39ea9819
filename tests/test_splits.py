"""Tests for rnnlens.data.splits: both layouts against brute force, the paper's WP counts, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rnnlens.exceptions import RnnlensError
from rnnlens.data.splits import Split, SplitConfig, make_splits, stream_split
from rnnlens.data.text import TextConfig, Vocab, read_symbols


def _ids(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 50, size=n).astype(np.int64)


def _check_targets(split: Split, ids: np.ndarray) -> list[int]:
    """Every y is the next character of x in the text (never wrapping around); returns positions."""
    pos: list[int] = []
    for r in range(split.x.shape[0]):
        start = int(split.row_starts[r])
        for j in range(split.x.shape[1]):
            p = start + j
            assert split.x[r, j] == ids[p]
            assert p + 1 < len(ids) and split.y[r, j] == ids[p + 1]
            pos.append(p)
    return pos


@pytest.mark.parametrize("n", [600, 643, 700])
def test_interleaved_brute_force(n):
    ids = _ids(n)
    cfg = SplitConfig("interleaved", (0.5, 0.25, 0.25), batch_size=3, seq_len=4)
    splits = make_splits(ids, cfg)
    L = ((n - 1) // 12) * 4  # the last character is only a target
    blocks = L // 4
    n_train, n_val = int(0.5 * blocks), int(0.25 * blocks)
    expect_cols = {"train": n_train * 4, "val": n_val * 4, "test": (blocks - n_train - n_val) * 4}
    seen: list[int] = []
    for name, split in splits.items():
        assert split.name == name and split.x.shape == (3, expect_cols[name]) == split.y.shape
        assert split.x.dtype == split.y.dtype == np.int64
        seen += _check_targets(split, ids)
        # row r of the split is columns [a, b) of row r of the reshaped trimmed stream
        for r in range(3):
            assert split.row_starts[r] == r * L + {"train": 0, "val": n_train * 4,
                                                   "test": (n_train + n_val) * 4}[name]
    assert sorted(seen) == list(range(3 * L))  # partition of the trimmed stream, no overlap
    # 600 = 50 x B x S: one block is given up so the last target is a real next character (char-rnn wraps it to
    # ids[0], which made the oracles fail on such texts)
    assert splits["test"].y[-1, -1] == ids[3 * L] and (n != 600 or L == 196)


@pytest.mark.parametrize("n", [1000, 1013])
def test_contiguous_brute_force(n):
    ids = _ids(n, seed=1)
    cfg = SplitConfig("contiguous", (0.7, 0.2, 0.1), batch_size=4, seq_len=5)
    splits = make_splits(ids, cfg)
    bounds = [0, int(0.7 * n), int(0.7 * n) + int(0.2 * n), n]
    for k, (name, split) in enumerate(splits.items()):
        part = bounds[k + 1] - bounds[k]
        length = min(part // 4, (n - 1 - bounds[k]) // 4)  # the text's last character is only a target
        assert split.x.shape == (4, length)
        pos = _check_targets(split, ids)
        assert sorted(pos) == list(range(bounds[k], bounds[k] + 4 * length))  # inside its own part


def test_blocks_cover_split_in_order():
    split = make_splits(_ids(1000), SplitConfig(fractions=(0.6, 0.2, 0.2), batch_size=2, seq_len=7))["train"]
    blocks = list(split.blocks(7))
    assert split.num_blocks(7) == len(blocks)
    assert all(x.shape == (2, 7) for x, _ in blocks)
    assert np.array_equal(np.concatenate([x for x, _ in blocks], axis=1), split.x)
    ragged = list(split.blocks(9))
    assert len(ragged) == split.num_blocks(9) == -(-split.x.shape[1] // 9)
    assert ragged[-1][0].shape[1] == split.x.shape[1] - 9 * (len(ragged) - 1)
    assert np.array_equal(np.concatenate([y for _, y in ragged], axis=1), split.y)
    assert np.array_equal(split.positions()[:, 0], split.row_starts)


@pytest.mark.parametrize("layout", ["interleaved", "contiguous"])
def test_zero_fraction_gives_empty_split(layout):
    ids = _ids(2000)
    splits = make_splits(ids, SplitConfig(layout, (0.9, 0.1, 0.0), batch_size=4, seq_len=5))
    assert splits["test"].x.shape == (4, 0) and splits["test"].num_chars == 0
    assert list(splits["test"].blocks(5)) == [] and splits["test"].num_blocks(5) == 0
    splits = make_splits(ids, SplitConfig(layout, (0.9, 0.0, 0.1), batch_size=4, seq_len=5))
    assert splits["val"].x.shape == (4, 0)
    assert splits["train"].num_chars + splits["test"].num_chars > 0.95 * len(ids)


@pytest.mark.parametrize("layout", ["interleaved", "contiguous"])
def test_too_short_text_says_how_much_is_needed(layout):
    cfg = SplitConfig(layout, (0.8, 0.1, 0.1), batch_size=10, seq_len=10)
    with pytest.raises(RnnlensError, match=r"needs at least (\d+).*--batch-size/--seq-len") as info:
        make_splits(_ids(100), cfg)
    need = int(info.value.args[0].split("needs at least ")[1].split(";")[0])
    make_splits(_ids(need), cfg)  # the stated amount is enough ...
    with pytest.raises(RnnlensError):
        make_splits(_ids(need - 1), cfg)  # ... and the smallest that is


@pytest.mark.parametrize("kwargs, words", [
    ({"layout": "random"}, "layout"),
    ({"fractions": (0.5, 0.3, 0.3)}, "sum to"),
    ({"fractions": (0.0, 0.5, 0.5)}, "train fraction"),
    ({"fractions": (1.2, -0.1, -0.1)}, ">= 0"),
    ({"fractions": (0.5, 0.5)}, "three numbers"),
    ({"batch_size": 0}, "batch_size"),
    ({"seq_len": 2.5}, "seq_len"),
])
def test_split_config_validation(kwargs, words):
    with pytest.raises(RnnlensError, match=words):
        SplitConfig(**kwargs)


def test_split_config_round_trip():
    cfg = SplitConfig("contiguous", (0.9, 0.05, 0.05), 32, 64)
    assert SplitConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert SplitConfig(fractions=[0.8, 0.1, 0.1]).fractions == (0.8, 0.1, 0.1)  # type: ignore[arg-type]
    with pytest.raises(RnnlensError, match="unknown split config keys"):
        SplitConfig.from_dict({"layout": "contiguous", "shuffle": True})


@pytest.mark.parametrize("n, b", [(2, 5), (11, 3), (101, 100), (57, 1)])
def test_stream_split_brute_force(n, b):
    ids = _ids(n, seed=n)
    split = stream_split(ids, b, name="prime")
    rows = min(b, n - 1)
    assert split.name == "prime" and split.x.shape == (rows, (n - 1) // rows)
    pos = _check_targets(split, ids)
    assert sorted(pos) == list(range(rows * ((n - 1) // rows)))
    assert max(pos) + 1 < n  # never a wrapped target
    with pytest.raises(RnnlensError, match="at least 2"):
        stream_split(ids[:1], b)


def test_warpeace_paper_split(shared_data):
    syms = read_symbols(shared_data / "warpeace_input.txt", TextConfig())
    ids = Vocab.build(syms, "byte").encode(syms)
    splits = make_splits(ids, SplitConfig())
    assert splits["train"].num_chars == 2_600_000
    assert splits["val"].num_chars == 320_000
    assert splits["test"].num_chars == 330_000
    rng = np.random.default_rng(2015)
    for split in splits.values():
        pos = split.positions()
        for _ in range(200):
            r, j = rng.integers(split.x.shape[0]), rng.integers(split.x.shape[1])
            p = int(pos[r, j])
            assert split.x[r, j] == ids[p] and split.y[r, j] == ids[p + 1]


@pytest.mark.parametrize("layout", ["interleaved", "contiguous"])
def test_a_text_of_exactly_k_blocks_has_no_wrapped_target(layout):
    """600,000 = 60 x 100 x 100: the oracles need every target offset in 1..len(text)-1 (issue 12)."""
    ids = _ids(600_000)
    splits = make_splits(ids, SplitConfig(layout, (0.8, 0.1, 0.1)))
    for split in splits.values():
        targets = split.positions() + 1
        assert targets.max() < len(ids) and np.array_equal(split.y, ids[targets])
    assert sum(s.num_chars for s in splits.values()) >= 600_000 - 100 * 100 - 100
