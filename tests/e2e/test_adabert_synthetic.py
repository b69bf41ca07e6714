"""Issue 30: the AdaBERT search on a task only a convolution can solve (the ordered bigram of
``lmdistill.methods.adabert.synthetic``, at the benchmark's budget, seed 0, one thread): an
order-aware convolution at the default β, only cheap ops at a large β, and a higher β never a
costlier derived architecture. Each search takes ~10-15 s here; the four are shared."""

from __future__ import annotations

import pytest

from lmdistill import config as C
from lmdistill.methods.adabert.synthetic import search_bigram

CHEAP = {"identity", "maxpool3", "avgpool3", "zero"}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    done: dict[float, dict] = {}

    def run(beta: float) -> dict:
        if beta not in done:
            done[beta] = search_bigram(beta, tmp_path_factory.mktemp(f"beta{beta:g}"))
        return done[beta]

    return run


def test_search_keeps_a_convolution_at_the_default_beta_and_none_at_a_large_one(searched):
    beta = C.AdaBertSettings().beta
    at_default = searched(beta)
    assert at_default["order_aware"] >= 1, at_default["architecture"]
    assert at_default["heldout_accuracy"] > 0.95  # it solves the task, with the search's weights
    large = searched(100.0)
    kept = {op for node in large["architecture"]["nodes"] for _, op in node}
    assert kept <= CHEAP, large["architecture"]
    assert large["cost"] < at_default["cost"]


def test_a_higher_beta_never_gives_a_costlier_architecture(searched):
    betas = [0.0, 2.0, 4.0, 100.0]
    costs = [searched(b)["cost"] for b in betas]
    assert all(a >= b for a, b in zip(costs, costs[1:])), dict(zip(betas, costs))
    assert costs[0] > costs[-1]  # and β does change the outcome
