"""GPT-2 124M on CPU: ours vs Hugging Face transformers, same random weights, one run.

    python bench/bench_model.py [--repeats 3] [--new-tokens 200] [--skip-bf16] [--decode-only]
        [--threads N]

Measures decode tokens/s (batch 1, prompt 32, greedy, KV cache), prefill of 512 tokens, all
144 attention maps for 256 tokens, a training step (forward + backward + AdamW, B=2, T=256), and
an optional bf16 decode. Prints a markdown table of medians and ratios; writes
bench/results/model.json (`--decode-only`: only the decode rows, with the weight-reading bound
measured in the same run and the load average; bench/results/model-decode.json).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, machine, print_table, save  # noqa: E402
from gpt.config import PRESETS  # noqa: E402
from gpt.model import GPT  # noqa: E402
from gpt.sampling import SamplingConfig, generate_ids  # noqa: E402
from gpt.train.optim import make_optimizer  # noqa: E402


def hf_twin(model: GPT, attn: str = "sdpa"):
    """A transformers GPT2LMHeadModel holding exactly our weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    hf_cfg = GPT2Config(
        vocab_size=c.vocab_size,
        n_positions=c.block_size,
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_embd=c.n_embd,
        attn_implementation=attn,
    )
    hf = GPT2LMHeadModel(hf_cfg)
    state = {f"transformer.{k}": v for k, v in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all(
        k.endswith(("attn.bias", "masked_bias", "lm_head.weight")) for k in missing
    ), missing
    hf.tie_weights()
    return hf.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=200)
    ap.add_argument("--skip-bf16", action="store_true")
    ap.add_argument("--decode-only", action="store_true", help="only the decode rows")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = GPT(PRESETS["gpt2"]).eval()
    hf = hf_twin(ours)
    n_new, R = args.new_tokens, args.repeats
    prompt = torch.randint(0, 50257, (1, 32))
    rows, results = [], {}

    # Decode: batch 1, prompt 32, greedy, KV cache, no stopping at end-of-text.
    cfg = SamplingConfig(temperature=0, max_new_tokens=n_new, stop_at_eot=False)
    out = {}

    def ours_decode():
        out["ours"] = generate_ids(ours, prompt[0].tolist(), cfg)

    def hf_decode():
        with torch.inference_mode():
            g = hf.generate(
                prompt,
                max_new_tokens=n_new,
                min_new_tokens=n_new,
                do_sample=False,
                pad_token_id=0,
                attention_mask=torch.ones_like(prompt),
            )
        out["hf"] = g[0, prompt.shape[1] :].tolist()

    # The weight-reading bound: one token's matrix-vector products over every weight matrix
    # (all blocks' projections and the tied head), with nothing else. No decoder can beat it.
    mats = [m.weight.detach() for m in ours.modules() if type(m).__name__ == "Linear"]
    mats.append(ours.wte.weight.detach().t().contiguous())
    xs = {w.shape[0]: torch.randn(1, w.shape[0]) for w in mats}

    def weight_pass():
        with torch.inference_mode():
            for _ in range(20):
                for w in mats:
                    xs[w.shape[0]] @ w

    t = interleaved({"ours": ours_decode, "hf": hf_decode, "bound": weight_pass}, R)
    bound = 20 / t["bound"]
    same = out["ours"] == out["hf"]
    results["decode"] = {
        "ours_tok_s": n_new / t["ours"],
        "hf_tok_s": n_new / t["hf"],
        "weight_bound_tok_s": bound,
        "identical_tokens": same,
    }
    rows.append(
        [
            "Weight-reading bound tok/s (matrix-vector products only)",
            f"{bound:.1f}",
            "",
            f"ours {n_new / t['ours'] / bound:.0%}, HF {n_new / t['hf'] / bound:.0%} of it",
            "",
        ]
    )
    rows.append(
        [
            f"Decode tok/s (B=1, prompt 32, {n_new} new, KV cache)",
            f"{n_new / t['ours']:.1f}",
            f"{n_new / t['hf']:.1f}",
            f"{t['hf'] / t['ours']:.2f}x",
            "ids identical" if same else "ids DIFFER",
        ]
    )

    if args.decode_only:
        print_table(
            f"GPT-2 124M decode, random weights, fp32 ({machine()}; medians of {R}; "
            f"load {os.getloadavg()[0]:.1f})",
            ["Benchmark", "Ours", "HF transformers", "Ratio", "Note"],
            rows,
        )
        results["load_1min"] = os.getloadavg()[0]
        print(f"\nwrote {save('model-decode', results)}")
        return

    # Prefill: the next-token distribution after 512 tokens, as generation computes it.
    x512 = torch.randint(0, 50257, (1, 512))

    def ours_prefill():
        with torch.inference_mode():
            ours(x512, ours.new_cache(1), last_only=True)

    def hf_prefill():
        with torch.inference_mode():
            hf(x512, use_cache=True, logits_to_keep=1)

    def ours_full():
        with torch.inference_mode():
            ours(x512)

    def hf_full():
        with torch.inference_mode():
            hf(x512, use_cache=False)

    t = interleaved(
        {"ours": ours_prefill, "hf": hf_prefill, "ours_full": ours_full, "hf_full": hf_full}, R
    )
    results["prefill_512"] = {k + "_ms": v * 1000 for k, v in t.items()}
    rows.append(
        [
            "Prefill 512 tokens, last-position logits (ms)",
            f"{t['ours'] * 1000:.0f}",
            f"{t['hf'] * 1000:.0f}",
            f"{t['ours'] / t['hf']:.2f}x time",
            "as generate() does it",
        ]
    )
    rows.append(
        [
            "Forward 512 tokens, all logits (ms)",
            f"{t['ours_full'] * 1000:.0f}",
            f"{t['hf_full'] * 1000:.0f}",
            f"{t['ours_full'] / t['hf_full']:.2f}x time",
            "",
        ]
    )

    # All attention maps for 256 tokens.
    hf_eager = hf_twin(ours, attn="eager")
    x256 = torch.randint(0, 50257, (1, 256))

    def ours_maps():  # what the Attention tab runs: the maps alone, no vocabulary projection
        with torch.inference_mode():
            maps = ours.attention_maps(x256)
        assert len(maps) == 12 and maps[0].shape == (1, 12, 256, 256)

    def hf_maps():  # the same work in transformers: the body alone (GPT2Model), eager
        with torch.inference_mode():
            hf_eager.transformer(x256, output_attentions=True, use_cache=False)

    t = interleaved({"ours": ours_maps, "hf": hf_maps}, R)
    results["attention_maps_256"] = {"ours_ms": t["ours"] * 1000, "hf_eager_ms": t["hf"] * 1000}
    rows.append(
        [
            "All 144 attention maps, 256 tokens, no LM head (ms)",
            f"{t['ours'] * 1000:.0f}",
            f"{t['hf'] * 1000:.0f}",
            f"{t['ours'] / t['hf']:.2f}x time",
            "goal < 500 ms",
        ]
    )

    # Training step: forward + backward + AdamW, B=2, T=256.
    xb = torch.randint(0, 50257, (2, 257))
    inp, tgt = xb[:, :-1], xb[:, 1:]
    ours.train()
    hf.train()
    opt_ours = make_optimizer(ours, lr=1e-4, weight_decay=0.1)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.1)

    def ours_step():
        logits = ours(inp)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), tgt.reshape(-1))
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def hf_step():
        loss = hf(xb, labels=xb).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    t = interleaved({"ours": ours_step, "hf": hf_step}, R)
    tok = inp.numel()
    results["train_step"] = {"ours_tok_s": tok / t["ours"], "hf_tok_s": tok / t["hf"]}
    rows.append(
        [
            "Training tok/s (fwd+bwd+AdamW, B=2, T=256)",
            f"{tok / t['ours']:.0f}",
            f"{tok / t['hf']:.0f}",
            f"{t['hf'] / t['ours']:.2f}x",
            "",
        ]
    )
    ours.eval()
    hf.eval()

    if not args.skip_bf16:
        ours16 = ours.to(torch.bfloat16)
        hf16 = hf.to(torch.bfloat16)
        n16 = min(n_new, 100)
        cfg16 = SamplingConfig(temperature=0, max_new_tokens=n16, stop_at_eot=False)

        def ours_bf16():
            generate_ids(ours16, prompt[0].tolist(), cfg16)

        def hf_bf16():
            with torch.inference_mode():
                hf16.generate(
                    prompt,
                    max_new_tokens=n16,
                    min_new_tokens=n16,
                    do_sample=False,
                    pad_token_id=0,
                    attention_mask=torch.ones_like(prompt),
                )

        t = interleaved({"ours": ours_bf16, "hf": hf_bf16}, R)
        results["decode_bf16"] = {"ours_tok_s": n16 / t["ours"], "hf_tok_s": n16 / t["hf"]}
        rows.append(
            [
                f"bf16 decode tok/s (B=1, {n16} new)",
                f"{n16 / t['ours']:.1f}",
                f"{n16 / t['hf']:.1f}",
                f"{t['hf'] / t['ours']:.2f}x",
                "optional path",
            ]
        )

    print_table(
        f"GPT-2 124M, random weights, fp32 unless noted ({machine()}; medians of {R})",
        ["Benchmark", "Ours", "HF transformers", "Ratio", "Note"],
        rows,
    )
    print(f"\nwrote {save('model', results)}")


if __name__ == "__main__":
    main()
