"""Command line: `python -m gpt tokenize ...` and `python -m gpt generate ...`.

    python -m gpt tokenize --text "Hello world"            # tokens and ids, one per line
    python -m gpt tokenize --text "Hello" --explain        # the merges, as JSON
    echo "some text" | python -m gpt tokenize --json       # ids as a JSON list
    python -m gpt generate --model gpt2 --prompt "Once upon a time" --temperature 0.8 --top-k 40

Errors (a missing model, an invalid argument) print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from gpt.checkpoint import CheckpointError, load_model
from gpt.sampling import SamplingError, stream
from gpt.tokenizer import TokenizerError, load_tokenizer


def _read_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    if args.file is not None:
        with open(args.file, encoding="utf-8") as f:
            return f.read()
    return sys.stdin.read()


def cmd_tokenize(args: argparse.Namespace) -> None:
    tok = load_tokenizer(args.tokenizer)
    text = _read_text(args)
    if args.explain:
        ex = tok.explain(text)
        print(json.dumps(dataclasses.asdict(ex), default=_bytes_to_hex, ensure_ascii=False))
        return
    ids = tok.encode(text)
    if args.json:
        print(json.dumps(ids))
        return
    for i in ids:
        print(f"{i}\t{_show(tok.token_bytes(i))}")
    n_bytes = len(text.encode("utf-8"))
    print(f"# {len(ids)} tokens, {len(text)} characters, {n_bytes} bytes", file=sys.stderr)


def _bytes_to_hex(obj: object) -> object:
    if isinstance(obj, bytes):
        return obj.hex(" ")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _show(data: bytes) -> str:
    """A token's text, or its bytes in hex when it holds only part of a character.

    >>> _show(b" hi"), _show(b"\\xe6\\x97")
    ("' hi'", '<e6 97>')
    """
    try:
        return repr(data.decode("utf-8"))
    except UnicodeDecodeError:
        return f"<{data.hex(' ')}>"


def cmd_generate(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    tok = load_tokenizer(args.tokenizer or args.model)
    sampling = dict(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        stop=tuple(args.stop),
    )
    sys.stdout.write(args.prompt)
    for event in stream(model, tok, args.prompt, **sampling):
        sys.stdout.write(event.text)
        sys.stdout.flush()
    sys.stdout.write("\n")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m gpt", description="GPT-2 Lab command line.")
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tokenize", help="show how text splits into tokens")
    t.add_argument("--tokenizer", default="gpt2", help="'gpt2', a tokenizer file or a model folder")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--text", help="text to tokenize (default: read stdin)")
    src.add_argument("--file", help="a UTF-8 text file to tokenize")
    t.add_argument("--json", action="store_true", help="print the ids as one JSON list")
    t.add_argument("--explain", action="store_true", help="print pieces and merges as JSON")
    t.set_defaults(func=cmd_tokenize)

    g = sub.add_parser("generate", help="continue a prompt")
    g.add_argument("--model", default="gpt2", help="a GPT-2 size (gpt2 ... gpt2-xl) or a folder")
    g.add_argument("--tokenizer", default=None, help="default: the model's own")
    g.add_argument("--prompt", required=True)
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=40, help="0 = off")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--repetition-penalty", type=float, default=1.0)
    g.add_argument("--max-new-tokens", type=int, default=100)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    g.set_defaults(func=cmd_generate)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CheckpointError, TokenizerError, SamplingError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
