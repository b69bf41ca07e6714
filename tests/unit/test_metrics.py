"""lmdistill.data.metrics against values computed by hand (arithmetic in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmdistill.data.metrics import compute
from lmdistill.errors import DataError

CLS = ["accuracy", "f1", "macro_f1", "mcc"]


def test_binary_hand_computed():
    preds, labels = [1, 0, 1, 1], [1, 0, 0, 1]
    # TP = 2 (pos 0, 3), FP = 1 (pos 2), FN = 0, TN = 1 (pos 1)
    # accuracy = 3/4
    # f1(class 1) = 2TP / (2TP + FP + FN) = 4 / 5 = 0.8
    # f1(class 0): TP0 = 1, FP0 = 0, FN0 = 1 -> 2 / (2 + 0 + 1) = 2/3 ; macro = (0.8 + 2/3) / 2
    # mcc = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 0) / sqrt(3*2*2*1) = 2/sqrt(12)
    out = compute(CLS, preds, labels)
    assert list(out) == CLS
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["f1"] == pytest.approx(0.8)
    assert out["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)  # 0.7333...
    assert out["mcc"] == pytest.approx(2 / math.sqrt(12))  # 0.57735
    assert all(type(v) is float for v in out.values())


def test_binary_second_case():
    preds, labels = [0, 1, 1, 0, 0, 1], [0, 1, 0, 1, 0, 1]
    # TP = 2 (pos 1, 5), FP = 1 (pos 2), FN = 1 (pos 3), TN = 2 (pos 0, 4)
    # accuracy = 4/6 ; f1 = 4 / (4 + 1 + 1) = 2/3
    # mcc = (2*2 - 1*1) / sqrt(3*3*3*3) = 3/9 = 1/3
    out = compute(["accuracy", "f1", "mcc"], preds, labels)
    assert out == pytest.approx({"accuracy": 4 / 6, "f1": 2 / 3, "mcc": 1 / 3})


def test_multiclass_macro_f1_hand_computed():
    preds, labels = [0, 1, 2, 2], [0, 1, 1, 2]
    # class 0: TP 1, FP 0, FN 0 -> 1
    # class 1: TP 1, FP 0, FN 1 (pos 2) -> 2/3
    # class 2: TP 1, FP 1 (pos 2), FN 0 -> 2/3
    # macro = (1 + 2/3 + 2/3) / 3 = 7/9 ; accuracy = 3/4
    out = compute(["macro_f1", "accuracy"], preds, labels)
    assert out["macro_f1"] == pytest.approx(7 / 9)
    assert out["accuracy"] == pytest.approx(0.75)


def test_pearson_spearman_hand_computed():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 9.0]
    # dx = [-1.5, -0.5, 0.5, 1.5], dy = [-3, -1, 0, 4]
    # sum dx*dy = 4.5 + 0.5 + 0 + 6 = 11 ; sum dx^2 = 5 ; sum dy^2 = 26
    # r = 11 / sqrt(5 * 26) = 11 / sqrt(130) = 0.96476 ; y is monotone in x -> rho = 1
    out = compute(["pearson", "spearman"], x, y)
    assert out["pearson"] == pytest.approx(11 / math.sqrt(130))
    assert out["spearman"] == pytest.approx(1.0)


def test_spearman_with_one_swap():
    # ranks of y = [1, 3, 2, 4]; d = [0, -1, 1, 0]; rho = 1 - 6*sum(d^2) / (n(n^2-1)) = 1 - 12/60
    assert compute(["spearman"], [1, 2, 3, 4], [1, 3, 2, 4])["spearman"] == pytest.approx(0.8)
    # perfectly reversed -> -1 for both
    out = compute(["pearson", "spearman"], [1, 2, 3], [3, 2, 1])
    assert out == pytest.approx({"pearson": -1.0, "spearman": -1.0})


def test_degenerate_inputs_do_not_crash():
    # constant predictions: mcc undefined (0 denominator) -> 0.0
    out = compute(CLS, [1, 1, 1, 1], [1, 0, 0, 1])
    # accuracy 2/4; f1 = 2*2 / (2*2 + 2 + 0) = 2/3; macro = (0 + 2/3) / 2
    assert out == pytest.approx({"accuracy": 0.5, "f1": 2 / 3, "macro_f1": 1 / 3, "mcc": 0.0})
    # no positives anywhere: f1 of class 1 is 0/0 -> 0.0 (zero_division=0)
    out = compute(CLS, [0, 0, 0], [0, 0, 0])
    assert out == pytest.approx({"accuracy": 1.0, "f1": 0.0, "macro_f1": 1.0, "mcc": 0.0})
    # constant regression output: pearson / spearman are NaN mathematically -> 0.0
    out = compute(["pearson", "spearman"], [2.5, 2.5, 2.5], [1.0, 2.0, 3.0])
    assert out == {"pearson": 0.0, "spearman": 0.0}
    assert compute(["pearson"], [1.0], [2.0]) == {"pearson": 0.0}  # a single point


def test_array_types_and_logits():
    labels = np.array([1, 0, 0, 1])
    logits = torch.tensor([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0], [-1.0, 1.0]])  # argmax -> 1,0,1,1
    assert compute(["accuracy"], logits, labels) == {"accuracy": 0.75}
    assert compute(["accuracy"], np.array([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1])) == {"accuracy": 0.75}
    out = compute(["pearson"], np.array([[1.0], [2.0], [3.0], [4.0]]), [2.0, 4.0, 5.0, 9.0])
    assert out["pearson"] == pytest.approx(11 / math.sqrt(130))


def test_errors():
    with pytest.raises(DataError, match="unknown metric 'bleu'; known: accuracy, f1"):
        compute(["bleu"], [1], [1])
    with pytest.raises(DataError, match="metric 'f1' is binary"):
        compute(["f1"], [0, 2], [0, 1])
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        compute(["accuracy"], [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="zero examples"):
        compute(["accuracy"], [], [])
