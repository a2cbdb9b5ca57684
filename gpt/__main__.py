"""Command line: `python -m gpt tokenize|generate|train|eval|recipes|export|jobs ...`.

    python -m gpt tokenize --text "Hello world"            # tokens and ids, one per line
    python -m gpt tokenize --text "Hello" --explain        # the merges, as JSON
    echo "some text" | python -m gpt tokenize --json       # ids as a JSON list
    python -m gpt generate --model gpt2 --prompt "Once upon a time" --temperature 0.8 --top-k 40
    python -m gpt generate --model distilbert/distilgpt2 --prompt "Hi"   # any GPT-2 hub repo
    python -m gpt chat --prompt "Where does Pip the fox live?"   # starter-chat, Alpaca prompt
    python -m gpt train classify --base starter --data data/sms/train.tsv --out runs/spam
    python -m gpt train classify --resume runs/spam        # continue from its last checkpoint
    python -m gpt eval classify --model starter-spam --data data/sms/test.tsv
    python -m gpt recipes starter                          # retrain the offline starter models
    python -m gpt export starter-spam out/spam             # a Hugging Face transformers folder
    python -m gpt export job:<id> out/m --push my-model    # ... and a private repo of yours
    torchrun --nproc_per_node 2 -m gpt train lm --base preset:mini --tokenizer gpt2 --out runs/lm
    python -m gpt generate --model gpt2 --prompt "Hi" --device cpu   # else CUDA, MPS, then CPU
    python -m gpt jobs submit --kind classify --base starter --data bundled --epochs 1
    python -m gpt jobs list

Errors (a missing model, an invalid argument) print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpt.checkpoint import CheckpointError
from gpt.config import STARTER_DIR
from gpt.device import DEVICE_ENV, DEVICE_NAMES, choose_device, env_device
from gpt.jobs.cli import register as register_jobs
from gpt.lab.names import load_model, load_tokenizer, resolve
from gpt.sampling import SamplingError, stream
from gpt.tokenizer import TokenizerError
from gpt.train.data import DataError, Instruction, format_prompt

CHAT_STOPS = ("### Instruction:", "### Input:", "### Response:")  # the next record


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


def _download_line(p: Any) -> None:
    """Print a GPT-2 download's progress on one stderr line (a gpt.lab.hub.DownloadProgress)."""
    end = "\n" if p.finished else ""
    print(f"\rdownloading {p.line()}\033[K", end=end, file=sys.stderr, flush=True)


MODEL_NAMES = (
    "a GPT-2 size (gpt2, gpt2-medium, gpt2-large, gpt2-xl; downloaded when online), a starter "
    "model (starter, starter-spam, starter-chat: shipped, work offline), job:<id> (a model "
    "fine-tuned in the app or with `jobs submit`), or a model folder"
)
STARTERS = {"lm": "starter", "chat": "starter-chat"}


def default_model(kind: str = "lm", timeout: float = 3.0) -> str:
    """The app's default model for `kind` ("lm" or "chat"): GPT-2 124M when its weights are on
    this machine or the hub answers within `timeout` seconds, else the shipped starter model.
    (Chat defaults to `starter-chat`: GPT-2 itself is not instruction-tuned.)"""
    if kind != "lm":
        return STARTERS[kind]
    from gpt.lab import hub

    try:
        if resolve("gpt2").folder is not None:  # on this machine: no need to ask the hub
            return "gpt2"
    except CheckpointError:  # not here, and the environment says offline
        return STARTERS[kind]
    return "gpt2" if hub.check(timeout=timeout, sizes=False).online else STARTERS[kind]


def _load(name: str | None, kind: str, tokenizer: str | None = None) -> tuple[Any, Any]:
    if name is None:
        name = default_model(kind)
        print(f"(model: {name}, the app's default here; --model picks another)", file=sys.stderr)
    ref = resolve(name, download=True, progress=_download_line)  # shows a download
    model = load_model(ref).to(choose_device())  # --device, else $GPT2LAB_DEVICE, else the best
    return model, load_tokenizer(tokenizer or ref.tokenizer)


def _sampling(args: argparse.Namespace, stop: Sequence[str] = ()) -> dict[str, Any]:
    return dict(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        stop=tuple(args.stop) + tuple(stop),
    )


def cmd_generate(args: argparse.Namespace) -> None:
    model, tok = _load(args.model, "lm", args.tokenizer)
    sys.stdout.write(args.prompt)
    for event in stream(model, tok, args.prompt, **_sampling(args)):
        sys.stdout.write(event.text)
        sys.stdout.flush()
    sys.stdout.write("\n")


def cmd_chat(args: argparse.Namespace) -> None:
    """Answer each instruction (`--prompt`, else one per line of stdin) in the Alpaca prompt the
    chat models were tuned on (`gpt.train.data.format_prompt`), one instruction per prompt."""
    model, tok = _load(args.model, "chat", args.tokenizer)
    asks = [args.prompt] if args.prompt is not None else (line for line in sys.stdin)
    for ask in asks:
        if not ask.strip():
            continue
        prompt = format_prompt(Instruction(ask.strip(), args.input or ""))
        if args.show_prompt:
            print(prompt, end="", file=sys.stderr)
        text = ""
        for event in stream(model, tok, prompt, **_sampling(args, CHAT_STOPS)):
            text += event.text
        for stop in CHAT_STOPS:
            text = text.split(stop)[0]
        print(text.strip() or "(the model ended its reply without any text)", flush=True)


class ProgressBar:
    """A training callback that draws a tqdm bar (step, loss) and prints each evaluation."""

    def __init__(self, desc: str, disable: bool = False) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=desc, unit="step", dynamic_ncols=True, disable=disable)
        self.disable = disable

    def __call__(self, event) -> None:
        if self.disable:
            return
        self.bar.total = event.max_steps
        if event.kind == "step":
            self.bar.n = event.step
            left = "" if event.eta_s is None else f"{event.eta_s / 60:.1f} min"
            self.bar.set_postfix(loss=f"{event.metrics['loss']:.4f}", left=left, refresh=False)
            self.bar.refresh()
        elif event.kind == "resume":
            self.bar.write(f"resumed from {event.metrics['from']} (step {event.metrics['step']})")
            for problem in event.metrics["skipped"]:
                self.bar.write(f"warning: skipped a damaged checkpoint: {problem}")
        elif event.kind == "note":
            self.bar.write(event.metrics["message"])
        elif event.kind == "estimate":
            self.bar.write(f"should take {event.metrics['text']} (training and evaluation)")
        elif event.kind == "eval":
            shown = {k: round(v, 4) for k, v in event.metrics.items() if isinstance(v, float)}
            self.bar.write(f"step {event.step}: {shown}")

    def close(self) -> None:
        self.bar.close()


def cmd_train(args: argparse.Namespace) -> None:
    from gpt.lab.runs import RunSpec, run
    from gpt.train.loop import leave_distributed

    if args.resume:
        folder = Path(args.resume)
        spec_file = folder / "spec.json"
        if not spec_file.is_file():
            raise OSError(f"--resume {folder}: no spec.json there (not a training output folder)")
        spec = RunSpec.from_dict(json.loads(spec_file.read_text(encoding="utf-8")))
        if spec.kind != args.kind:
            raise ValueError(f"--resume {folder} is a {spec.kind} run, not {args.kind}")
        out = folder
    else:
        if not args.out:
            raise ValueError("give --out DIR (or --resume DIR)")
        fields = {k: v for k, v in vars(args).items() if k in _SPEC_ARGS and v is not None}
        if args.kind == "classify" and fields.get("method", "full") != "head":
            from gpt.lab.recipes import with_tune_defaults  # the Fine-tune tab's defaults

            fields = with_tune_defaults({"kind": "classify", **fields})
            fields.pop("kind")
        spec = RunSpec(kind=args.kind, **fields)
        out = Path(args.out)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun, only rank 0 reports
    progress = ProgressBar(f"train {spec.kind}", disable=args.quiet or not main_rank)
    metrics = run(
        spec,
        out,
        callbacks=[progress],
        resume=bool(args.resume),
        estimate=main_rank and not args.quiet,
    )
    progress.close()
    if main_rank:
        test = {k: v for k, v in metrics.get("test", {}).items() if k != "test_samples"}
        summary = {"status": metrics["status"], "steps": metrics["steps"], **test}
        print(json.dumps(summary, default=str))
        print(f"model: {out / 'model'}  metrics: {out / 'metrics.json'}", file=sys.stderr)
    leave_distributed()  # under torchrun: exit now (see its docstring); else nothing


_SPEC_ARGS = {
    "base",
    "data",
    "method",
    "tokenizer",
    "epochs",
    "max_steps",
    "lr",
    "batch_size",
    "grad_accum",
    "warmup_steps",
    "eval_every",
    "patience",
    "context",
    "last_n_blocks",
    "lora_rank",
    "lora_alpha",
    "mask_prompt",
    "dropout",
    "seed",
    "balance",
    "eval_samples",
    "save_dtype",
    "prefix_weight",
    "weigh_classes",
    "checkpoint_minutes",
    "cache_trunk",
    "bucket",
}


def cmd_eval(args: argparse.Namespace) -> None:
    from gpt.lab.runs import evaluate_file

    metrics = evaluate_file(args.kind, args.model, args.data, eval_samples=args.samples)
    samples = metrics.pop("samples", [])
    if args.judge_url:
        from gpt.train.judge import judge_responses

        examples = [
            {k: s[k] for k in ("instruction", "input")} | {"output": s["reference"]}
            for s in samples
        ]
        verdict = judge_responses(
            examples, [s["answer"] for s in samples], url=args.judge_url, model=args.judge_model
        )
        metrics.update({f"judge_{k}": verdict[k] for k in ("mean_score", "n_scored", "n_failed")})
    print(json.dumps(metrics, default=str))


def cmd_recipes(args: argparse.Namespace) -> None:
    from gpt.lab.recipes import starter, starter_spam

    if args.only == "starter-spam":  # re-tune the classifier from the installed starter
        bar = ProgressBar("starter-spam")
        card = starter_spam(Path(args.out), Path(args.work), args.quick, [bar])
        print(json.dumps(card["test"]))
        return
    cards = starter(
        Path(args.out),
        minutes=args.minutes,
        work_dir=Path(args.work),
        quick=args.quick,
        progress=ProgressBar,
        lm_steps=args.lm_steps,
    )
    print(json.dumps({k: v.get("test") if isinstance(v, dict) else v for k, v in cards.items()}))


def cmd_export(args: argparse.Namespace) -> None:
    """Write MODEL as a Hugging Face transformers folder (see `gpt.lab.export`)."""
    from gpt.lab.export import export

    jobs = None
    if args.model.startswith("job:"):
        from gpt.jobs import JobManager
        from gpt.lab.paths import storage_paths

        jobs = JobManager(args.jobs_root or str(storage_paths().jobs_dir), background=False)
    try:
        report = export(args.model, args.out, jobs=jobs)
    finally:
        if jobs is not None:
            jobs.close()
    out = {"folder": str(report.folder), "architecture": report.architecture,
           "files": list(report.files), "bias_residual": report.bias_residual}
    if args.push:
        from huggingface_hub import get_token

        from gpt.lab.export import push
        from gpt.lab.hub import endpoint

        token = os.environ.get("HF_TOKEN") or get_token()
        out["pushed"] = push(report.folder, args.push, token, private=not args.public,
                             endpoint=endpoint())
    print(json.dumps(out))


def _device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        help=f"where the model runs: {', '.join(DEVICE_NAMES)} (default: ${DEVICE_ENV}, "
        "else CUDA, then MPS, then the CPU)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m gpt",
        description="GPT-2 Lab command line.",
        epilog=f"Model names: {MODEL_NAMES}.",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tokenize", help="show how text splits into tokens")
    t.add_argument("--tokenizer", default="gpt2", help="'gpt2', a tokenizer file or a model folder")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--text", help="text to tokenize (default: read stdin)")
    src.add_argument("--file", help="a UTF-8 text file to tokenize")
    t.add_argument("--json", action="store_true", help="print the ids as one JSON list")
    t.add_argument("--explain", action="store_true", help="print pieces and merges as JSON")
    t.set_defaults(func=cmd_tokenize)

    for cmd, kind, temperature, max_new in (("generate", "lm", 0.8, 100), ("chat", "chat", 0.3, 128)):
        g = sub.add_parser(
            cmd,
            help="continue a prompt" if cmd == "generate" else "answer instructions "
            "(the Alpaca prompt the chat models were tuned on)",
            description=f"Models: {MODEL_NAMES}.",
        )
        g.add_argument(
            "--model",
            default=None,
            help="default: the app's (gpt2 when on this machine or online, else starter)"
            if kind == "lm"
            else "default: starter-chat, or an instruction-tuned job:<id>",
        )
        g.add_argument("--tokenizer", default=None, help="default: the model's own")
        if kind == "lm":
            g.add_argument("--prompt", required=True)
        else:
            g.add_argument("--prompt", help="one instruction (default: one per line of stdin)")
            g.add_argument("--input", help="optional context, sent as the prompt's ### Input:")
            g.add_argument("--show-prompt", action="store_true", help="print the prompt to stderr")
        g.add_argument("--temperature", type=float, default=temperature, help="0 = greedy")
        g.add_argument("--top-k", type=int, default=40, help="0 = off")
        g.add_argument("--top-p", type=float, default=1.0)
        g.add_argument("--repetition-penalty", type=float, default=1.0)
        g.add_argument("--max-new-tokens", type=int, default=max_new)
        g.add_argument("--seed", type=int, default=None)
        g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
        _device_option(g)
        g.set_defaults(func=cmd_generate if kind == "lm" else cmd_chat)

    tr = sub.add_parser("train", help="pretrain or fine-tune (lm, classify, instruct)")
    tr.add_argument("kind", choices=["lm", "classify", "instruct"])
    tr.add_argument(
        "--base", help="a model name (see --help), a folder, a hub id org/name[@revision], or "
        "preset:NAME (default: starter)"
    )
    tr.add_argument("--data", help="'bundled', a file, a source name or a URL (default: bundled)")
    tr.add_argument("--out", help="output folder (checkpoints/, model/, metrics.json)")
    tr.add_argument("--resume", help="continue the run in this output folder")
    tr.add_argument("--method", choices=["full", "last_blocks", "head", "lora"])
    tr.add_argument("--tokenizer", help="for preset bases: 'gpt2' or a tokenizer file")
    for name, typ in [
        ("epochs", float),
        ("max-steps", int),
        ("lr", float),
        ("batch-size", int),
        ("grad-accum", int),
        ("warmup-steps", int),
        ("eval-every", int),
        ("patience", int),
        ("context", int),
        ("last-n-blocks", int),
        ("lora-rank", int),
        ("lora-alpha", float),
        ("dropout", float),
        ("seed", int),
        ("eval-samples", int),
        ("prefix-weight", float),
        ("checkpoint-minutes", float),
    ]:
        tr.add_argument(f"--{name}", type=typ)
    tr.add_argument(
        "--no-mask-prompt",
        dest="mask_prompt",
        action="store_false",
        default=None,
        help="instruct: also train on the prompt tokens",
    )
    tr.add_argument(
        "--weigh-classes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="classify: weigh each class's loss by the inverse of its count, so rare spam counts "
        "as much as common ham (default: on, as in the Fine-tune tab; off for --method head)",
    )
    tr.add_argument(
        "--no-trunk-cache",
        dest="cache_trunk",
        action="store_false",
        default=None,
        help="head / last_blocks: run the frozen layers every epoch instead of caching them",
    )
    tr.add_argument(
        "--no-bucket",
        dest="bucket",
        action="store_false",
        default=None,
        help="classify / instruct: batch in random order, not by similar lengths",
    )
    tr.add_argument("--balance", action="store_true", default=None, help="classify: undersample")
    tr.add_argument("--save-dtype", choices=["float32", "bfloat16"])
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    _device_option(tr)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a model on a data file; prints one JSON line")
    ev.add_argument("kind", choices=["lm", "classify", "instruct"])
    ev.add_argument("--model", required=True, help="model name, folder or hub id org/name")
    ev.add_argument("--data", required=True, help="data file (the whole file is evaluated)")
    ev.add_argument("--samples", type=int, default=50, help="instruct: answers to score")
    ev.add_argument(
        "--judge-url",
        help="instruct: also score answers with an LLM served by "
        "Ollama's chat API at this URL (e.g. http://localhost:11434)",
    )
    ev.add_argument("--judge-model", default="llama3", help="the judge's model name")
    _device_option(ev)
    ev.set_defaults(func=cmd_eval)

    rc = sub.add_parser("recipes", help="rebuild the starter models (bundled data + ../shared SMS)")
    rc.add_argument("recipe", choices=["starter"])
    rc.add_argument("--out", default=str(STARTER_DIR), help="where the models go")
    rc.add_argument("--work", default="runs/starter", help="scratch folder for the runs")
    rc.add_argument("--minutes", type=float, default=20.0, help="time budget of the LM")
    rc.add_argument("--lm-steps", type=int, help="fixed LM steps (default: fit --minutes)")
    rc.add_argument("--quick", action="store_true", help="a few steps per stage (smoke test)")
    rc.add_argument(
        "--only",
        choices=["starter-spam"],
        help="rebuild just this model, from the installed starter",
    )
    rc.set_defaults(func=cmd_recipes)

    ex = sub.add_parser(
        "export", help="write a model as a Hugging Face transformers folder (config, weights, "
        "tokenizer, card)"
    )
    ex.add_argument(
        "model", help="a model name (see --help), job:<id>, a model folder or a hub id org/name"
    )
    ex.add_argument("out", help="the folder to write")
    ex.add_argument("--jobs-root", help="the jobs folder, for job:<id> (default: the app's)")
    ex.add_argument(
        "--push", metavar="REPO", help="then upload it to the hub as REPO (name: in your own "
        "namespace), a private repo unless --public; needs HF_TOKEN or `hf auth login`"
    )
    ex.add_argument("--public", action="store_true", help="with --push: a public repo")
    ex.set_defaults(func=cmd_export)

    register_jobs(sub)  # python -m gpt jobs submit|list|show|cancel|resume|delete
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with env_device(getattr(args, "device", None)):  # checked, and seen by training too
            args.func(args)
    except (
        CheckpointError,
        TokenizerError,
        SamplingError,
        DataError,
        OSError,
        ValueError,
        RuntimeError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
