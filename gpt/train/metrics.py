"""Evaluation metrics as pure functions: classification, perplexity, and instruction responses.

Classification (`classification_report`), for binary labels `(negative, positive)`, by default
`(0, 1)` with 1 = spam:

- accuracy = (tp + tn) / n;
- precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2 tp / (2 tp + fp + fn), all for the
  positive class; a ratio whose denominator is 0 is defined as 0.0;
- macro F1 = the mean of the F1 of each class (each label taken in turn as positive);
- balanced accuracy = the mean of the recall of each class present in `y_true` (tp / (tp + fn)
  and tn / (tn + fp)): the accuracy to expect on a test set with equally many of each class,
  whatever the class mix of this one (the same as scikit-learn's `balanced_accuracy_score`);
- confusion matrix `[[tn, fp], [fn, tp]]`: rows are the true label, columns the predicted one,
  both in the order of `labels`.

Language modelling: `perplexity(mean_loss) = exp(mean_loss)`, the mean cross-entropy in nats per
token turned into "how many tokens the model hesitates between"; `inf` when it overflows a float.

Instruction responses, scored against a reference answer with no external model. All three share
one normalisation: lower-case, delete every punctuation character (Unicode category P*, so
"don't" -> "dont", "well-known" -> "wellknown"), split on whitespace. Articles are kept (unlike
SQuAD's official script, which also drops "a", "an", "the"). With p prediction tokens and r
reference tokens:

- `rouge_l_f1`: ROUGE-L F1 = 2 LCS / (p + r), where LCS is the length of the longest common
  subsequence of the two token lists (words in the same order, gaps allowed). It is the harmonic
  mean of precision LCS/p and recall LCS/r, so it rewards the right words in the right order.
- `token_f1`: SQuAD-style bag-of-words F1 = 2 overlap / (p + r), where overlap counts the tokens
  the two share, with multiplicity, in any order.
- `exact_match`: 1.0 if the normalised token lists are equal, else 0.0.

For all three, if either text has no tokens after normalisation the score is 1.0 when both are
empty and 0.0 otherwise. Every score lies in [0, 1] and is symmetric in its two arguments.
`response_scores` averages them over a list of pairs.

>>> rouge_l_f1("The cat sat on the mat.", "the cat is on the mat")
0.8333333333333334
>>> token_f1("Paris, France", "paris")
0.6666666666666666
>>> exact_match("It's PARIS!", "its paris")
1.0
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

# The largest x with math.exp(x) finite in float64.
_MAX_EXP = math.log(1.7976931348623157e308)


def _as_list(values: Any, name: str) -> list:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of labels, not a string")
    if hasattr(values, "tolist"):  # torch tensors and numpy arrays
        values = values.tolist()
    return list(values)


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def classification_report(
    y_true: Iterable[Any], y_pred: Iterable[Any], labels: Sequence[Any] = (0, 1)
) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 of the positive class `labels[1]`, macro F1, confusion matrix.

    Accepts lists, tuples, numpy arrays or torch tensors. Raises `ValueError` for empty input,
    different lengths, `labels` that are not two distinct values, or a label outside `labels`.

    >>> r = classification_report([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    >>> r["confusion_matrix"], r["accuracy"], r["precision"], r["recall"]
    ([[1, 1], [1, 2]], 0.6, 0.6666666666666666, 0.6666666666666666)
    >>> round(r["f1"], 4), round(r["macro_f1"], 4), r["balanced_accuracy"], r["labels"], r["n"]
    (0.6667, 0.5833, 0.5833333333333333, [0, 1], 5)
    """
    y_true, y_pred = _as_list(y_true, "y_true"), _as_list(y_pred, "y_pred")
    labels = _as_list(labels, "labels")
    if len(labels) != 2 or labels[0] == labels[1]:
        raise ValueError(f"labels must be two distinct values (negative, positive), got {labels}")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if not y_true:
        raise ValueError("classification_report needs at least one example, got none")
    unknown = sorted({repr(v) for v in y_true + y_pred if v not in labels})
    if unknown:
        raise ValueError(f"labels outside {labels}: {', '.join(unknown[:5])}")

    neg, pos = labels
    pairs = Counter(zip(y_true, y_pred))
    tn, fp, fn, tp = pairs[neg, neg], pairs[neg, pos], pairs[pos, neg], pairs[pos, pos]
    n = len(y_true)
    f1_pos = _ratio(2 * tp, 2 * tp + fp + fn)
    f1_neg = _ratio(2 * tn, 2 * tn + fn + fp)  # the negative class taken as positive
    recalls = [
        _ratio(right, right + wrong) for right, wrong in ((tn, fp), (tp, fn)) if right + wrong
    ]
    return {
        "accuracy": (tp + tn) / n,
        "balanced_accuracy": sum(recalls) / len(recalls),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": f1_pos,
        "macro_f1": (f1_pos + f1_neg) / 2,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "labels": labels,
        "n": n,
    }


def balanced_report(
    y_true: Iterable[Any],
    y_pred: Iterable[Any],
    labels: Sequence[Any] = (0, 1),
    draws: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """`classification_report` on balanced versions of a test set, averaged over `draws`.

    Each draw keeps every example of the rarer class and as many of the other, chosen at random
    (seeded by `seed + draw`): what a test set with equally many of each class would score.
    Returns the mean `accuracy`, `precision`, `recall`, `f1` and `macro_f1` over the draws,
    the first draw's `confusion_matrix`, `n` (examples per draw) and `draws`.

    >>> r = balanced_report([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0], draws=200)
    >>> r["n"], round(r["accuracy"], 2)  # ham right 3 times in 4, spam 1 in 2: about 5/8
    (4, 0.62)
    """
    y_true, y_pred = _as_list(y_true, "y_true"), _as_list(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    by_class = {label: [i for i, t in enumerate(y_true) if t == label] for label in labels}
    k = min(len(rows) for rows in by_class.values())
    if k == 0:
        raise ValueError(f"cannot balance: a class of {list(labels)} has no examples")
    reports = []
    for d in range(draws):
        rng = random.Random(seed + d)
        rows = [i for group in by_class.values() for i in rng.sample(group, k)]
        reports.append(
            classification_report([y_true[i] for i in rows], [y_pred[i] for i in rows], labels)
        )
    keys = ("accuracy", "precision", "recall", "f1", "macro_f1")
    out: dict[str, Any] = {key: sum(r[key] for r in reports) / draws for key in keys}
    out.update(confusion_matrix=reports[0]["confusion_matrix"], n=2 * k, draws=draws)
    return out


def majority_accuracy(confusion: Sequence[Sequence[int]]) -> float:
    """The accuracy of always predicting the most common true label, from a confusion matrix
    (rows: true labels): what a classifier must beat to have learnt anything.

    >>> majority_accuracy([[866, 0], [134, 0]])  # 86.6% ham: "always ham" scores 0.866
    0.866
    >>> majority_accuracy([[0, 0], [0, 0]])
    0.0
    """
    rows = [sum(r) for r in confusion]
    return max(rows) / sum(rows) if sum(rows) else 0.0


def perplexity(mean_loss: float) -> float:
    """`exp(mean_loss)` for a mean cross-entropy in nats per token; `inf` past float range.

    >>> perplexity(0.0), round(perplexity(math.log(50257)))
    (1.0, 50257)
    >>> perplexity(1e6)
    inf
    """
    loss = float(mean_loss)
    if math.isnan(loss):
        return math.nan
    if loss > _MAX_EXP:
        return math.inf
    return math.exp(loss)


def normalize_tokens(text: str) -> list[str]:
    """Lower-case, delete punctuation (Unicode category P*), split on whitespace.

    >>> normalize_tokens("Don't panic -- it's   well-known!")
    ['dont', 'panic', 'its', 'wellknown']
    """
    text = "".join(ch for ch in text.lower() if not unicodedata.category(ch).startswith("P"))
    return text.split()


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence of two sequences (O(len(a) * len(b)) time).

    >>> lcs_length("ABCBDAB", "BDCABA")
    4
    >>> lcs_length(["the", "cat", "sat"], ["the", "sat"])
    2
    """
    if len(a) < len(b):
        a, b = b, a  # keep the row as short as possible
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _f1_from_overlap(overlap: int, p: int, r: int) -> float:
    if p == 0 or r == 0:
        return float(p == r)
    return 2 * overlap / (p + r)


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over normalised word tokens: `2 * LCS / (len(pred) + len(ref))`.

    >>> rouge_l_f1("a b c d", "a c d e f")
    0.6666666666666666
    >>> rouge_l_f1("", "")
    1.0
    """
    p, r = normalize_tokens(prediction), normalize_tokens(reference)
    return _f1_from_overlap(lcs_length(p, r), len(p), len(r))


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-words F1 over normalised tokens (shared tokens counted with multiplicity).

    >>> token_f1("b a a", "a a c")
    0.6666666666666666
    """
    p, r = normalize_tokens(prediction), normalize_tokens(reference)
    overlap = sum((Counter(p) & Counter(r)).values())
    return _f1_from_overlap(overlap, len(p), len(r))


def exact_match(prediction: str, reference: str) -> float:
    """1.0 if the normalised token lists are equal, else 0.0.

    >>> exact_match("  The answer: 42. ", "the answer 42"), exact_match("42", "forty-two")
    (1.0, 0.0)
    """
    return float(normalize_tokens(prediction) == normalize_tokens(reference))


def response_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-L F1, mean token F1 and exact-match rate over paired responses, with `n`.

    >>> response_scores(["the cat sat", "yes"], ["the cat sat", "no"])
    {'rouge_l_f1': 0.5, 'token_f1': 0.5, 'exact_match': 0.5, 'n': 2}
    """
    preds, refs = _as_list(predictions, "predictions"), _as_list(references, "references")
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    if not preds:
        raise ValueError("response_scores needs at least one prediction, got none")
    n = len(preds)
    return {
        "rouge_l_f1": sum(map(rouge_l_f1, preds, refs)) / n,
        "token_f1": sum(map(token_f1, preds, refs)) / n,
        "exact_match": sum(map(exact_match, preds, refs)) / n,
        "n": n,
    }
