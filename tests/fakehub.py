"""A fake Hugging Face hub on loopback, for tests that must never touch the network.

It serves model folders (config.json + model.safetensors, as `save_pretrained` writes them) in
the hub's URL layout, with the headers huggingface_hub reads (X-Repo-Commit, ETag,
Content-Length, Accept-Ranges):

- `HEAD|GET /<repo>/resolve/<revision>/<file>`: the file (GET honours `Range: bytes=N-`);
  .safetensors files answer as the hub answers LFS files: 302 to `http://localhost:<port>/cdn/
  <sha256>` (another host name, so huggingface_hub treats it as storage) with X-Linked-Size and
  X-Linked-Etag (set `FakeHub.cdn = False` to serve them directly).
- `GET /api/models/<repo>` and `/api/models/<repo>/revision/<revision>`: model info with
  `sha` and `siblings`.
- `GET /api/models/<repo>/tree/<revision>`: the file list.

Anything else is answered 404 and, like every request, logged in `requests()`.

Modes (`set_mode`): "ok"; "refuse" (nothing listens on the port: connection refused);
"truncate" (GETs of .safetensors files promise the full Content-Length, send half, hang up);
"hang" (accepts the connection, never answers, until `stop()` or another mode).

    url = fakehub.start(folder)                  # serves folder as openai-community/gpt2
    os.environ["HF_ENDPOINT"] = url
    ...
    fakehub.set_mode("truncate")
    fakehub.stop()

Run it by hand (for trying the app): `python tests/fakehub.py [--port 8799] [--rate-mb 2]
[FOLDER]` serves FOLDER (default: a new tiny random GPT-2, 13 MB) as all four GPT-2 sizes until
Ctrl-C; `--rate-mb` slows the files down so a download's progress can be watched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODES = ("ok", "refuse", "truncate", "hang")
GPT2_REPOS = (
    "openai-community/gpt2",
    "openai-community/gpt2-medium",
    "openai-community/gpt2-large",
    "openai-community/gpt2-xl",
)


def make_tiny_gpt2(folder: str | Path, seed: int = 0, **config: Any) -> Path:
    """Save a random 2-layer GPT-2 (n_embd 64, GPT-2's vocabulary) with `save_pretrained`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    cfg = GPT2Config(**{"n_layer": 2, "n_embd": 64, "n_head": 2, "n_positions": 128, **config})
    GPT2LMHeadModel(cfg).eval().save_pretrained(folder)
    return Path(folder)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: stop() really stops

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _log(self) -> None:
        self.server.hub.requests.append(
            {"method": self.command, "path": self.path, "range": self.headers.get("Range")}
        )

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        hub = self.server.hub
        self._log()
        if hub.mode == "hang":
            hub._release.wait(60)
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        m = re.fullmatch(r"/api/models/(.+?)(?:/revision/([^/]+)|/tree/([^/]+)(/.*)?)?", path)
        if m and m.group(1) in hub.repos:
            self._api(m.group(1), tree=m.group(3) is not None, body=body)
            return
        m = re.fullmatch(r"/cdn/([0-9a-f]{64})", path)
        if m:
            self._cdn(m.group(1), body)
            return
        m = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path)
        if m and m.group(1) in hub.repos:
            self._file(m.group(1), m.group(3), body)
            return
        self._send(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound"}, body)

    def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        headers.setdefault("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _api(self, repo: str, tree: bool, body: bool) -> None:
        hub = self.server.hub
        files = hub.files(repo)
        if tree:
            info: Any = [
                {"type": "file", "path": f, "size": len(d), "oid": _sha1(d)}
                for f, d in files.items()
            ]
        else:
            info = {
                "id": repo,
                "modelId": repo,
                "sha": hub.commit(repo),
                "siblings": [{"rfilename": f, "size": len(d)} for f, d in files.items()],
                "private": False,
                "gated": False,
                "disabled": False,
            }
        self._send(200, json.dumps(info).encode(), {"X-Repo-Commit": hub.commit(repo)}, body)

    def _file(self, repo: str, filename: str, body: bool) -> None:
        hub = self.server.hub
        files = hub.files(repo)
        commit = hub.commit(repo)
        if filename not in files:
            self._send(
                404,
                b'{"error":"Entry not found"}',
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
                body,
            )
            return
        data = files[filename]
        if filename.endswith(".safetensors") and hub.cdn:
            # an LFS file, as the hub serves it: a redirect to storage on another host, its
            # size and sha256 in X-Linked-* headers
            sha = hashlib.sha256(data).hexdigest()
            headers = {
                "X-Repo-Commit": commit,
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(len(data)),
                "ETag": f'"{_sha1(data)}"',
                "Location": f"http://localhost:{hub.port}/cdn/{sha}",
            }
            self._send(302, b"", headers, body)
            return
        self._bytes(data, filename, {"X-Repo-Commit": commit, "ETag": f'"{_sha1(data)}"'}, body)

    def _cdn(self, sha: str, body: bool) -> None:
        for repo in self.server.hub.repos:
            for filename, data in self.server.hub.files(repo).items():
                if hashlib.sha256(data).hexdigest() == sha:
                    self._bytes(data, filename, {"ETag": f'"{sha}"'}, body)
                    return
        self._send(404, b"no such object", {}, body)

    def _bytes(self, data: bytes, filename: str, extra: dict[str, str], body: bool) -> None:
        """The file's bytes (from `Range: bytes=N-` on), cut short or slowed as the mode says."""
        hub = self.server.hub
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", **extra}
        status, start = 200, 0
        r = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if body and r and int(r.group(1)) < len(data):
            status, start = 206, int(r.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        part = data[start:]
        headers["Content-Length"] = str(len(part))
        if body and hub.mode == "truncate" and filename.endswith(".safetensors"):
            self.close_connection = True
            self._send(status, part[: len(part) // 2], headers, body)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            return
        if body and hub.rate:  # throttled: the body in slices, at about `rate` bytes/s
            self._send(status, b"", headers, body=True)
            step = max(1, int(hub.rate / 20))
            for i in range(0, len(part), step):
                self.wfile.write(part[i : i + step])
                hub._release.wait(0.05)
            return
        self._send(status, part, headers, body)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class FakeHub:
    """One fake hub serving `repos` (repo id -> model folder)."""

    def __init__(
        self, repos: dict[str, str | Path], port: int = 0, rate: float | None = None
    ) -> None:
        self.repos = {r: Path(f) for r, f in repos.items()}
        self.mode = "ok"
        self.rate = rate  # bytes/s for file bodies (None: as fast as possible)
        self.cdn = True  # .safetensors redirect to /cdn/<sha256> on "localhost", as the hub does
        self.requests: list[dict[str, Any]] = []
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._release = threading.Event()
        self._files: dict[str, dict[str, bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def files(self, repo: str) -> dict[str, bytes]:
        if repo not in self._files:
            folder = self.repos[repo]
            self._files[repo] = {
                p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()
            }
        return self._files[repo]

    def commit(self, repo: str) -> str:
        """A 40-hex commit id that changes with the files."""
        h = hashlib.sha1(repo.encode())
        for name, data in self.files(repo).items():
            h.update(name.encode() + hashlib.sha256(data).digest())
        return h.hexdigest()

    def start(self) -> str:
        if self._server is None:
            self._server = _Server(("127.0.0.1", self.port), _Handler)
            self._server.hub = self
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self.url

    def _close(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "refuse":
            if self._server is None and not self.port:  # reserve a port nobody listens on
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    self.port = s.getsockname()[1]
            self._close()
        else:
            self._release.set()  # let hanging requests go
            self._release = threading.Event()
            self.mode = mode
            self.start()
        self.mode = mode

    def stop(self) -> None:
        self._close()


_hub: FakeHub | None = None


def start(
    model_folder: str | Path,
    repo_id: str | tuple[str, ...] | list[str] = "openai-community/gpt2",
    mode: str = "ok",
    port: int = 0,
    rate: float | None = None,
) -> str:
    """Serve `model_folder` as `repo_id` (one id or several) on 127.0.0.1; return the URL to
    put in HF_ENDPOINT. `rate` (bytes/s) slows file bodies down, to watch a download's
    progress. Replaces an earlier `start`."""
    global _hub
    stop()
    ids = [repo_id] if isinstance(repo_id, str) else list(repo_id)
    _hub = FakeHub({r: model_folder for r in ids}, port=port, rate=rate)
    _hub.start()
    _hub.set_mode(mode)
    return _hub.url


def stop() -> None:
    """Stop the fake hub started by `start` (no-op when none runs)."""
    global _hub
    if _hub is not None:
        _hub.stop()
        _hub = None


def set_mode(mode: str) -> None:
    """Switch the running fake hub to "ok", "refuse", "truncate" or "hang"."""
    if _hub is None:
        raise RuntimeError("no fake hub running; call start() first")
    _hub.set_mode(mode)


def requests() -> list[dict[str, Any]]:
    """Every request the fake hub got: {"method", "path", "range"}."""
    return [] if _hub is None else list(_hub.requests)


def hub() -> FakeHub | None:
    """The running FakeHub, for direct access (its repos, commit ids, files)."""
    return _hub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", help="model folder (default: a tiny random GPT-2)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--rate-mb", type=float, help="serve files at about this many MB/s")
    args = parser.parse_args()
    folder = args.folder or make_tiny_gpt2(tempfile.mkdtemp(prefix="fakehub-"))
    rate = args.rate_mb * 1e6 if args.rate_mb else None
    url = start(folder, GPT2_REPOS, mode=args.mode, port=args.port, rate=rate)
    print(f"fake hub at {url} serving {folder} as {', '.join(GPT2_REPOS)}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stop()


if __name__ == "__main__":
    main()
