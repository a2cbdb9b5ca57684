"""Whole runs through `gpt.lab.runs` and the CLI: data file -> training -> model folder -> eval."""

from __future__ import annotations

import json

import pytest
import torch

from gpt.__main__ import main
from gpt.checkpoint import load_checkpoint
from gpt.classifier import GPTClassifier
from gpt.lab.names import load_model, load_tokenizer
from gpt.lab.runs import REPO, RunSpec, classify_splits, predict_labels, run
from gpt.model import GPT
from gpt.tokenizer import Tokenizer
from gpt.train.data import DataError, label_counts, read_spam
from gpt.train.loop import StopTraining
from gpt.train.metrics import classification_report
from tests.conftest import reply

pytestmark = pytest.mark.slow  # whole training runs


@pytest.fixture(scope="module")
def byte_tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "bytes.json"
    return Tokenizer({bytes([b]): b for b in range(256)}, {"<|endoftext|>": 256}).save(path)


@pytest.fixture(scope="module")
def spam_tsv(tmp_path_factory):
    path = tmp_path_factory.mktemp("spam") / "sms.tsv"
    rows = [f"ham\tsee you at {i} pm ok" for i in range(40)]
    rows += [f"spam\tWIN £{i}00 CASH now txt CLAIM to 8{i:04d}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def alpaca_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("inst") / "inst.json"
    rows = [
        {"instruction": f"Add {a} and {a + 1}.", "input": "", "output": f"{2 * a + 1}"}
        for a in range(40)
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def tiny_spec(kind, tok, data, **kw):
    base = dict(
        base="preset:tiny",
        tokenizer=str(tok),
        data=str(data),
        max_steps=6,
        eval_every=3,
        batch_size=8,
        lr=3e-3,
    )
    return RunSpec(kind=kind, **{**base, **kw})


def test_classify_run_writes_a_loadable_classifier(tmp_path, byte_tok, spam_tsv):
    metrics = run(tiny_spec("classify", byte_tok, spam_tsv), tmp_path)
    assert metrics["status"] == "finished" and metrics["steps"] == 6
    assert {"test_accuracy", "test_f1", "test_confusion_matrix"} <= set(metrics["test"])
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 6
    model = load_model(tmp_path / "model")
    assert isinstance(model, GPTClassifier) and model.labels == ("ham", "spam")
    card = load_checkpoint(tmp_path / "model").metadata
    assert card["test"]["test_accuracy"] == metrics["test"]["test_accuracy"]
    # predict_labels gives the classes behind the test metrics, from the saved weights
    spec = tiny_spec("classify", byte_tok, spam_tsv)
    train, val, test = classify_splits(spec)
    assert (len(train), len(val), len(test)) == (56, 8, 16) and label_counts(test)["spam"] == 8
    preds = predict_labels(model, load_tokenizer(tmp_path / "model"), test, batch_size=5)
    report = classification_report([e.label for e in test], preds)
    assert report["confusion_matrix"] == metrics["test"]["test_confusion_matrix"]


@pytest.mark.parametrize("method", ["head", "last_blocks"])
def test_base_score_and_test_share_the_frozen_trunk(
    tmp_path, byte_tok, spam_tsv, monkeypatch, method
):
    """With a frozen trunk the test set's trunk activations are computed once, for the base
    model's score and the final test both, and the scores are those of the uncached run (in
    float32: a bf16 trunk would round them)."""
    import gpt.lab.runs as runs

    monkeypatch.setenv("GPT2LAB_BF16", "0")
    calls: dict[bool, int] = {}
    metrics = {}
    real = runs.prepare
    for cache in (True, False):
        calls[cache] = 0

        def prepare(spec, cache=cache):  # count what runs through the frozen block 0
            prep = real(spec)

            def count(module, args, _):  # rows through block 0 (frozen: always in eval mode)
                calls[cache] += 0 if module.training else args[0].shape[0]

            prep.model.gpt.h[0].register_forward_hook(count)
            return prep

        monkeypatch.setattr(runs, "prepare", prepare)
        spec = tiny_spec(
            "classify", byte_tok, spam_tsv, method=method, score_base=True, cache_trunk=cache,
            eval_every=100,
        )  # fmt: skip
        torch.manual_seed(0)  # the same random preset:tiny body for both runs
        metrics[cache] = run(spec, tmp_path / str(cache))
    for key in ("base_test", "test"):
        a, b = metrics[True][key], metrics[False][key]
        assert a["test_confusion_matrix"] == b["test_confusion_matrix"]
        assert a["test_loss"] == pytest.approx(b["test_loss"], abs=1e-5)
    # 56 training examples (6 steps of 8: 48 rows), 16 test examples scored before and after
    # training, 8 validation examples at the end: cached, each example once; uncached, every
    # batch's rows
    assert calls == {True: 56 + 16 + 8, False: 48 + 16 + 8 + 16}


def test_relative_data_path_is_read_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: data/sms/val.tsv is not here
    spec = RunSpec(kind="classify", data="data/sms/val.tsv", seed=5)
    assert sum(len(p) for p in classify_splits(spec)) == len(read_spam(REPO / "data/sms/val.tsv"))
    with pytest.raises(DataError, match="neither 'bundled', an existing file"):
        classify_splits(RunSpec(kind="classify", data="data/sms/nope.tsv"))


def test_instruct_lora_run_merges_and_saves_adapters(tmp_path, alpaca_json):
    # GPT-2's tokenizer: the Alpaca preamble alone is 130 bytes, longer than tiny's context.
    spec = tiny_spec(
        "instruct", "gpt2", alpaca_json, method="lora", eval_samples=2, max_new_tokens=4
    )
    metrics = run(spec, tmp_path)
    assert (tmp_path / "adapters.safetensors").is_file()
    assert {"test_rouge_l_f1", "test_token_f1", "test_loss"} <= set(metrics["test"])
    assert metrics["trainable_parameters"] < metrics["parameters"] / 2
    assert isinstance(load_model(tmp_path / "model"), GPT)  # merged: a plain GPT again


def test_cli_train_resume_and_eval(tmp_path, byte_tok, spam_tsv, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "classify",
        "--base",
        "preset:tiny",
        "--tokenizer",
        str(byte_tok),
        "--data",
        str(spam_tsv),
        "--out",
        str(out),
        "--max-steps",
        "4",
        "--eval-every",
        "2",
        "--quiet",
    ]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["status"] == "finished" and first["steps"] == 4
    assert main(["train", "classify", "--resume", str(out), "--quiet"]) == 0  # already done: no-op
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 4
    assert main(["eval", "classify", "--model", str(out / "model"), "--data", str(spam_tsv)]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1
    result = json.loads(line)
    assert 0 <= result["accuracy"] <= 1 and result["n"] == 80


def test_bad_data_fails_before_training(tmp_path, byte_tok):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ham\thello\nmaybe\tspam or not\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv.*line 2"):
        run(tiny_spec("classify", byte_tok, bad), tmp_path / "out")
    with pytest.raises(DataError, match="neither 'bundled', an existing file"):
        run(tiny_spec("classify", byte_tok, tmp_path / "missing.tsv"), tmp_path / "out")


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown run settings: colour"):
        RunSpec.from_dict({"kind": "lm", "colour": "red"})
    with pytest.raises(ValueError, match="kind must be one of"):
        RunSpec(kind="summarise")
    with pytest.raises(ValueError, match="lr must be in"):
        RunSpec(kind="lm", lr=-1)
    with pytest.raises(ValueError, match="save_dtype"):
        RunSpec(kind="lm", save_dtype="int4")


def test_cli_eval_instruct_with_llm_judge(tmp_path, alpaca_json, server, capsys):
    spec = tiny_spec("instruct", "gpt2", alpaca_json, max_steps=2, eval_samples=0)
    run(spec, tmp_path)
    server.respond = lambda body: (200, reply("Score: 80"))
    args = [
        "eval",
        "instruct",
        "--model",
        str(tmp_path / "model"),
        "--data",
        str(alpaca_json),
        "--samples",
        "3",
        "--judge-url",
        server.url,
        "--judge-model",
        "tiny-judge",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["judge_mean_score"] == 80 and result["judge_n_scored"] == 3
    assert {"rouge_l_f1", "token_f1", "loss"} <= set(result)
    assert [r["body"]["model"] for r in server.requests] == ["tiny-judge"] * 3


@pytest.mark.parametrize("kind", ["lm", "classify", "instruct"])
def test_spec_and_loop_share_one_set_of_training_defaults(kind):
    from gpt.train.loop import TrainConfig

    assert RunSpec(kind=kind).train_config() == TrainConfig(task=kind)
    # what the CLI, the jobs and the one-click runs train with when they do not say
    spec = RunSpec(kind=kind)
    assert (spec.lr, spec.seed, spec.checkpoint_minutes, spec.batch_size) == (5e-5, 123, 5.0, 8)


def test_prepare_puts_the_model_on_the_training_device(byte_tok, spam_tsv, monkeypatch):
    """The time estimate and the base model's score run where training will (a GPU when there
    is one), not on the CPU before `fit` moves the model: `prepare` moves it to
    `choose_device()` (here "meta" stands in for a GPU)."""
    import torch

    from gpt.lab import runs

    monkeypatch.setattr(runs, "choose_device", lambda: torch.device("meta"))
    prep = runs.prepare(tiny_spec("classify", byte_tok, spam_tsv))
    assert {p.device.type for p in prep.model.parameters()} == {"meta"}


@pytest.mark.parametrize("method", ["last_blocks", "lora"])
def test_cli_train_classify_takes_the_fine_tune_tabs_defaults(tmp_path, byte_tok, spam_tsv, method):
    """`python -m gpt train classify` without --epochs/--lr trains with the Fine-tune tab's
    defaults for the method (gpt.lab.recipes), not the loop's generic ones; given values win."""
    from gpt.lab.recipes import tune_defaults

    common = ["train", "classify", "--base", "preset:tiny", "--tokenizer", str(byte_tok),
              "--data", str(spam_tsv), "--max-steps", "1", "--quiet", "--method", method]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    spec = json.loads((tmp_path / "a" / "spec.json").read_text())
    want = tune_defaults("classify", method, "preset:tiny")
    assert (spec["lr"], spec["method"]) == (want.lr, method)
    assert spec["weigh_classes"] is True  # rare spam weighs as much as ham, as in the tab
    assert main([*common, "--out", str(tmp_path / "b"), "--lr", "0.0123", "--no-weigh-classes"]) == 0
    given = json.loads((tmp_path / "b" / "spec.json").read_text())
    assert (given["lr"], given["weigh_classes"]) == (0.0123, False)


def test_weigh_classes_takes_its_weights_from_the_training_split(byte_tok, tmp_path):
    from gpt.lab import runs

    path = tmp_path / "skewed.tsv"  # 4 ham to 1 spam
    rows = [f"ham\tsee you at {i} pm" for i in range(80)] + [f"spam\tWIN {i} now" for i in range(20)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    prep = runs.prepare(tiny_spec("classify", byte_tok, path, weigh_classes=True))
    counts = prep.data.summary["train_labels"]  # the stratified 70%: 56 ham, 14 spam
    assert counts == {"ham": 56, "spam": 14}
    assert prep.task.class_weights.tolist() == pytest.approx([70 / (2 * 56), 70 / (2 * 14)])
    assert runs.prepare(tiny_spec("classify", byte_tok, path)).task.class_weights is None


@pytest.mark.parametrize("method", ["last_blocks", "head"])
def test_a_stopped_frozen_run_on_a_random_preset_resumes(tmp_path, byte_tok, spam_tsv, method):
    # A frozen part is checkpointed as a fingerprint, not as weights: the resumed run must
    # build the same random preset again, or the fingerprint check refuses the checkpoint.
    spec = tiny_spec("classify", byte_tok, spam_tsv, method=method, eval_every=2)

    def stop_at_2(event):
        if event.kind == "eval" and event.step == 2:
            raise StopTraining

    first = run(spec, tmp_path, callbacks=[stop_at_2])
    assert first["status"] == "stopped" and first["steps"] == 2
    events = []
    second = run(spec, tmp_path, callbacks=[events.append], resume=True)
    assert second["status"] == "finished" and second["steps"] == 6
    assert second["resumed"] and [e.step for e in events if e.kind == "step"][0] == 3


@pytest.mark.parametrize("method", ["full", "last_blocks", "lora"])
def test_a_run_writes_no_more_than_its_jobs_disk_estimate(tmp_path, byte_tok, spam_tsv, method):
    from gpt.lab.runs import expected_bytes

    spec = tiny_spec("classify", byte_tok, spam_tsv, method=method, eval_every=2)
    peak = []

    def measure(event):
        if event.kind in ("checkpoint", "eval", "end"):
            peak.append(sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()))

    run(spec, tmp_path, callbacks=[measure])
    written = max(peak + [sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())])
    need = expected_bytes(spec.to_dict())
    assert written <= need, (written, need)
    if method != "full":  # GPT-2 124M: only the trained part is checkpointed (3.5 GB in full)
        gpt2 = {**spec.to_dict(), "base": "gpt2"}
        assert expected_bytes(gpt2) < 0.3 * expected_bytes({**gpt2, "method": "full"})
