"""Benchmark: BPE training, ours (pure Python) vs Hugging Face ``tokenizers`` (Rust).

Run: ``python bench/bench_bpe_train.py [--mb 1.0] [--vocab 4096] [--repeats 3] [--json]``.
Both learn a byte-level BPE of the same vocab size (``<|endoftext|>`` included) on the same
generated text. Our trained ranks are checked against tiktoken on the training text.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_tokenizer import varied_text  # noqa: E402

from bench.common import repeat_times  # noqa: E402
from gpt.tokenizer import Tokenizer  # noqa: E402


def train_ours(text: str, vocab: int) -> Tokenizer:
    return Tokenizer.train(text, vocab)


def train_hf(text: str, vocab: int):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Feed the text in lines, as one would from a file.
    hf.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    return hf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="also write bench/results/bpe_train.json")
    args = ap.parse_args()

    text = varied_text(int(args.mb * 1_000_000), seed=1)
    mb = len(text.encode("utf-8")) / 1e6
    tok = train_ours(text, args.vocab)
    assert tok.n_vocab == args.vocab
    assert tok.encode(text[:200_000], backend="python") == tok.to_tiktoken().encode(text[:200_000])
    hf = train_hf(text, args.vocab)
    hf_size = hf.get_vocab_size()

    ours = repeat_times(lambda: train_ours(text, args.vocab), args.repeats)
    theirs = repeat_times(lambda: train_hf(text, args.vocab), args.repeats)
    m_ours, m_hf = statistics.median(ours), statistics.median(theirs)
    print(f"BPE training, vocab {args.vocab}, {mb:.2f} MB of generated text, "
          f"median of {args.repeats}\n")
    print("| trainer | median s | vocab | vs HF tokenizers |")
    print("|---|---:|---:|---:|")
    print(f"| HF tokenizers (Rust) | {m_hf:.3f} | {hf_size} | 1.00x |")
    print(f"| ours (pure Python) | {m_ours:.3f} | {tok.n_vocab} | {m_ours / m_hf:.2f}x |")
    if args.json:
        out = ROOT / "bench" / "results" / "bpe_train.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"mb": mb, "vocab": args.vocab, "ours_s": m_ours, "hf_s": m_hf,
                                   "ratio": m_ours / m_hf}, indent=2))


if __name__ == "__main__":
    main()
