"""Cell discovery: the scores against brute-force references, planted cells, and a trained tiny LSTM."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlens.capture.core import run_with_cache
from rnnlens.cells.discover import DiscoveryConfig, auc_scores, average_ranks, discover, pearson_scores
from rnnlens.exceptions import RnnlensError
from rnnlens.model import CharRNN, ModelConfig
from rnnlens.data.text import Vocab


def brute_auc(a: np.ndarray, inside: np.ndarray) -> float:
    """P(random inside value > random outside value) + 0.5 P(equal), over all pairs."""
    pos, neg = a[inside.astype(bool)], a[~inside.astype(bool)]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def test_pearson_matches_corrcoef_and_constant_columns_give_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 5))
    a[:, 4] = 2.0
    v = np.stack([a[:, 0] * 3 + rng.normal(size=300), rng.integers(0, 5, 300)], axis=1).astype(float)
    r = pearson_scores(a, v)
    for i in range(4):
        for j in range(2):
            assert r[i, j] == pytest.approx(np.corrcoef(a[:, i], v[:, j])[0, 1], abs=1e-12)
    assert np.all(r[4] == 0)


def test_average_ranks_with_ties_match_brute_force():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, size=(40, 3)).astype(float)  # many ties
    ranks = average_ranks(a)
    for j in range(3):
        col = a[:, j]
        expected = [(col < x).sum() + ((col == x).sum() + 1) / 2 for x in col]
        assert ranks[:, j].tolist() == expected


def test_auc_matches_pairwise_count_including_ties():
    rng = np.random.default_rng(2)
    a = np.round(rng.normal(size=(200, 4)), 1)  # ties
    inside = np.stack([rng.random(200) < 0.3, a[:, 1] + rng.normal(size=200) > 0.5], axis=1).astype(float)
    auc = auc_scores(a, inside)
    for i in range(4):
        for j in range(2):
            assert auc[i, j] == pytest.approx(brute_auc(a[:, i], inside[:, j]), abs=1e-12)


def test_discover_finds_planted_cells_with_their_signs():
    rng = np.random.default_rng(3)
    text = "".join(rng.choice(list('ab "'), 4000))
    from rnnlens.cells.features import compute_features
    f = compute_features(text, ["in_double_quotes", "word_pos"], "c")
    acts = {"layers.0.c": rng.uniform(-1, 1, (4000, 8)), "layers.1.c": rng.uniform(-1, 1, (4000, 12))}
    acts["layers.1.c"][:, 7] = -f["in_double_quotes"] + 0.3 * rng.normal(size=4000)  # low inside quotes
    acts["layers.0.c"][:, 2] = np.tanh(f["word_pos"] / 3) + 0.1 * rng.normal(size=4000)
    rep = discover(acts, text, features=["in_double_quotes", "word_pos", "in_comment"], syntax="c",
                   config=DiscoveryConfig(top=3, block=5))
    quotes, word, comment = rep.features
    assert (quotes.best[0].layer, quotes.best[0].index, quotes.best[0].sign) == ("layers.1.c", 7, -1)
    assert quotes.best[0].score > 0.95 and quotes.best[0].raw < 0.05
    assert quotes.best[1].score < 0.6  # the rest is noise
    assert (word.best[0].layer, word.best[0].index, word.best[0].sign) == ("layers.0.c", 2, 1)
    assert quotes.interpretable == 1 and quotes.fraction == pytest.approx(1 / 20)
    assert comment.skipped == "constant over the text" and comment.best == []
    assert rep.n_cells == 20 and rep.interpretable_cells == 2 and rep.fraction_interpretable == pytest.approx(0.1)
    json.dumps(rep.to_dict())
    assert any("layers.1.c:7 0." in line for line in rep.format_lines())


def test_character_features_do_not_count_towards_interpretable_share():
    text = "ab cd " * 100
    from rnnlens.cells.features import compute_features
    space = compute_features(text, ["after_space"])["after_space"]
    rep = discover({"x": space[:, None] * 1.0}, text, features=["after_space"])
    assert rep.features[0].interpretable == 1 and rep.interpretable_cells == 0


def test_discover_rejects_misaligned_inputs():
    with pytest.raises(RnnlensError, match="disagree in length"):
        discover({"x": np.zeros((5, 2))}, "abcd")
    with pytest.raises(RnnlensError, match="2-D"):
        discover({"x": np.zeros(4)}, "abcd")


def quoted_text(n: int, rng: np.random.Generator) -> str:
    """Random words; inside quotes only a-d, outside a-h: the current letter does not tell whether one is
    inside, so predicting the next letter needs a cell that remembers the last quote."""
    parts: list[str] = []
    while sum(map(len, parts)) < n:
        parts.append("".join(rng.choice(list("abcdefgh "), rng.integers(3, 30))))
        parts.append('"' + "".join(rng.choice(list("abcd "), rng.integers(3, 30))) + '"')
    return "".join(parts)[:n]


def test_trained_lstm_grows_a_quote_cell_that_an_untrained_one_lacks():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = np.frombuffer(quoted_text(60_000, rng).encode(), np.uint8).astype(np.int64)
    vocab = Vocab.build(train, "byte")
    ids = vocab.encode(train)
    model = CharRNN(ModelConfig("lstm", 1, 16, len(vocab)))
    model.reset_parameters()
    untrained = CharRNN(ModelConfig("lstm", 1, 16, len(vocab)))
    untrained.load_state_dict(model.state_dict())
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-2, alpha=0.95)
    for _ in range(400):
        starts = rng.integers(0, len(ids) - 51, 32)
        x = torch.from_numpy(np.stack([ids[s:s + 50] for s in starts]))
        y = torch.from_numpy(np.stack([ids[s + 1:s + 51] for s in starts]))
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = np.frombuffer(quoted_text(5000, np.random.default_rng(1)).encode(), np.uint8).astype(np.int64)

    def best(m: CharRNN) -> float:
        block = run_with_cache(m.eval(), torch.from_numpy(vocab.encode(test))[None], names="layers.0.c")
        rep = discover({"layers.0.c": np.tanh(block["layers.0.c"][0].numpy())}, test, features=["in_double_quotes"])
        return rep.features[0].best[0].score

    assert best(model) > 0.95
    assert best(untrained) < 0.85
