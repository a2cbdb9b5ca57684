"""The job policy: who may change a job, how many and how large jobs a visitor may have, and how
the disk budget is kept. A `JobManager` asks its `JobPolicy`; a page only says who asks, as a
`Visitor` (an owner string, and whether they hold the admin token).

- **Ownership** (multi-user mode, a public Space): only a job's owner or an admin may cancel,
  resume or delete it; a job without an owner is the admin's. In single-user mode anyone may.
- **Limits**: jobs waiting (`max_queued`), queued-or-running jobs per owner (`per_visitor`), a
  job's size (`max_examples`, steps x batch size).
- **The disk budget** (`disk_quota`): a job is accepted only if the job folders, plus what the
  accepted jobs should still write (`expected_bytes`), leave room for it; finished jobs of
  anonymous visitors are pruned to make room (`prunable`). A running job stops at its next
  checkpoint once the folders pass the budget.

>>> policy = JobPolicy(multiuser=True)
>>> policy.authorize(Visitor("anon:b"), {"id": "j1", "owner": "anon:a"}, "cancel")
Traceback (most recent call last):
...
gpt.jobs.policy.NotOwnerError: job j1 belongs to another visitor; only they (or the admin) can cancel it
>>> policy.authorize(Visitor("anon:a"), {"id": "j1", "owner": "anon:a"}, "cancel")
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt.checkpoint import CheckpointError
from gpt.jobs.store import ACTIVE
from gpt.lab.names import ModelRef, resolve
from gpt.lab.runs import RunSpec

ANONYMOUS = "anon:"  # owners without a Hugging Face account: their old jobs are pruned first
MAX_EXAMPLES = 8_000  # multi-user mode: a job's size cap, steps x batch size
ACTIVE_SQL = "(" + ", ".join(f"'{state}'" for state in ACTIVE) + ")"  # SQL: ('queued', ...)


class JobError(ValueError):
    """A job request that cannot be done (bad spec or data, unknown job, a limit reached)."""


class NotOwnerError(JobError):
    """In multi-user mode: a visitor tried to change a job that another visitor started."""


@dataclass(frozen=True)
class Visitor:
    """Who asks: `owner` (`hf:alice`, `anon:3f2a...`; None: nobody in particular, as the CLI)."""

    owner: str | None = None
    admin: bool = False


NOBODY = Visitor()


def expected_bytes(spec: Mapping[str, Any], ref: ModelRef | None = None) -> int:
    """How much disk a job should need at most: its final model plus the two checkpoints it
    keeps, each the weights and (full fine-tuning) Adam's two moments. Weights are measured in
    the base model's folder (`ref`, else resolved from the spec) or counted from a config.

    >>> expected_bytes({"base": "preset:tiny", "method": "full"}) > 0
    True
    """
    if ref is None:
        try:
            ref = resolve(str(spec.get("base", "")), weights=False)  # no download needed
        except CheckpointError:
            return 0
    if ref.kind in ("preset", "gpt2"):  # counted: a new model, or one maybe not downloaded yet
        weights = ref.config.n_params() * 4
    else:
        weights = sum(p.stat().st_size for p in ref.folder.glob("*.safetensors"))
    per_checkpoint = weights * (3 if spec.get("method", "full") == "full" else 1.2)
    return int(weights + 2 * per_checkpoint)


@dataclass
class JobPolicy:
    """What a JobManager allows, and to whom (see the module docstring); None: no limit."""

    multiuser: bool = False  # jobs have owners, and only an owner (or an admin) changes theirs
    max_queued: int = 20
    per_visitor: int | None = None  # queued-or-running jobs per owner
    disk_quota: int | None = None  # bytes the job folders may use
    max_examples: int | None = None  # a job's most max_steps x batch_size

    def may(self, visitor: Visitor, job: Mapping[str, Any] | Any) -> bool:
        """Whether `visitor` may change `job` (a row, a dict or a JobStatus)."""
        owner = job.owner if hasattr(job, "owner") else job["owner"]
        return not self.multiuser or visitor.admin or (owner is not None and visitor.owner == owner)

    def authorize(self, visitor: Visitor, job: Mapping[str, Any], verb: str) -> None:
        if not self.may(visitor, job):
            raise NotOwnerError(
                f"job {job['id']} belongs to another visitor; only they (or the admin) can "
                f"{verb} it"
            )

    def owner(self, visitor: Visitor) -> str | None:
        """The owner a new job of `visitor` gets (multi-user mode needs one)."""
        if self.multiuser and not visitor.owner:
            raise JobError(
                "every job needs an owner here (multi-user mode), and this request has no "
                "visitor token: reload the page (API clients pass a token of 32+ random "
                "URL-safe characters)"
            )
        return visitor.owner

    def most_steps(self, batch_size: int) -> int | None:
        """The most steps a job may take at `batch_size` (None: no cap)."""
        return None if self.max_examples is None else self.max_examples // batch_size

    def sized(self, spec: RunSpec) -> RunSpec:
        """`spec`, or JobError when its max_steps x batch_size is over `max_examples` (without
        max_steps, as a one-click job, the epochs size it)."""
        most = self.most_steps(spec.batch_size)
        if most is not None and spec.max_steps is not None and spec.max_steps > most:
            raise JobError(
                f"max steps {spec.max_steps} × batch size {spec.batch_size} is over this "
                f"Space's limit of {self.max_examples:,} examples per job: at most {most} "
                "steps at this batch size"
            )
        return spec

    def admit(self, conn: sqlite3.Connection, owner: str | None) -> None:
        """JobError when one more active job of `owner` is over the queue's or the owner's
        limit; called inside the transaction that queues the job."""
        (queued,) = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()
        if queued >= self.max_queued:
            raise JobError(
                f"the job queue is full ({queued} queued, limit {self.max_queued}); wait for a "
                "job to start or cancel one"
            )
        if owner is None or self.per_visitor is None:
            return
        (active,) = conn.execute(
            f"SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN {ACTIVE_SQL}", (owner,)
        ).fetchone()
        if active >= self.per_visitor:
            raise JobError(
                f"you already have {active} job{'s' if active != 1 else ''} queued or running "
                f"(at most {self.per_visitor} per visitor here); wait for it to finish or "
                "cancel it"
            )

    def prunable(self, conn: sqlite3.Connection, keep: str | None = None) -> list[sqlite3.Row]:
        """What pruning may delete, in order: anonymous visitors' finished jobs, those without a
        final model first, oldest first. Never signed-in visitors' jobs, jobs without an owner,
        active jobs or `keep` (a job being resumed)."""
        return conn.execute(
            "SELECT id, state, owner FROM jobs WHERE owner LIKE ? AND id != ? AND state NOT IN "
            f"{ACTIVE_SQL} ORDER BY state = 'succeeded', created, rowid",
            (ANONYMOUS + "%", keep or ""),
        ).fetchall()

    def over_budget(self, used: int, extra: int = 0) -> JobError | None:
        """The error for `extra` more bytes when the jobs use (or will) `used`; None if it fits."""
        if self.disk_quota is None or used + extra <= self.disk_quota:
            return None
        return JobError(
            f"disk quota exceeded: job outputs use (or running jobs will need) {used:,} bytes"
            + (f" (+{extra:,} for this job's data)" if extra else "")
            + f" of the {self.disk_quota:,} allowed, even after pruning old anonymous "
            "jobs; delete finished jobs to make room"
        )


_ABS_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"(),:;]+")
_FRAME = re.compile(r"^\s+(File \"|\S)")  # a traceback's frame line or its source line


def scrub(text: str, job_dir: Path | str | None = None) -> str:
    r"""`text` fit to show a visitor: paths in the job folder made relative to it, other absolute
    paths cut to their file name, traceback frames dropped (the exception's line stays).

    >>> print(scrub("no /srv/jobs/j1/data/up.tsv (see /srv/gpt/data.py)", "/srv/jobs/j1"))
    no data/up.tsv (see …/data.py)
    >>> print(scrub("Traceback (most recent call last):\n  File \"/a/b.py\", line 3, in f\n"
    ...             "    x()\nValueError: bad https://h/x"))
    ValueError: bad https://h/x
    """
    if job_dir is not None:
        folder = str(job_dir).rstrip("/\\")
        text = text.replace(folder + os.sep, "").replace(folder, ".")
    lines, in_tb = [], False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_tb = True
            continue
        if in_tb and _FRAME.match(line):
            continue
        in_tb = False
        lines.append(line)
    text = "\n".join(lines)
    return _ABS_PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)
