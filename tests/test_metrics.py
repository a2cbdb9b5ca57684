"""Metrics: hand-checked values, brute-force comparisons and properties of the response scores."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt.train.metrics import (
    balanced_report,
    classification_report,
    exact_match,
    lcs_length,
    normalize_tokens,
    perplexity,
    response_scores,
    rouge_l_f1,
    token_f1,
)

# --- classification -----------------------------------------------------------------------------


def brute_force(y_true, y_pred, neg, pos):
    """Count every cell and compute every ratio the slow, obvious way."""
    cm = [[0, 0], [0, 0]]
    index = {neg: 0, pos: 1}
    for t, p in zip(y_true, y_pred):
        cm[index[t]][index[p]] += 1
    (tn, fp), (fn, tp) = cm

    def f1(prec, rec):
        return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)

    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    prec_n = tn / (tn + fn) if tn + fn else 0.0
    rec_n = tn / (tn + fp) if tn + fp else 0.0
    return {
        "accuracy": (tp + tn) / len(y_true),
        "precision": prec,
        "recall": rec,
        "f1": f1(prec, rec),
        "macro_f1": (f1(prec, rec) + f1(prec_n, rec_n)) / 2,
        "balanced_accuracy": statistics.mean(
            [r for r, present in ((rec_n, tn + fp), (rec, tp + fn)) if present]
        ),
        "confusion_matrix": cm,
    }


@pytest.mark.parametrize("seed", range(20))
def test_classification_matches_brute_force_on_random_labels(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    skew = rng.random()
    y_true = [int(rng.random() < skew) for _ in range(n)]
    y_pred = [int(rng.random() < 0.5) for _ in range(n)]
    got = classification_report(y_true, y_pred)
    want = brute_force(y_true, y_pred, 0, 1)
    assert got["confusion_matrix"] == want["confusion_matrix"]
    for key in ("accuracy", "precision", "recall", "f1", "macro_f1", "balanced_accuracy"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["n"] == n and got["labels"] == [0, 1]


@pytest.mark.parametrize("seed", range(10))
def test_balanced_accuracy_matches_scikit_learn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(seed)
    n = rng.randint(2, 80)
    y_true = [int(rng.random() < 0.15) for _ in range(n)]  # skewed, like ham / spam
    y_true[0], y_true[1] = 0, 1
    y_pred = [t if rng.random() < 0.8 else 1 - t for t in y_true]
    want = metrics.balanced_accuracy_score(y_true, y_pred)
    assert classification_report(y_true, y_pred)["balanced_accuracy"] == pytest.approx(want)


def test_balanced_report_keeps_every_rare_example_and_as_many_common_ones():
    # 90 ham (80 right), 10 spam (7 right): every draw has all 10 spam and 10 of the ham.
    y_true = [0] * 90 + [1] * 10
    y_pred = [0] * 80 + [1] * 10 + [1] * 7 + [0] * 3
    r = balanced_report(y_true, y_pred, draws=400, seed=1)
    assert r["n"] == 20 and r["draws"] == 400
    (tn, fp), (fn, tp) = r["confusion_matrix"]
    assert (fn, tp) == (3, 7) and tn + fp == 10
    # the expectation over draws is the balanced accuracy: (80/90 + 7/10) / 2
    assert r["accuracy"] == pytest.approx((80 / 90 + 0.7) / 2, abs=0.01)
    assert r["recall"] == pytest.approx(0.7)  # the rare class is never subsampled
    same = balanced_report([0, 1, 0, 1], [0, 1, 1, 1], draws=3)  # already balanced: no choice
    assert same["accuracy"] == 0.75 and same["confusion_matrix"] == [[1, 1], [0, 2]]
    with pytest.raises(ValueError, match="has no examples"):
        balanced_report([0, 0], [0, 1])


def test_classification_known_values_and_label_order():
    r = classification_report([1, 1, 1, 0], [1, 0, 1, 1])
    assert r["confusion_matrix"] == [[0, 1], [1, 2]]
    assert (r["accuracy"], r["precision"], r["recall"]) == (0.5, 2 / 3, 2 / 3)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    # Custom labels: the second one is the positive class and comes second in the matrix.
    s = classification_report(["ham", "spam", "spam"], ["ham", "ham", "spam"], ("ham", "spam"))
    assert s["confusion_matrix"] == [[1, 0], [1, 1]]
    assert (s["precision"], s["recall"]) == (1.0, 0.5)
    flipped = classification_report([1, 1, 1, 0], [1, 0, 1, 1], labels=(1, 0))
    assert flipped["confusion_matrix"] == [[2, 1], [1, 0]]
    assert flipped["f1"] == 0.0


def test_classification_zero_division_is_zero():
    r = classification_report([0, 0, 0], [0, 0, 0])  # no positives anywhere
    assert (r["precision"], r["recall"], r["f1"], r["accuracy"]) == (0.0, 0.0, 0.0, 1.0)
    assert r["macro_f1"] == 0.5
    r = classification_report([1, 1], [0, 0])
    assert (r["precision"], r["recall"], r["f1"], r["macro_f1"]) == (0.0, 0.0, 0.0, 0.0)


def test_classification_accepts_arrays_and_tensors():
    want = classification_report([0, 1, 1, 0], [1, 1, 0, 0])
    assert classification_report(np.array([0, 1, 1, 0]), np.array([1, 1, 0, 0])) == want
    assert classification_report(torch.tensor([0, 1, 1, 0]), torch.tensor([1, 1, 0, 0])) == want


@pytest.mark.parametrize(
    "y_true, y_pred, labels, match",
    [
        ([], [], (0, 1), "at least one example"),
        ([0, 1], [0], (0, 1), "y_true has 2 labels but y_pred has 1"),
        ([0, 2], [0, 1], (0, 1), "labels outside \\[0, 1\\]: 2"),
        ([0, 1], [0, 1], (0, 1, 2), "two distinct values"),
        ([0, 1], [0, 1], (1, 1), "two distinct values"),
    ],
)
def test_classification_errors(y_true, y_pred, labels, match):
    with pytest.raises(ValueError, match=match):
        classification_report(y_true, y_pred, labels)


# --- perplexity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss, want",
    [(0.0, 1.0), (1.0, math.e), (math.log(512), 512.0), (709.0, math.exp(709.0))],
)
def test_perplexity_values(loss, want):
    assert perplexity(loss) == pytest.approx(want)


def test_perplexity_overflow_nan_and_tensor():
    assert perplexity(710.0) == math.inf
    assert perplexity(float("inf")) == math.inf
    assert math.isnan(perplexity(float("nan")))
    assert perplexity(torch.tensor(2.0)) == pytest.approx(math.exp(2.0))


# --- response scores ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, want",
    [
        ("ABCBDAB", "BDCABA", 4),  # the textbook example (CLRS)
        ("AGGTAB", "GXTXAYB", 4),  # GTAB
        ("abc", "", 0),
        ("abc", "abc", 3),
        ("abc", "cba", 1),
    ],
)
def test_lcs_length_known(a, b, want):
    assert lcs_length(a, b) == want == lcs_length(b, a)


@pytest.mark.parametrize(
    "pred, ref, rouge, f1",
    [
        ("the cat sat on the mat", "the cat sat on the mat", 1.0, 1.0),
        # LCS "the cat on the mat" = 5 of 6 and 6 tokens.
        ("The cat sat on the mat.", "the cat is on the mat", 10 / 12, 10 / 12),
        # Same words, reversed order: LCS 1 of 3, bag-of-words overlap 3.
        ("a b c", "c b a", 2 / 6, 1.0),
        # Repeated words: overlap counts "a" twice, not three times.
        ("a a a", "a a", 4 / 5, 4 / 5),
        ("completely different", "nothing shared here", 0.0, 0.0),
        ("", "", 1.0, 1.0),
        ("?!", "...", 1.0, 1.0),  # both empty after normalisation
        ("", "something", 0.0, 0.0),
    ],
)
def test_rouge_and_token_f1_known(pred, ref, rouge, f1):
    assert rouge_l_f1(pred, ref) == pytest.approx(rouge)
    assert token_f1(pred, ref) == pytest.approx(f1)


def test_normalisation():
    assert normalize_tokens("Hello, WORLD!  “Quoted” — dash\tand\nnewline") == [
        "hello",
        "world",
        "quoted",
        "dash",
        "and",
        "newline",
    ]
    assert exact_match("The Answer.", "the answer") == 1.0
    assert exact_match("the answer", "an answer") == 0.0  # articles are kept


def test_response_scores_average_and_errors():
    preds = ["the cat sat", "a b c", "x"]
    refs = ["the cat sat", "c b a", "y"]
    got = response_scores(preds, refs)
    assert got["n"] == 3
    assert got["rouge_l_f1"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert got["token_f1"] == pytest.approx((1 + 1 + 0) / 3)
    assert got["exact_match"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        response_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one"):
        response_scores([], [])
    with pytest.raises(TypeError, match="not a string"):
        response_scores("abc", "abc")


words = st.lists(
    st.sampled_from(["the", "cat", "Sat", "on", "mat", "a", "dog", "ran."]), max_size=12
)
texts = words.map(" ".join) | st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(texts, texts)
def test_scores_symmetric_and_bounded(a, b):
    for score in (rouge_l_f1, token_f1, exact_match):
        s = score(a, b)
        assert 0.0 <= s <= 1.0
        assert s == score(b, a)
    # The LCS never exceeds the bag-of-words overlap.
    assert rouge_l_f1(a, b) <= token_f1(a, b) + 1e-12


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_identical_texts_score_one(text):
    assert rouge_l_f1(text, text) == 1.0
    assert token_f1(text, text) == 1.0
    assert exact_match(text, text) == 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=15), st.lists(st.integers(0, 3), max_size=15))
def test_lcs_matches_exhaustive_search(a, b):
    # Brute force over subsequences of the shorter list (at most 2**7 when trimmed).
    a, b = a[:7], b[:10]
    best = 0
    for mask in range(1 << len(a)):
        sub = [x for i, x in enumerate(a) if mask >> i & 1]
        it = iter(b)
        if all(any(x == y for y in it) for x in sub):
            best = max(best, len(sub))
    assert lcs_length(a, b) == best
