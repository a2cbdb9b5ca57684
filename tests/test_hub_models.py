"""Any GPT-2-architecture repo by its hub id (`org/name[@revision]`), in every layout real repos
use, downloaded from a loopback fake hub (`tests/fakehub.py`; HF_ENDPOINT points at it, HF_HOME
at a temporary folder) and checked against `transformers`:

| repo | layout | reference |
|---|---|---|
| test/plain | `save_pretrained`: model.safetensors, `transformer.` keys, README with a licence | transformers |
| test/sharded | model.safetensors.index.json and its shards | transformers |
| test/bin-only | `pytorch_model.bin` only (read through `torch.load(weights_only=True)`) | transformers |
| test/fp16, test/bf16 | half-precision storage | transformers |
| test/untied | `tie_word_embeddings=False`: its own `lm_head.weight` | transformers |
| test/bare | no `transformer.` prefix, `attn.bias` + `attn.masked_bias` buffers (as openai-community/gpt2) | transformers |
| test/added-tokens | vocab 50,258: vocab.json + merges.txt + added_tokens.json | transformers + AutoTokenizer |
| test/classifier | `GPT2ForSequenceClassification` (score.weight, id2label) | transformers |
| test/scratch, test/scratch-st | LLMs-from-scratch keys in `.pth` (or `.safetensors`) files, no config.json (transformers cannot load it) | the transformers model it was converted from |
| test/llama, test/pickle | a Llama config, a .bin holding code: refused with a clear message | |
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gpt.checkpoint import CheckpointError, UntiedGPT
from gpt.classifier import GPTClassifier
from gpt.lab import cards, hub
from gpt.lab.export import export, write_tokenizer
from gpt.lab.names import load_model, load_tokenizer, resolve
from gpt.tokenizer import Tokenizer
from tests import fakehub

pytestmark = pytest.mark.slow  # a loopback hub and transformers: in the full suite only

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

CFG = dict(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=50257)
IDS = torch.tensor([[464, 318, 257, 1332, 13, 50256, 0, 42]])  # (1, 8)
README = (
    "---\nlicense: mit\nbase_model: openai-community/gpt2\ndatasets:\n- tatsu-lab/alpaca\n---\n"
    "# A test model\n\n![badge](https://example.com/b.svg)\n\n"
    "A tiny random GPT-2 for the tests.\nIt knows nothing.\n\nMore text.\n"
)


def _hf_lm(seed: int = 0, **over) -> transformers.GPT2LMHeadModel:
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**CFG, **over})).eval()


def _config(model, folder: Path) -> None:
    model.config.save_pretrained(folder)


def _scratch_state(hf: transformers.GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """The LLMs-from-scratch book's key names for a transformers GPT-2 (its nn.Linear layout)."""
    s = {k.removeprefix("transformer."): v.detach().clone() for k, v in hf.state_dict().items()}
    C, T = hf.config.n_embd, hf.config.n_positions
    out = {"tok_emb.weight": s["wte.weight"], "pos_emb.weight": s["wpe.weight"]}
    for i in range(hf.config.n_layer):
        p, q = f"h.{i}.", f"trf_blocks.{i}."
        w, b = s[p + "attn.c_attn.weight"], s[p + "attn.c_attn.bias"]  # (C, 3C), (3C,)
        for j, n in enumerate(("query", "key", "value")):
            out[f"{q}att.W_{n}.weight"] = w[:, j * C:(j + 1) * C].T.contiguous()  # (out, in)
            out[f"{q}att.W_{n}.bias"] = b[j * C:(j + 1) * C].clone()
        for ours, theirs in (("attn.c_proj", "att.out_proj"), ("mlp.c_fc", "ff.layers.0"),
                             ("mlp.c_proj", "ff.layers.2")):
            out[f"{q}{theirs}.weight"] = s[f"{p}{ours}.weight"].T.contiguous()
            out[f"{q}{theirs}.bias"] = s[f"{p}{ours}.bias"]
        for ours, theirs in (("ln_1", "norm1"), ("ln_2", "norm2")):
            out[f"{q}{theirs}.scale"] = s[f"{p}{ours}.weight"]
            out[f"{q}{theirs}.shift"] = s[f"{p}{ours}.bias"]
        out[f"{q}att.mask"] = torch.triu(torch.ones(T, T), diagonal=1)
    out["final_norm.scale"], out["final_norm.shift"] = s["ln_f.weight"], s["ln_f.bias"]
    out["out_head.weight"] = s["wte.weight"].clone()
    return out


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """repo id -> (folder served, the transformers model to compare with, or None)."""
    root = tmp_path_factory.mktemp("hub-repos")
    made: dict[str, tuple[Path, object]] = {}

    def folder(repo: str) -> Path:
        f = root / repo.replace("/", "--")
        f.mkdir()
        return f

    hf = _hf_lm(0)
    f = folder("test/plain")
    hf.save_pretrained(f)
    (f / "README.md").write_text(README)
    made["test/plain"] = (f, hf)

    f = folder("test/sharded")
    hf.save_pretrained(f, max_shard_size="2MB")
    assert (f / "model.safetensors.index.json").is_file()
    made["test/sharded"] = (f, hf)

    f = folder("test/bin-only")
    _config(hf, f)
    torch.save(hf.state_dict(), f / "pytorch_model.bin")
    made["test/bin-only"] = (f, hf)

    for name, dtype in (("test/fp16", torch.float16), ("test/bf16", torch.bfloat16)):
        f = folder(name)
        _config(hf, f)
        state = {k: v.to(dtype).clone() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
        save_file(state, f / "model.safetensors", metadata={"format": "pt"})
        made[name] = (f, transformers.GPT2LMHeadModel.from_pretrained(f).eval())  # its own cast

    untied = _hf_lm(1, tie_word_embeddings=False)
    f = folder("test/untied")
    untied.save_pretrained(f)
    assert not torch.equal(untied.lm_head.weight, untied.transformer.wte.weight)
    made["test/untied"] = (f, untied)

    f = folder("test/bare")
    _config(hf, f)
    bare = {k.removeprefix("transformer."): v.clone() for k, v in hf.state_dict().items()
            if k != "lm_head.weight"}
    for i in range(CFG["n_layer"]):
        bare[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
        bare[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(bare, f / "model.safetensors")
    made["test/bare"] = (f, hf)

    big = _hf_lm(2, vocab_size=50258)
    f = folder("test/added-tokens")
    big.save_pretrained(f)
    gpt2 = load_tokenizer("gpt2")  # GPT-2's vocab.json + merges.txt, <|pad|> added
    write_tokenizer(Tokenizer(gpt2.ranks, {**gpt2.special_tokens, "<|pad|>": 50257},
                              gpt2.pattern, "gpt2"), f, 64)
    (f / "added_tokens.json").write_text(json.dumps({"<|pad|>": 50257}))
    made["test/added-tokens"] = (f, big)

    torch.manual_seed(3)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    clf_cfg = transformers.GPT2Config(**CFG, num_labels=3, id2label=labels, pad_token_id=0)
    clf = transformers.GPT2ForSequenceClassification(clf_cfg).eval()
    f = folder("test/classifier")
    clf.save_pretrained(f)
    made["test/classifier"] = (f, clf)

    scratch_hf = _hf_lm(4, n_embd=64, n_head=1)  # the book's n_head is emb_dim / 64
    f = folder("test/scratch")
    torch.save(_scratch_state(scratch_hf), f / "gpt2-small-124M.pth")
    bigger = _scratch_state(_hf_lm(5, n_embd=128, n_head=2))
    torch.save(bigger, f / "gpt2-medium-355M.pth")  # larger: never fetched
    (f / "README.md").write_text("# GPT-2 from scratch\n\nWeights for the book's GPT model.\n")
    made["test/scratch"] = (f, scratch_hf)
    f = folder("test/scratch-st")  # the same, as safetensors files beside the .pth ones
    shutil.copy(root / "test--scratch" / "gpt2-medium-355M.pth", f)
    save_file(_scratch_state(scratch_hf), f / "gpt2-small-124M.safetensors")
    made["test/scratch-st"] = (f, scratch_hf)

    f = folder("test/llama")
    (f / "config.json").write_text(json.dumps({"model_type": "llama",
                                               "architectures": ["LlamaForCausalLM"]}))
    save_file({"x": torch.zeros(1)}, f / "model.safetensors")
    made["test/llama"] = (f, None)

    f = folder("test/pickle")
    _config(hf, f)
    torch.save({"weights": hf.state_dict(), "hook": os.getcwd}, f / "pytorch_model.bin")
    made["test/pickle"] = (f, None)
    return made


@pytest.fixture
def served(repos, monkeypatch, tmp_path):
    """The fake hub serving every repo; an empty hub cache; nothing ruling the network out."""
    for name in ("HF_HUB_OFFLINE", "GPT2LAB_ALLOW_DOWNLOAD", "GPT2LAB_MODELS_DIR",
                 "HF_HUB_CACHE", "HF_HUB_DOWNLOAD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    server = fakehub.FakeHub({repo: f for repo, (f, _) in repos.items()})
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    hub.reset()
    yield server
    server.stop()
    hub.reset()


def _ours(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return model(ids)


def _theirs(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize(
    "repo",
    ["test/plain", "test/sharded", "test/bin-only", "test/fp16", "test/bf16", "test/untied",
     "test/bare"],
)
def test_each_lm_layout_matches_transformers(served, repos, repo):
    events: list[hub.DownloadProgress] = []
    model = load_model(repo, progress=events.append)
    torch.testing.assert_close(_ours(model), _theirs(repos[repo][1]), atol=1e-5, rtol=1e-5)
    assert model.dtype == torch.float32  # half-precision storage is cast on load
    assert isinstance(model, UntiedGPT) == (repo == "test/untied")
    assert events[-1].finished and events[-1].done == events[-1].total > 0
    fetched = {r["path"].split("/resolve/main/")[-1] for r in served.requests
               if r["method"] == "GET" and "/resolve/" in r["path"]}
    weights = {"test/bin-only": "pytorch_model.bin", "test/sharded": "2 safetensors shards"}.get(
        repo, "model.safetensors"
    )
    card = cards.model_card(repo)
    assert card.source == "hub" and f"Weights read from {weights}" in card.training
    if repo in ("test/fp16", "test/bf16"):
        assert repo.split("/")[1].replace("fp", "float").replace("bf", "bfloat") in card.training
    assert weights not in fetched  # safetensors come from "storage" after the hub's redirect
    assert not any(f.endswith(".bin") for f in fetched) or repo == "test/bin-only"


def test_the_card_says_what_the_model_is(served):
    card = cards.model_card("test/plain")
    assert card.summary == "A tiny random GPT-2 for the tests. It knows nothing."
    assert card.licence == "mit" and card.base == "openai-community/gpt2"
    assert "tatsu-lab/alpaca" in card.data and card.parameters == sum(
        p.numel() for p in load_model("test/plain").parameters()
    )
    assert card.architecture == "GPT-2, 2 layers, 2 heads, 32 wide, context 64"
    assert any("not evaluated" in limit for limit in card.limits)
    assert card.location is None and card.training is None  # before the weights came
    commit = resolve("test/plain").folder.name
    after = cards.model_card("test/plain")
    assert after.location == f"test/plain@{commit}"  # an id that loads exactly these weights
    assert resolve(after.location).folder == resolve("test/plain").folder
    assert after.summary == card.summary and after.training.startswith("Weights read from")
    # before the weights come: what its config says, read from the hub
    fresh = cards.model_card("test/classifier")
    assert fresh.task == "classify" and "3-class head" in (fresh.architecture or "")


def test_added_tokens_and_a_bigger_vocabulary(served, repos):
    model, tok = load_model("test/added-tokens"), load_tokenizer("test/added-tokens")
    ref = resolve("test/added-tokens")
    assert ref.config.vocab_size == 50258 and tok.n_vocab == 50258
    text = "Hello<|pad|> world <|endoftext|>"
    hf_tok = transformers.AutoTokenizer.from_pretrained(repos["test/added-tokens"][0])
    assert tok.encode(text) == hf_tok(text)["input_ids"]
    assert 50257 in tok.encode(text)
    ids = torch.tensor([tok.encode(text)])
    torch.testing.assert_close(_ours(model, ids), _theirs(repos["test/added-tokens"][1], ids),
                               atol=1e-5, rtol=1e-5)
    assert "plus 1 added token (<|pad|>)" in cards.model_card("test/added-tokens").tokenizer


def test_sequence_classifier_becomes_ours(served, repos):
    model = load_model("test/classifier@main")  # a revision, too
    assert isinstance(model, GPTClassifier)
    assert model.labels == ("negative", "neutral", "positive")
    assert resolve("test/classifier@main").task == "classify"
    with torch.no_grad():
        ours = torch.softmax(model(IDS), -1)
        theirs = torch.softmax(repos["test/classifier"][1](IDS).logits, -1)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("repo, file", [("test/scratch", "gpt2-small-124M.pth"),
                                        ("test/scratch-st", "gpt2-small-124M.safetensors")])
def test_llms_from_scratch_keys(served, repos, repo, file):
    model = load_model(repo)
    assert model.config.n_embd == 64 and model.config.n_layer == 2
    torch.testing.assert_close(_ours(model), _theirs(repos[repo][1]), atol=1e-5, rtol=1e-5)
    fetched = [r["path"] for r in served.requests if "/resolve/" in r["path"]]
    assert any(p.endswith(file) for p in fetched) or file.endswith(".safetensors")  # via cdn
    assert not any(p.endswith("gpt2-medium-355M.pth") for p in fetched)  # the smallest only
    card = cards.model_card(repo)
    assert f"Weights read from {file}" in card.training
    if repo == "test/scratch":
        assert card.summary == "Weights for the book's GPT model."


def test_refusals_say_why(served):
    with pytest.raises(CheckpointError, match="model_type is 'llama', expected 'gpt2'.*GPT-2-arch"):
        load_model("test/llama")
    with pytest.raises(CheckpointError, match=r"weights_only=True.*other pickle files are never"):
        load_model("test/pickle")
    with pytest.raises(CheckpointError, match="No public repo test/missing") as e:
        load_model("test/missing")
    assert "org/name[@revision]" in str(e.value)
    served.set_mode("refuse")
    with pytest.raises(CheckpointError, match="connection refused"):
        load_model("test/plain")


def test_offline_says_so(repos, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    hub.reset()
    with pytest.raises(CheckpointError, match="downloads are off.*pick a folder holding its files"):
        load_model("test/plain")


def test_a_hub_model_exports_back(served, repos, tmp_path):
    """A hub model goes through the lab and out again (untied head kept): transformers agrees."""
    report = export("test/untied", tmp_path / "out")
    back = transformers.AutoModelForCausalLM.from_pretrained(report.folder).eval()
    torch.testing.assert_close(_theirs(back), _theirs(repos["test/untied"][1]), atol=1e-5,
                               rtol=1e-5)
    assert not json.loads((report.folder / "config.json").read_text())["tie_word_embeddings"]
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "Weights read from model.safetensors" in readme
    shutil.rmtree(tmp_path / "out")


def test_cli_base_and_export_take_a_hub_id(served, repos, tmp_path, capsys):
    from gpt.__main__ import main

    assert main(["export", "test/plain", str(tmp_path / "plain")]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "GPT2LMHeadModel"
    assert "license: mit" in (tmp_path / "plain" / "README.md").read_text()
    args = ["train", "lm", "--base", "test/plain", "--data", str(tmp_path / "t.txt"),
            "--out", str(tmp_path / "run"), "--max-steps", "1", "--batch-size", "1",
            "--context", "16", "--eval-samples", "2", "--quiet"]
    (tmp_path / "t.txt").write_text("the cat sat on the mat. " * 400)
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_a_picker_takes_a_typed_hub_id(served, repos):
    """pages.common.models: `org/name` typed into a picker downloads (progress lines), lists and
    loads it; its card box shows the hub card; a model of another task is refused first."""
    import gradio as gr

    from gpt.lab.registry import default_registry
    from pages.common import models

    steps = models.wait_model("test/plain", ("lm", "instruct"))
    lines = []
    try:
        while True:
            lines.append(next(steps))
    except StopIteration as stop:
        model, tok = stop.value
    try:
        assert lines[0] == "test/plain: asking the hub"
        torch.testing.assert_close(_ours(model), _theirs(repos["test/plain"][1]), atol=1e-5,
                                   rtol=1e-5)
        assert tok.n_vocab == 50257 and "test/plain" in default_registry().names(("lm",))
        text = models.card_markdown(models.card_of("test/plain"), "test/plain")
        assert "A tiny random GPT-2 for the tests." in text and "**Licence:** mit" in text
        assert dict(models.model_choices(("lm",)))  # listed, labelled as a hub model:
        assert any(label.startswith("test/plain — from the hub, ")
                   for label, _ in models.model_choices(("lm",)))
        with pytest.raises(gr.Error, match="test/classifier is a classify model; this tab needs"):
            next(models.wait_model("test/classifier", ("lm", "instruct")))
        assert "test/classifier" not in default_registry().names()
        # typed into the Chat tab's instruct-only picker, a language model is taken as one
        chat = models.wait_model("test/bare", ("instruct",))
        while True:
            try:
                next(chat)
            except StopIteration:
                break
        assert default_registry().entry("test/bare").task == "instruct"
    finally:
        default_registry().remove("test/plain")
        default_registry().remove("test/bare")


def test_an_untied_hub_model_trains_and_reloads(served, tmp_path):
    """A checkpoint trained from an untied base keeps its own head and loads back."""
    from gpt.__main__ import main

    (tmp_path / "t.txt").write_text("the cat sat on the mat. " * 400)
    args = ["train", "lm", "--base", "test/untied", "--data", str(tmp_path / "t.txt"),
            "--out", str(tmp_path / "run"), "--max-steps", "1", "--batch-size", "1",
            "--context", "16", "--eval-samples", "2", "--quiet"]
    assert main(args) == 0
    back = load_model(tmp_path / "run" / "model")
    assert isinstance(back, UntiedGPT)
    assert not torch.equal(back.out_head, back.wte.weight)


def test_training_from_an_uncached_hub_base_uses_its_own_tokenizer(served):
    """A run from a hub repo not downloaded yet fetches it first, so its added tokens count
    (before, the tokenizer was picked before the download: GPT-2's 50,257)."""
    from gpt.lab.runs import RunSpec, load_base

    model, tok = load_base(RunSpec(kind="lm", base="test/added-tokens"))
    assert tok.n_vocab == 50258 and tok.encode("<|pad|>", allowed_special="all") == [50257]
    assert model.config.vocab_size == 50258
