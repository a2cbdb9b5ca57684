"""Benchmark: GPT-2 encoding, from-scratch Python encoder vs tiktoken (single thread).

Run: ``python bench/bench_tokenizer.py [--mb 1.0] [--repeats 5] [--json]``.
The text is generated here from a seed (words, numbers, code, whitespace runs, emoji, CJK,
accents). Every run asserts that both encoders give identical ids.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import repeat_times  # noqa: E402
from gpt.tokenizer import Tokenizer, gpt2_tokenizer  # noqa: E402

SYLLABLES = ["ka", "lo", "mi", "tren", "vor", "un", "es", "pa", "ri", "shu", "the", "and", "ing",
             "qu", "ble", "st", "ox", "zen", "ar", "ly"]
ACCENTED = ["café", "naïve", "über", "señor", "façade", "Ålesund", "crème", "e\u0301te\u0301"]
EMOJI = ["😀", "🚀", "👍🏽", "👨\u200d👩\u200d👧", "🇯🇵", "❤️", "🎉", "🐍"]


def varied_text(n_bytes: int, seed: int = 0) -> str:
    """Generate about ``n_bytes`` of UTF-8 text mixing many kinds of content."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    out: list[str] = []
    size = 0
    while size < n_bytes:
        kind = rng.random()
        if kind < 0.55:
            sent = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
            if rng.random() < 0.3:
                sent = sent.capitalize() + rng.choice(["'s", "'re", "'ll", " isn't"])
            chunk = sent + rng.choice([". ", ", ", "! ", "? ", ".\n", ";  "])
        elif kind < 0.65:
            chunk = f"{rng.randint(0, 10**rng.randint(1, 9))} {rng.random():.4f} {rng.randint(1900, 2100)}-0{rng.randint(1, 9)} "
        elif kind < 0.75:
            name = rng.choice(words)
            chunk = (f"def {name}_{rng.randint(0, 99)}(x, y={rng.randint(0, 9)}):\n"
                     f"    return x * {rng.randint(2, 9)} + y  # {rng.choice(words)}\n\n")
        elif kind < 0.80:
            chunk = rng.choice(["  ", "\t\t", "\n\n\n", "    ", " \t \n", "        "]) * rng.randint(1, 3)
        elif kind < 0.87:
            chunk = " ".join(rng.choice(ACCENTED) for _ in range(rng.randint(1, 5))) + " "
        elif kind < 0.93:
            chunk = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 12)))
            chunk += rng.choice(["。", "，", " "])
        else:
            chunk = " ".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4))) + " "
        out.append(chunk)
        size += len(chunk.encode("utf-8"))
    return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=1.0, help="size of the generated text in MB")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="also write bench/results/tokenizer.json")
    args = ap.parse_args()

    text = varied_text(int(args.mb * 1_000_000))
    mb = len(text.encode("utf-8")) / 1e6
    tok = gpt2_tokenizer()
    enc = tok.to_tiktoken()

    expected = enc.encode_ordinary(text)
    fresh = Tokenizer(tok.ranks, tok.special_tokens, tok.pattern, "gpt2")
    assert fresh.encode_ordinary_py(text) == expected, "from-scratch ids differ from tiktoken"

    def cold() -> None:
        Tokenizer(tok.ranks, tok.special_tokens, tok.pattern, "gpt2").encode_ordinary_py(text)

    rows = {
        "tiktoken (1 thread)": repeat_times(lambda: enc.encode_ordinary(text), args.repeats),
        "python, cold cache": repeat_times(cold, args.repeats),
        "python, warm cache": repeat_times(lambda: fresh.encode_ordinary_py(text), args.repeats),
    }
    base = mb / statistics.median(rows["tiktoken (1 thread)"])
    print(f"GPT-2 encode, {mb:.2f} MB of generated text, {len(expected)} tokens, "
          f"median of {args.repeats} (ids identical: yes)\n")
    print("| encoder | median s | MB/s | vs tiktoken |")
    print("|---|---:|---:|---:|")
    results = {}
    for name, times in rows.items():
        med = statistics.median(times)
        print(f"| {name} | {med:.3f} | {mb / med:.2f} | {mb / med / base:.2f}x |")
        results[name] = {"median_s": med, "mb_per_s": mb / med, "ratio_vs_tiktoken": mb / med / base}
    runs = long_runs(tok, enc, args.repeats)
    if args.json:
        out = ROOT / "bench" / "results" / "tokenizer.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        data = {"mb": mb, "tokens": len(expected), "rows": results, "long_runs": runs}
        out.write_text(json.dumps(data, indent=2))


def long_runs(tok: Tokenizer, enc, repeats: int) -> dict:
    """Encode long runs of one letter, of digits and of spaces (tests/test_tokenizer.py checks
    the ids; a quadratic pre-tokenizer or merge loop would take hours here)."""
    text = "a" * 200_000 + " " + "12" * 50_000 + " " * 50_000 + "x"
    assert tok.encode_ordinary_py(text) == enc.encode_ordinary(text), "long runs: ids differ"
    def cold() -> None:  # a fresh encoder each time: no chunk is in its cache yet
        Tokenizer(tok.ranks, tok.special_tokens, tok.pattern, "gpt2").encode_ordinary_py(text)

    rows = {
        "tiktoken (1 thread)": repeat_times(lambda: enc.encode_ordinary(text), repeats),
        "python, cold cache": repeat_times(cold, repeats),
    }
    print(f"\nLong runs: 200,000 x 'a', 50,000 x '12', 50,000 spaces ({len(text):,} characters), "
          f"median of {repeats} (ids identical: yes)\n")
    print("| encoder | median s | vs tiktoken |")
    print("|---|---:|---:|")
    base = statistics.median(rows["tiktoken (1 thread)"])
    out = {}
    for name, times in rows.items():
        med = statistics.median(times)
        print(f"| {name} | {med:.3f} | {base / med:.2f}x |")
        out[name] = {"median_s": med, "ratio_vs_tiktoken": base / med}
    return out


if __name__ == "__main__":
    main()
