"""The Inside tab and the sampling pipeline, end to end through the API on GPT-2 124M.

    python bench/bench_inside.py [--repeats 5]

Saves a randomly initialised GPT-2 124M in the Hugging Face layout (made here, no download),
starts `python app.py` with it (`GPT2LAB_MODELS_DIR`), and times each request on 256 tokens: the
logit lens (all layers and positions, figures included), surprisal, one ablation re-run,
attribution and compare; then the sampling-pipeline redraw after a slider move (a /generate run
first, then /pipeline with new settings: no model call).

Each request is timed two ways, one after the other: through Gradio's HTTP API (`POST
/gradio_api/call/<name>`, then the event stream until `complete`: the queue the browser uses too)
and through `gradio_client`, whose `predict` adds a fixed wait of its own (about 80 ms on this
machine, even for an endpoint that returns its input). The goals are read on the HTTP API.
Files are not downloaded, as in a browser; the numbers behind each view are written only when
asked (`/lens_numbers`, ...), timed once here. The ablation re-run finds the intact model's
predictions kept by the tab (as after "Look inside"), so it times one forward pass of the
ablated model. From the lens request it derives the machine's effective rate and what the caps
in `pages/inside.py` mean in seconds for gpt2-xl. Writes bench/results/inside.json; prints the
load average (`os.getloadavg`), since the figures depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_app import median_time, start  # noqa: E402
from bench.common import print_table, save  # noqa: E402

TEXT_256 = " ".join(f"word{i % 50}" for i in range(200))  # 256+ GPT-2 tokens; capped at 256


def timed(fn, repeats: int) -> float:
    fn()  # warm: the model is loaded, caches filled
    return median_time(fn, repeats)


class HttpApi:
    """Gradio's HTTP API, as `curl` uses it: POST the inputs, read the event stream."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=120)
        self.session = uuid.uuid4().hex  # one visitor: /pipeline finds the run /generate kept

    def predict(self, *data, api_name: str):
        name = api_name.strip("/")
        body = {"data": list(data), "session_hash": self.session}
        r = self.http.post(f"{self.url}/gradio_api/call/{name}", json=body)
        r.raise_for_status()
        event_id = r.json()["event_id"]
        with self.http.stream("GET", f"{self.url}/gradio_api/call/{name}/{event_id}") as s:
            text = "".join(s.iter_text())
        event, _, payload = text.strip().rpartition("event: ")[2].partition("\n")
        if event != "complete":
            raise RuntimeError(f"/{name}: {text[-300:]}")
        return json.loads(payload.removeprefix("data: "))


def main() -> None:
    from gradio_client import Client
    from transformers import GPT2Config, GPT2LMHeadModel

    from gpt.config import PRESETS
    from gpt.lab.names import load_tokenizer
    from pages.inside import FLOP_BUDGET, token_cap

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n_tokens = min(256, len(load_tokenizer("gpt2").encode(TEXT_256)))
    load_before = os.getloadavg()
    rows, results = [], {"tokens": n_tokens, "load_before": load_before}
    with tempfile.TemporaryDirectory() as tmp:
        GPT2LMHeadModel(GPT2Config()).save_pretrained(Path(tmp) / "models" / "gpt2")
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GPT2LAB_JOBS_DIR": str(Path(tmp) / "jobs"),
            "GPT2LAB_MODELS_DIR": str(Path(tmp) / "models"),
        }
        proc, url, _ = start(env)
        try:
            clients = {"http": HttpApi(url), "client": Client(url, verbose=False)}
            m, r = "gpt2", args.repeats
            fresh = iter(range(10**6))  # a new first word: the tab keeps the last texts' results
            cases = [
                (
                    "lens",
                    "Logit lens, all 13 rows × 256 positions, figures",
                    "< 1 s",
                    lambda c: c.predict(m, TEXT_256, "", api_name="/lens"),
                ),
                (
                    "surprisal",
                    "Surprisal (coloured text, perplexity), a new text each time",
                    "< 0.5 s",
                    lambda c: c.predict(m, f"{next(fresh)} {TEXT_256}", api_name="/surprisal"),
                ),
                (
                    "ablate",
                    "One ablation re-run (heads 0.1, 5.3, 11.7; mean)",
                    "< 0.5 s",
                    lambda c: c.predict(
                        m, TEXT_256, "L0H1, L5H3, L11H7", "mean", api_name="/ablate"
                    ),
                ),
                (
                    "attribution_gradient",
                    "Attribution, gradient × input",
                    "–",
                    lambda c: c.predict(m, TEXT_256, "gradient", "", api_name="/attribution"),
                ),
                (
                    "compare",
                    "Compare gpt2 with itself (2 lenses)",
                    "–",
                    lambda c: c.predict(m, m, TEXT_256, api_name="/compare"),
                ),
                (
                    "lens_numbers",
                    "Lens numbers written when asked (CSV + JSON, 3,341 rows)",
                    "–",
                    lambda c: c.predict(m, TEXT_256, "", api_name="/lens_numbers"),
                ),
            ]
            for c in clients.values():  # one /generate run per visitor for /pipeline
                c.predict(m, "Once upon a time", 0.8, 40, 0.95, 1.1, 20, 0, api_name="/generate")
            settings = iter([(0.5, 10, 0.9, 1.3), (1.2, 0, 0.8, 1.0), (0.8, 40, 0.95, 1.1)] * 50)
            cases.append(
                (
                    "pipeline_redraw",
                    "Sampling-pipeline redraw after a slider move",
                    "< 100 ms",
                    lambda c: c.predict(12, *next(settings), api_name="/pipeline"),
                )
            )
            for key, what, goal, fn in cases:
                repeats = 2 * r if key == "pipeline_redraw" else r
                times = {
                    how: timed(lambda c=c, fn=fn: fn(c), repeats) for how, c in clients.items()
                }
                results[f"{key}_s"] = times["http"]
                results[f"{key}_gradio_client_s"] = times["client"]
                rows.append(
                    [
                        what,
                        f"{times['http'] * 1000:,.0f} ms",
                        f"{times['client'] * 1000:,.0f} ms",
                        goal,
                    ]
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    # The effective rate of the lens request, and what the caps mean for gpt2-xl.
    g, xl = PRESETS["gpt2"], PRESETS["gpt2-xl"]
    lens_flops = n_tokens * (2 * g.n_params() + 2 * (g.n_layer + 1) * g.n_embd * g.vocab_size)
    rate = lens_flops / results["lens_s"]
    results["effective_gflops"] = rate / 1e9
    for view in ("lens", "surprisal", "ablate", "compare", "gradient"):
        cap = token_cap(xl, view)
        results[f"xl_cap_{view}"] = cap
        rows.append(
            [
                f"gpt2-xl cap, {view}",
                f"{cap} tokens (≈ {FLOP_BUDGET / rate:.0f} s at the rate above, at most)",
                "",
                "≈ 10 s",
            ]
        )
    load_after = os.getloadavg()
    results["load_after"] = load_after
    print_table(
        f"Inside tab through the API, GPT-2 124M (random weights), {n_tokens} tokens; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"lens request at {rate / 1e9:.0f} GFLOP/s effective",
        ["What", "HTTP API (median)", "gradio_client (median)", "Goal"],
        rows,
    )
    print(f"\nwrote {save('inside', results)}")


if __name__ == "__main__":
    main()
