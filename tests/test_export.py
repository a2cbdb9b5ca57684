"""Models out (`gpt.lab.export`): every export loads in `transformers` and agrees with ours.

- language models: `AutoModelForCausalLM` logits allclose to ours (starter, a bias-free model,
  GPT-2's vocabulary);
- classifiers: `AutoModelForSequenceClassification` gives our probabilities although its
  `score` has no bias (folded into `ln_f`), padded batches included;
- tokenizers: `AutoTokenizer` gives our ids for GPT-2's vocabulary (against tiktoken) and for
  our own BPE, on unicode, emoji, whitespace runs and the bundled data;
- `job:<id>` and run folders export; `python -m gpt export` writes a folder;
- `push` creates a private repo and commits every file, against a loopback fake hub.
"""

from __future__ import annotations

import base64
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gpt.checkpoint import save_checkpoint
from gpt.classifier import GPTClassifier
from gpt.config import PRESETS
from gpt.lab import export as ex
from gpt.lab.names import load_model, load_tokenizer
from gpt.model import GPT
from gpt.tokenizer import Tokenizer

pytestmark = pytest.mark.slow  # a loopback hub and transformers: in the full suite only

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TEXTS = [
    "Hello world!",
    "  leading   spaces\n\n\ttabs and trailing  ",
    "emoji 🤖🎉👩‍👩‍👧 and 日本語のテキスト, naïve café, Ωμέγα",
    "it's we'll they're I'M DON'T",
    "a  b   c    d\n\n\n e \r\n f\u00a0g\u2003h",
    "<|endoftext|>two texts<|endoftext|>",
    "123456 7.5e10 $$$ ===== ---- ...... !!!?",
    "x" * 300,
    "def f(x):\n    return x**2  # comment\n",
    "",
]


def _texts() -> list[str]:
    corpus = Path(__file__).resolve().parents[1] / "data"
    extra = []
    for path in sorted(corpus.rglob("*.txt"))[:3]:
        extra.append(path.read_text(encoding="utf-8", errors="replace")[:20_000])
    return TEXTS + extra


@pytest.fixture(scope="module")
def starter_dir(tmp_path_factory) -> Path:
    return ex.export("starter", tmp_path_factory.mktemp("export") / "starter").folder


@pytest.fixture(scope="module")
def spam_dir(tmp_path_factory) -> Path:
    return ex.export("starter-spam", tmp_path_factory.mktemp("export") / "spam").folder


def test_lm_logits_match_transformers(starter_dir):
    hf = transformers.AutoModelForCausalLM.from_pretrained(starter_dir).eval()
    ours = load_model("starter").eval()
    tok = load_tokenizer("starter")
    ids = torch.tensor([tok.encode("Once upon a time, Pip the fox 🦊 said: 'hello'")])
    with torch.no_grad():
        a, b = hf(ids).logits, ours(ids)
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert json.loads((starter_dir / "generation_config.json").read_text())["eos_token_id"] == 4095


def test_the_readme_card_carries_ours(starter_dir):
    """The model card: its data credit, held-out metrics and limits, from `gpt.lab.cards`."""
    from gpt.lab.cards import model_card

    card, readme = model_card("starter"), (starter_dir / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: transformers\npipeline_tag: text-generation")
    assert f"- **Training data:** {card.data}" in readme
    for m in card.metrics:
        assert f"| {m.label} | {m.text} |" in readme
    assert all(f"- {limit}" in readme for limit in card.limits) and card.limits


def test_own_bpe_ids_match_autotokenizer(starter_dir):
    hf = transformers.AutoTokenizer.from_pretrained(starter_dir)
    ours = load_tokenizer("starter")
    for text in _texts():
        assert hf(text)["input_ids"] == ours.encode(text), text[:60]
        assert hf.decode(ours.encode(text)) == ours.decode(ours.encode(text))


def test_classifier_probabilities_match(spam_dir):
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(spam_dir).eval()
    ours = load_model("starter-spam").eval()
    tok = load_tokenizer("starter")
    assert hf.config.id2label == {0: "ham", 1: "spam"}
    messages = ["WINNER!! Claim your free prize now, call 09061701461", "see you at 6?", "ok 👍"]
    rows = [tok.encode(m) for m in messages]
    width = max(map(len, rows))
    pad = tok.eot_token
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])  # (B, T), padded
    last = torch.tensor([len(r) - 1 for r in rows])
    with torch.no_grad():
        p_hf = torch.softmax(hf(ids).logits, -1)
        p_ours = torch.softmax(ours(ids, last_index=last), -1)
        logits_hf, logits_ours = hf(ids[:1, : len(rows[0])]).logits, ours(ids[:1, : len(rows[0])])
    torch.testing.assert_close(p_hf, p_ours, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits_hf, logits_ours, atol=1e-4, rtol=1e-4)  # logits too
    assert "folded into `transformer.ln_f.bias`" in (spam_dir / "README.md").read_text()


def test_fold_head_bias_is_exact_and_refuses_a_rank_deficient_head():
    torch.manual_seed(0)
    w, b = torch.randn(32, 3), torch.randn(3)
    beta = torch.randn(32)
    new, residual = ex.fold_head_bias(beta, w, b)
    assert residual < 1e-5
    n = torch.randn(5, 32)
    torch.testing.assert_close(n @ w + (new @ w), n @ w + beta @ w + b, atol=1e-5, rtol=1e-5)
    clf = GPTClassifier(GPT(PRESETS["tiny"]), num_classes=2)
    with torch.no_grad():
        clf.head.weight.zero_()
        clf.head.bias.copy_(torch.tensor([0.0, 1.0]))
    with pytest.raises(ex.ExportError, match="cannot be folded"):
        ex.hf_state(clf)


def test_gpt2_vocabulary_ids_match_tiktoken(tmp_path):
    gpt2 = load_tokenizer("gpt2")
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"].replace(vocab_size=50257, n_embd=16, n_head=2)).eval()
    ex.export_model(model, gpt2, tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in _texts():
        assert hf(text)["input_ids"] == gpt2.encode(text), text[:60]
    lm = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([gpt2.encode(TEXTS[2])])
    with torch.no_grad():
        torch.testing.assert_close(lm(ids).logits, model(ids), atol=1e-4, rtol=1e-4)


def test_a_freshly_trained_bpe_and_a_bias_free_model(tmp_path):
    text = "the cat sat on the mat. 🐱🐱 naïve   spaces\n\n" * 30 + "".join(TEXTS)
    tok = Tokenizer.train(text, vocab_size=400)
    torch.manual_seed(1)
    model = GPT(PRESETS["tiny"].replace(vocab_size=tok.n_vocab, bias=False)).eval()
    ex.export_model(model, tok, tmp_path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for t in [*TEXTS, text]:
        assert hf_tok(t)["input_ids"] == tok.encode(t), t[:60]
    lm = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([tok.encode("the cat 🐱 sat")])
    with torch.no_grad():
        torch.testing.assert_close(lm(ids).logits, model(ids), atol=1e-4, rtol=1e-4)


def test_other_split_patterns_are_refused_by_name(tmp_path):
    tok = Tokenizer.train("aaa bbb ccc " * 20, vocab_size=260, pattern=r"\S+|\s+")
    with pytest.raises(ex.ExportError, match="its own pattern"):
        ex.export_model(GPT(PRESETS["tiny"]), tok, tmp_path)


def test_job_and_run_folders_export(tmp_path):
    torch.manual_seed(2)
    tok = load_tokenizer("starter")
    body = GPT(PRESETS["tiny"].replace(vocab_size=4096))
    folder = save_checkpoint(
        tmp_path / "job" / "out" / "model", body, task="classify", tokenizer=tok,
        head={"num_classes": 2, "labels": ["ham", "spam"]},
        head_state={"weight": torch.randn(32, 2) * 0.1, "bias": torch.tensor([0.3, -0.2])},
    )
    jobs = SimpleNamespace(get=lambda job_id: SimpleNamespace(state="succeeded", model_path=str(folder)))
    report = ex.export("job:abc", tmp_path / "hf", jobs=jobs)
    assert report.architecture == "GPT2ForSequenceClassification"
    assert report.bias_residual is not None and report.bias_residual < 1e-5
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(report.folder).eval()
    ours = load_model(folder).eval()
    ids = torch.tensor([tok.encode("free entry in a weekly competition")])
    with torch.no_grad():
        torch.testing.assert_close(
            torch.softmax(hf(ids).logits, -1), torch.softmax(ours(ids), -1), atol=1e-5, rtol=1e-5
        )
    readme = (report.folder / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: transformers") and "# job:abc" in readme
    zipped = ex.export_zip(folder, tmp_path / "m.zip")  # a run's model folder, zipped
    names = set(zipfile.ZipFile(zipped).namelist())
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt", "README.md"} <= names


def test_an_export_loads_back_in_the_lab(starter_dir):
    """The exported folder is a Hugging Face GPT-2 folder our own loader reads too."""
    ours, back = load_model("starter").eval(), load_model(starter_dir).eval()
    tok, tok_back = load_tokenizer("starter"), load_tokenizer(starter_dir)
    ids = torch.tensor([tok.encode(TEXTS[2])])
    assert tok_back.encode(TEXTS[2]) == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(back(ids), ours(ids))


def test_cli_export(tmp_path, capsys):
    from gpt.__main__ import main

    assert main(["export", "starter-chat", str(tmp_path / "chat")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["architecture"] == "GPT2LMHeadModel"
    assert (tmp_path / "chat" / "model.safetensors").is_file()
    assert main(["export", "preset:tiny", str(tmp_path / "p")]) == 2
    assert "no weights to export" in capsys.readouterr().err


# --- push, against a loopback hub's upload endpoints ---------------------------------------------


class _UploadHub(BaseHTTPRequestHandler):
    """The hub's create-repo, preupload and commit endpoints; every file is a regular blob."""

    protocol_version = "HTTP/1.0"
    repos: dict = {}
    log: list = []

    def log_message(self, *args) -> None:
        pass

    def _json(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.log.append(("GET", self.path, self.headers.get("authorization")))
        if self.path.startswith("/api/whoami"):
            return self._json(200, {"name": "visitor", "type": "user"})
        self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.log.append(("POST", self.path, self.headers.get("authorization")))
        host = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            req = json.loads(data)
            repo = f"{req.get('organization') or 'visitor'}/{req['name']}"
            # huggingface_hub 1.x sends "visibility"; older clients sent "private"
            private = req.get("visibility") == "private" or req.get("private") is True
            self.repos[repo] = {"private": private, "files": {}}
            return self._json(200, {"url": f"{host}/{repo}", "name": repo})
        if self.path == "/api/validate-yaml":  # the README's front matter
            return self._json(200, {"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(data)["files"]
            return self._json(200, {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
            ]})
        if "/commit/" in self.path:
            repo = self.path.split("/api/models/")[1].split("/commit/")[0]
            for line in data.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    content = base64.b64decode(item["value"]["content"])
                    self.repos[repo]["files"][item["value"]["path"]] = content
            return self._json(200, {"commitUrl": f"{host}/{repo}/commit/{'a' * 40}",
                                    "commitOid": "a" * 40})
        self._json(404, {"error": "not found"})


def test_push_creates_a_private_repo_with_every_file(tmp_path, monkeypatch, starter_dir):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _UploadHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", url)
    _UploadHub.repos.clear()
    _UploadHub.log.clear()
    try:
        repo_url = ex.push(starter_dir, "my-starter", token="hf_test", endpoint=url)
    finally:
        server.shutdown()
    assert repo_url.endswith("visitor/my-starter")
    repo = _UploadHub.repos["visitor/my-starter"]
    assert repo["private"] is True
    assert set(repo["files"]) == {p.name for p in starter_dir.iterdir()}
    assert repo["files"]["config.json"] == (starter_dir / "config.json").read_bytes()
    # every call that acts for the account carries the token (huggingface_hub also asks
    # /api/agent-harnesses, anonymously, for its user agent)
    acting = [e for e in _UploadHub.log if e[1].startswith(("/api/whoami", "/api/repos", "/api/models"))]
    assert len(acting) >= 4 and all(auth == "Bearer hf_test" for _, _, auth in acting)
    with pytest.raises(ex.ExportError, match="token"):
        ex.push(starter_dir, "x", token=None)


def test_cli_export_push(tmp_path, monkeypatch, capsys):
    """`python -m gpt export MODEL DIR --push NAME`: HF_TOKEN and HF_ENDPOINT are read when run."""
    from gpt.__main__ import main

    server = ThreadingHTTPServer(("127.0.0.1", 0), _UploadHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_TOKEN", "hf_cli")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _UploadHub.repos.clear()
    _UploadHub.log.clear()
    try:
        code = main(["export", "starter-spam", str(tmp_path / "s"), "--push", "spam", "--public"])
    finally:
        server.shutdown()
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["pushed"].endswith("visitor/spam")
    repo = _UploadHub.repos["visitor/spam"]
    assert repo["private"] is False and "model.safetensors" in repo["files"]
    assert ("POST", "/api/repos/create", "Bearer hf_cli") in _UploadHub.log


def test_the_fine_tune_tab_pushes_with_the_visitors_login_never_the_servers_token(
    tmp_path, monkeypatch
):
    """pages.jobs.push_model: single-user, HF_TOKEN; on a Space (multi-user) only the visitor's
    own login token, the server's HF_TOKEN never; a private repo in their namespace; another
    visitor's job and a bad repo name refused."""
    import shutil

    import gradio as gr

    from gpt.jobs import JobManager, JobPolicy, Visitor
    from pages import jobs
    from tests.test_disk_budget import fake_job

    server = ThreadingHTTPServer(("127.0.0.1", 0), _UploadHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_TOKEN", "hf_server")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _UploadHub.repos.clear()
    _UploadHub.log.clear()
    a, b = Visitor("hf:alice"), Visitor("hf:bob")
    try:
        for multi in (False, True):
            root = tmp_path / f"jobs-{multi}"
            with JobManager(root, policy=JobPolicy(multiuser=multi), background=False) as m:
                fake_job(m, "j1", "succeeded", a.owner, 10)
                shutil.rmtree(m.job_dir("j1") / "out" / "model")
                shutil.copytree("assets/models/starter", m.job_dir("j1") / "out" / "model")
                if not multi:
                    said = jobs.push_model(m, "j1", "", a)  # HF_TOKEN, the default name
                    assert "visitor/gpt2lab-j1" in said and "private" in said
                    continue
                with pytest.raises(gr.Error, match="your Hugging Face login"):
                    jobs.push_model(m, "j1", "mine", a)  # HF_TOKEN is the server's: not used
                with pytest.raises(gr.Error, match="another visitor's"):
                    jobs.push_model(m, "j1", "mine", b, login_token="hf_bob")
                with pytest.raises(gr.Error, match="not a hub repo name"):
                    jobs.push_model(m, "j1", "alice/../x", a, login_token="hf_alice")
                said = jobs.push_model(m, "j1", "mine", a, login_token="hf_alice")
                assert "visitor/mine" in said
    finally:
        server.shutdown()
    assert _UploadHub.repos["visitor/gpt2lab-j1"]["private"] is True
    assert "model.safetensors" in _UploadHub.repos["visitor/mine"]["files"]
    creates = [auth for method, path, auth in _UploadHub.log if path == "/api/repos/create"]
    assert creates == ["Bearer hf_server", "Bearer hf_alice"]
