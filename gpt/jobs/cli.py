"""`python -m gpt jobs ...`: background training jobs from the command line.

    python -m gpt jobs submit --kind classify --base starter --data sms.tsv --epochs 2 --wait
    python -m gpt jobs submit --spec job.json          # a JSON object of RunSpec fields
    python -m gpt jobs list
    python -m gpt jobs show JOB_ID [--json] [--log]
    python -m gpt jobs cancel|resume|delete JOB_ID     # resume takes --wait too

`--root` (see `gpt.lab.paths`) is where jobs live. Without `--wait` the job goes on after this
command exits. A refused request prints `error: ...` and exits with 2. `submit` fills what it is
not given from `gpt.lab.recipes.TUNE_DEFAULTS`, as the Fine-tune tab does; `show` says what to
try when a finished job's result is weak (`gpt.lab.recipes.advice`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from typing import Any

from gpt.jobs.manager import JobError, JobManager, JobStatus
from gpt.lab.paths import JOBS_DIR_ENV, storage_paths
from gpt.lab.recipes import advice, with_tune_defaults

# Spec fields with their own flag; any other RunSpec field goes through --set KEY=VALUE.
_FLAGS: list[tuple[str, type, str | None]] = [
    ("kind", str, "lm, classify or instruct"),
    ("base", str, "starter..., a GPT-2 size, preset:NAME, job:<id> or a model folder"),
    ("data", str, "'bundled', a file, a source name or an http(s) URL"),
    ("method", str, "full, last_blocks, head (classify) or lora"),
    ("tokenizer", str, "a tokenizer file (with preset:NAME)"),
    *((name, float, None) for name in ("epochs", "lr")),
    *((name, int, None) for name in ("max_steps", "batch_size", "eval_every", "checkpoint_every")),
]


def register(subparsers: Any) -> None:
    """Add the `jobs` command to `python -m gpt`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        default=str(storage_paths().jobs_dir),
        help=f"the jobs folder (default: ${JOBS_DIR_ENV}, else /data/gpt2lab/jobs when /data is "
        "writable, else ./jobs)",
    )
    sub = subparsers.add_parser("jobs", help="background training jobs").add_subparsers(
        dest="jobs_command", required=True
    )
    cmd = {}
    for fn in (cmd_submit, cmd_list, cmd_show, cmd_cancel, cmd_resume, cmd_delete):
        name = fn.__name__.removeprefix("cmd_")
        cmd[name] = sub.add_parser(name, parents=[common], help=fn.__doc__)
        cmd[name].set_defaults(func=lambda args, fn=fn: _run(fn, args))
        if name not in ("submit", "list"):
            cmd[name].add_argument("job_id")
        if name in ("submit", "resume"):
            cmd[name].add_argument("--wait", action="store_true", help="block until done")
    cmd["submit"].add_argument("--spec", help="a JSON file holding the job's RunSpec fields")
    for name, kind, text in _FLAGS:
        cmd["submit"].add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text)
    cmd["submit"].add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="any other RunSpec field (VALUE read as JSON, else as a string); repeatable",
    )  # fmt: skip
    cmd["show"].add_argument("--json", action="store_true", help="the status and metrics as JSON")
    cmd["show"].add_argument("--log", action="store_true", help="also its log's last 40 lines")


def _run(fn: Any, args: argparse.Namespace) -> None:
    """`fn(jobs, args)`; a refused request prints `error: ...` and exits with status 2."""
    try:
        with JobManager(args.root, background=False) as jobs:
            fn(jobs, args)
    except (JobError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if args.spec:
        with open(args.spec, encoding="utf-8") as f:
            try:
                spec = json.load(f)
            except json.JSONDecodeError as e:
                raise JobError(f"{args.spec}: not valid JSON ({e})") from e
        if not isinstance(spec, dict):
            raise JobError(f"{args.spec}: expected a JSON object of RunSpec fields")
    spec.update({n: getattr(args, n) for n, *_ in _FLAGS if getattr(args, n) is not None})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise JobError(f"--set expects KEY=VALUE, got {item!r}")
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
        spec[key.strip().replace("-", "_")] = value
    if "kind" not in spec:
        raise JobError("a job needs --kind (lm, classify or instruct) or a --spec file")
    return with_tune_defaults(spec)


def _line(s: JobStatus) -> str:
    steps = f"{s.step}/{s.max_steps}" if s.max_steps else str(s.step)
    loss = f"  loss {s.loss:.4f}" if s.loss is not None else ""
    eta = f"  ETA {s.eta_s:.0f}s" if s.eta_s is not None else ""
    if s.state == "queued" and s.estimate:
        eta = f"  should take {s.estimate['text']}"
    return f"{s.id}  {s.state:<11} {s.kind:<8} step {steps} ({s.progress:.0%}){loss}{eta}"


def _wait(jobs: JobManager, job_id: str) -> None:
    tty, last = sys.stderr.isatty(), ""
    try:
        while True:
            if (line := _line(s := jobs.get(job_id))) != last and tty:
                print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
            last = line
            if not s.active:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(f"\n{job_id} goes on in the background; `jobs cancel {job_id}` stops it")
        raise SystemExit(130) from None
    if tty:
        print(file=sys.stderr)
    print(_line(s))
    if s.state != "succeeded":
        print(f"error: job {job_id} {s.state}: {s.error or ''}".rstrip(), file=sys.stderr)
        raise SystemExit(1)
    print(f"model: {s.model_path}")


def _num(v: Any) -> Any:
    """A number as people read it: four significant digits.

    >>> _num(0.8777777777777778), _num(1234.5678), _num(12), _num("ok")
    ('0.8778', '1235', 12, 'ok')
    """
    return f"{v:.4g}" if isinstance(v, float) else v


def cmd_submit(jobs: JobManager, args: argparse.Namespace) -> None:
    """Queue a training job."""
    job_id = jobs.submit(_spec(args))
    print(f"{job_id} {jobs.get(job_id).state}")
    if args.wait:
        _wait(jobs, job_id)


def cmd_list(jobs: JobManager, args: argparse.Namespace) -> None:
    """Every job, newest first."""
    rows = jobs.list()
    print("\n".join(map(_line, rows)) if rows else f"no jobs in {jobs.root}")


def cmd_show(jobs: JobManager, args: argparse.Namespace) -> None:
    """One job's state and metrics."""
    s, metrics = jobs.get(args.job_id), jobs.metrics(args.job_id)
    if args.json:
        print(json.dumps({**dataclasses.asdict(s), "metrics": metrics}, indent=2, default=str))
        return
    print(_line(s))
    for key in ("base", "data", "method", "error", "note", "model_path"):
        if value := getattr(s, key):
            print(f"  {key}: {value}")
    for name, values in [*(("eval", e) for e in metrics["evals"][-3:]), ("test", metrics["test"])]:
        if shown := {k: v for k, v in values.items() if not isinstance(v, (list, dict))}:
            print(f"  {name} " + ", ".join(f"{k}={_num(v)}" for k, v in shown.items()))
    if s.state == "succeeded" and (said := advice(s.spec, metrics)) is not None:
        print(f"  weak result: {said.problem}\n  try: " + "; ".join(said.tries))
    if args.log and (log := jobs.log(args.job_id)):
        print("  log:\n" + "\n".join(f"    {line}" for line in log.splitlines()))


def cmd_cancel(jobs: JobManager, args: argparse.Namespace) -> None:
    """Stop a queued or running job."""
    print(_line(jobs.cancel(args.job_id)))


def cmd_resume(jobs: JobManager, args: argparse.Namespace) -> None:
    """Continue from the last checkpoint."""
    s = jobs.get(jobs.resume(args.job_id))
    print(_line(s) + (f"\n  note: {s.note}" if s.note else ""))
    if args.wait:
        _wait(jobs, args.job_id)


def cmd_delete(jobs: JobManager, args: argparse.Namespace) -> None:
    """Remove a job and its files."""
    jobs.delete(args.job_id)
    print(f"deleted {args.job_id}")
