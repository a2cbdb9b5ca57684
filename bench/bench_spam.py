"""Spam on real SMS: a TF-IDF + logistic regression baseline next to our `starter-spam`.

    python bench/bench_spam.py [--model starter-spam] [--draws 20]

Both are scored on the same held-out test split of the real SMS half
(`../shared/data/sms-spam-collection/sms-half.tsv`, UCI SMS Spam Collection, CC BY 4.0): the
split `starter-spam`'s card names (its data file and seed, `gpt.lab.runs.classify_splits`). The
baseline is fit on that split's training messages only: word 1-2-grams and character 2-5-grams
(within word boundaries), sublinear TF-IDF, logistic regression with C = 10 and class weights
inversely proportional to the class counts (the settings that scored best on the validation
split among word / char / both, with and without class weights).

Prints accuracy, F1 (spam) and the confusion matrix `[[tn, fp], [fn, tp]]` on the natural test
split (about 12% spam) and on balanced versions of it (all the test spam and as many test ham,
averaged over `--draws` random draws of the ham; the matrix is the first draw's). Writes
bench/results/spam.json. scikit-learn is a test/benchmark extra: `gpt/` never imports it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import machine, print_table, save  # noqa: E402
from gpt.checkpoint import load_checkpoint  # noqa: E402
from gpt.config import STARTER_MODELS  # noqa: E402
from gpt.lab.names import (  # noqa: E402
    load_model,
    load_tokenizer,  # noqa: E402
    model_folder,
)
from gpt.lab.runs import REAL_SMS, RunSpec, classify_splits, predict_labels  # noqa: E402
from gpt.train.data import DataError  # noqa: E402
from gpt.train.metrics import balanced_report, classification_report  # noqa: E402


def tfidf_baseline(train_texts: list[str], train_labels: list[int]):
    """The fitted scikit-learn pipeline (word + char n-gram TF-IDF, balanced logistic regression)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    clf = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced")
    return make_pipeline(features, clf).fit(train_texts, train_labels)


def scores(truth: list[int], preds: list[int], draws: int) -> dict:
    return {
        "natural": classification_report(truth, preds),
        "balanced": balanced_report(truth, preds, draws=draws),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="starter-spam")
    ap.add_argument("--draws", type=int, default=20, help="balanced draws of the test ham")
    args = ap.parse_args()
    torch.set_num_threads(2)
    meta = load_checkpoint(load_model_dir(args.model)).metadata
    spec = RunSpec.from_dict({**meta["spec"], "base": args.model})
    if spec.data == "bundled":
        sys.exit(f"{args.model} was trained on the bundled messages, not on real SMS")
    try:
        train, val, test = classify_splits(spec)
    except DataError as e:
        sys.exit(f"cannot read {args.model}'s data ({e}); the real SMS half lives in {REAL_SMS}")
    truth = [e.label for e in test]
    print(
        f"data {spec.data}, seed {spec.seed}: train {len(train)}, val {len(val)}, test {len(test)}"
    )

    t0 = time.perf_counter()
    base = tfidf_baseline([e.text for e in train], [e.label for e in train])
    base_fit = time.perf_counter() - t0
    base_preds = base.predict([e.text for e in test]).tolist()
    model, tok = load_model(args.model), load_tokenizer(args.model)
    t0 = time.perf_counter()
    ours = predict_labels(model, tok, test)
    ours_s = time.perf_counter() - t0

    results = {
        "tfidf_logreg": {**scores(truth, base_preds, args.draws), "fit_seconds": base_fit},
        args.model: {**scores(truth, ours, args.draws), "predict_seconds": ours_s},
    }
    rows = []
    for name, r in results.items():
        for version in ("natural", "balanced"):
            m = r[version]
            rows.append(
                [name, version, str(m["n"]), f"{m['accuracy']:.4f}", f"{m['f1']:.4f}"]
                + [str(m["confusion_matrix"])]
            )
    header = ["model", "test set", "n", "accuracy", "F1 (spam)", "[[tn, fp], [fn, tp]]"]
    print_table(f"Real SMS, held-out test split ({machine()})", header, rows)
    print(f"\nbalanced: mean over {args.draws} draws of the test ham; matrix of the first draw")
    print(f"written {save('spam', {'data': spec.data, 'seed': spec.seed, **results})}")


def load_model_dir(name: str) -> Path:
    return model_folder(name) if name in STARTER_MODELS else Path(name)


if __name__ == "__main__":
    main()
