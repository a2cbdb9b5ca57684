"""Shared fixtures: randomly initialised Hugging Face GPT-2 folders made by the tests themselves.

Nothing here touches the network: the reference models are built from a config with random
weights and written with `save_pretrained`, exactly the layout of the hub's GPT-2 folders.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

# The suite's heap is large (torch, gradio, transformers: millions of objects), and Python's cyclic
# GC walks all of it at each full collection, pytest's five at exit included. Fewer collections,
# and what is loaded by the end of collection frozen out of them (`pytest_collection_finish`):
# inner loop 28.3 -> 25.7 s, 33.5 -> 28.9 s wall.
gc.set_threshold(50_000, 20, 20)


def pytest_collection_finish(session):
    gc.collect()
    gc.freeze()


# The tests' models are tiny: a second intra-op thread's hand-off costs more than it gives (the
# inner loop ran 36 s on 2 threads, 33 s on 1). Tests of threading set their own counts.
torch.set_num_threads(1)

SMALL_HF = dict(n_layer=2, n_head=4, n_embd=64, n_positions=128, vocab_size=1000)


def make_hf_gpt2(folder: Path, seed: int = 0, **config):
    """Save a random `transformers.GPT2LMHeadModel` to `folder`; return the model (eval mode)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    cfg = GPT2Config(**config)
    cfg.bos_token_id = cfg.eos_token_id = min(50256, cfg.vocab_size - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GPT2LMHeadModel(cfg).eval()
        model.save_pretrained(folder)
    return model


@pytest.fixture(autouse=True, scope="module")
def no_job_workers_left_behind(tmp_path_factory):
    """After each test module, kill job workers still running under this session's temporary
    folders (a failed test can leave a 600-step job behind, loading every later test)."""
    yield
    proc = Path("/proc")
    if not (proc / "self").exists():
        return
    base = str(tmp_path_factory.getbasetemp()).encode()
    for entry in proc.glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gpt.jobs.worker" in argv and any(a.startswith(base) for a in argv):
            left = b" ".join(argv[3:]).decode()
            warnings.warn(f"killed a job worker left running: {left}", stacklevel=1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="session")
def hf_small(tmp_path_factory):
    """(folder, hf_model) for a 2-layer GPT-2 with a 1000-token vocabulary."""
    folder = tmp_path_factory.mktemp("hf-small")
    return folder, make_hf_gpt2(folder, **SMALL_HF)


@pytest.fixture(scope="session")
def hf_gpt2(tmp_path_factory):
    """(folder, hf_model) for a randomly initialised GPT-2 124M (the `gpt2` config)."""
    folder = tmp_path_factory.mktemp("hf-gpt2")
    return folder, make_hf_gpt2(folder, seed=1)


# --- a fake Ollama chat server on loopback, for the LLM-judge tests --------------------------


class FakeOllama(BaseHTTPRequestHandler):
    """Records each request body and answers with whatever `server.respond(body)` returns."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        body = json.loads(raw)
        self.server.requests.append(
            {"path": self.path, "body": body, "headers": dict(self.headers)}
        )
        status, payload = self.server.respond(body)
        if isinstance(payload, float):  # stay silent past the client's timeout, then hang up
            time.sleep(payload)
            return
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


def reply(content: str) -> dict:
    return {"model": "llama3", "message": {"role": "assistant", "content": content}, "done": True}


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeOllama)
    srv.requests = []
    srv.answers = []
    srv.respond = lambda body: (200, reply(srv.answers.pop(0)))
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)
