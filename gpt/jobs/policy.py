"""The job policy: who may change a job, how many and how large jobs a visitor may have, and how
the disk budget is kept. A `JobManager` asks its `JobPolicy`; a page only says who asks, as a
`Visitor` (an owner string, and whether they hold the admin token).

- **Ownership** (multi-user mode, a public Space): only a job's owner or an admin may cancel,
  resume or delete it; a job without an owner is the admin's. In single-user mode anyone may.
- **Limits**: jobs waiting (`max_queued`), queued-or-running jobs per owner (`per_visitor`) and
  per client address of anonymous owners (`per_address`), a job's size (`max_examples`).
- **The disk budget**, in all (`disk_quota`) and per owner (`owner_quota`): a job is accepted
  only if the job folders, plus what the accepted jobs should still write (`expected_bytes`),
  plus its data, leave room for it in both. `plan_room` works out what pruning may free
  (`prunable`) before anything is deleted: a refused submission deletes nothing. In multi-user
  mode pruning takes only the requester's own finished jobs, plus anyone's past the retention
  age (`retention_s`): nobody's submission deletes another visitor's fresh work. A running job
  stops at its next checkpoint once the folders pass the budget.

>>> policy = JobPolicy(multiuser=True)
>>> policy.authorize(Visitor("anon:b"), {"id": "j1", "owner": "anon:a"}, "cancel")
Traceback (most recent call last):
...
gpt.jobs.policy.NotOwnerError: job j1 belongs to another visitor; only they (or the admin) can cancel it
>>> policy.authorize(Visitor("anon:a"), {"id": "j1", "owner": "anon:a"}, "cancel")
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpt.jobs.store import ACTIVE
from gpt.lab.recipes import METHOD_WORDS, form_number, tune_defaults
from gpt.lab.runs import RunSpec

ANONYMOUS = "anon:"  # owners without a Hugging Face account (single-user mode prunes theirs)
OWNER_BUDGET_ENV = "GPT2LAB_OWNER_DISK_GB"  # per-owner disk budget (default 4 in multi-user mode)
RETENTION_ENV = "GPT2LAB_RETENTION_HOURS"  # finished jobs older than this may go (default 24 there)
MAX_EXAMPLES = 8_000  # multi-user mode: a job's size cap, steps x batch size
RANGES = {  # a job's numbers, whoever sends them: field -> (its name, lowest, highest, whole)
    "epochs": ("epochs", 0.1, 20, False),
    "lr": ("learning rate", 1e-6, 1e-2, False),
    "batch_size": ("batch size", 1, 64, True),
    "eval_every": ("evaluate every N steps", 1, 10_000, True),
    "max_steps": ("max steps", 0, 100_000, True),
}
KIND_WORDS = {"lm": "language-model", "classify": "classifier", "instruct": "instruction"}
BASE_TASKS = {  # the tasks of the models a job of each kind starts from
    "lm": ("lm", "instruct"), "classify": ("classify", "lm"), "instruct": ("instruct", "lm")
}


def a_job(kind: str) -> str:
    """A job kind in a sentence, with its article: 'an instruction job', 'a classifier job'."""
    name = KIND_WORDS.get(kind, kind)
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name} job"


def _range_hint(key: str, fields: Mapping[str, Any]) -> str:
    """What to enter instead, for a refused number: the recipe's lr for this job, made only
    when one is refused."""
    if key == "max_steps":
        return "; 0 lets the epochs decide"
    if key != "lr":
        return ""
    method = str(fields.get("method", "full"))
    d = tune_defaults(str(fields.get("kind")), method, str(fields.get("base", "starter")))
    words = METHOD_WORDS.get(method, method)
    return f"; try {form_number(d.lr)}, the recipe's for {words} on this base"


class JobError(ValueError):
    """A job request that cannot be done (bad spec or data, unknown job, a limit reached)."""


class NotOwnerError(JobError):
    """In multi-user mode: a visitor tried to change a job that another visitor started."""


@dataclass(frozen=True)
class Visitor:
    """Who asks: `owner` (`hf:alice`, `anon:3f2a...`; None: nobody in particular, as the CLI),
    and, for an anonymous visitor, the client `address` it came from (the per-address share)."""

    owner: str | None = None
    admin: bool = False
    address: str | None = None


NOBODY = Visitor()


@dataclass
class JobPolicy:
    """What a JobManager allows, and to whom (see the module docstring); None: no limit."""

    multiuser: bool = False  # jobs have owners, and only an owner (or an admin) changes theirs
    max_queued: int = 20
    per_visitor: int | None = None  # queued-or-running jobs per owner
    disk_quota: int | None = None  # bytes the job folders may use
    owner_quota: int | None = None  # bytes one owner's job folders (and data) may use
    retention_s: float | None = None  # finished jobs older than this may be pruned by anyone
    max_examples: int | None = None  # a job's most max_steps x batch_size
    per_address: int | None = None  # queued-or-running jobs of anonymous owners per address
    # a spec may name a model folder or a data file on this machine (the CLI); the app's
    # visitors pick what it offers: a listed model, bundled data, a source or their upload
    local_paths: bool = True
    # owner -> the client address its jobs came from, in memory (this process's submissions)
    addresses: dict[str, str] = field(default_factory=dict, repr=False)

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
                "visitor token: reload the page (API clients get one from the /visitor "
                "endpoint and pass it as visitor_token)"
            )
        if visitor.owner and visitor.address:  # remembered for the per-address share
            self.addresses.pop(visitor.owner, None)
            self.addresses[visitor.owner] = visitor.address
            while len(self.addresses) > 10_000:
                self.addresses.pop(next(iter(self.addresses)))
        return visitor.owner

    def most_steps(self, batch_size: int) -> int | None:
        """The most steps a job may take at `batch_size` (None: no cap)."""
        return None if self.max_examples is None else self.max_examples // batch_size

    def numbers(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`fields` with each number of `RANGES` read (a form sends text) and checked, else a
        JobError naming the field and its range. Max steps 0 (or None: a cleared box) lets the
        epochs decide, up to as many steps as `max_examples` allows (`step_cap`).

        >>> JobPolicy(max_examples=800).numbers({"lr": "3e-4", "batch_size": 8.0, "max_steps": 0})
        {'lr': 0.0003, 'batch_size': 8, 'max_steps': None, 'step_cap': 100}
        >>> JobPolicy(max_examples=800).numbers({"batch_size": 16, "max_steps": None})
        {'batch_size': 16, 'max_steps': None, 'step_cap': 50}
        >>> JobPolicy().numbers({"max_steps": 0})
        {'max_steps': None}
        >>> JobPolicy().numbers({"kind": "classify", "method": "lora", "lr": 0.5})
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpt.jobs.policy.JobError: learning rate must be between 1e-6 and 0.01, not 0.5; try 1e-3, ...
        """
        out = dict(fields)
        if "max_steps" in out and out["max_steps"] is None:  # a cleared box: as 0
            out["max_steps"] = 0
        for key, (name, lo, hi, whole) in RANGES.items():
            if key not in out:
                continue
            value = out[key]
            span = f"between {form_number(lo)} and {form_number(hi)}"  # as the form's notes say
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise JobError(
                    f"{name} must be a number {span}, not {value!r}{_range_hint(key, out)}"
                ) from None
            said = form_number(x) if len(str(value)) > 16 else value  # 1e+308, not 309 digits
            if math.isnan(x) or not lo <= x <= hi:
                raise JobError(f"{name} must be {span}, not {said}{_range_hint(key, out)}")
            if whole and x != int(x):
                raise JobError(f"{name} must be a whole number {span}, not {said}")
            out[key] = int(x) if whole else x
        if out.get("max_steps") == 0:  # the epochs decide, within the size limit
            out["max_steps"] = None
            if (most := self.most_steps(out.get("batch_size", RunSpec.batch_size))) is not None:
                out["step_cap"] = most
        return out

    def check_size(self, spec: RunSpec) -> None:
        """JobError when `spec`'s max_steps x batch_size is over `max_examples` (a job without
        max_steps, as a one-click one, is sized by its epochs)."""
        most = self.most_steps(spec.batch_size)
        if most is not None and spec.max_steps is not None and spec.max_steps > most:
            raise JobError(
                f"max steps {spec.max_steps} × batch size {spec.batch_size} is over this "
                f"Space's limit of {self.max_examples:,} examples per job: at most {most} "
                "steps at this batch size"
            )

    def admit(self, conn: sqlite3.Connection, owner: str | None) -> None:
        """JobError when one more active job of `owner` is over the queue's limit, the owner's,
        or their address's (made-up visitors from one address share one allowance); called in
        the transaction that queues the job."""
        (queued,) = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()
        if queued >= self.max_queued:
            raise JobError(
                f"the job queue is full ({queued} queued, limit {self.max_queued}); wait for a "
                "job to start or cancel one"
            )
        if owner is None or self.per_visitor is None:
            return

        def active(owners: list[str]) -> int:
            marks = ", ".join("?" * len(owners))
            sql = f"SELECT COUNT(*) FROM jobs WHERE owner IN ({marks}) AND state IN {ACTIVE!r}"
            return conn.execute(sql, owners).fetchone()[0]

        if (n := active([owner])) >= self.per_visitor:
            raise JobError(
                f"you already have {n} job{'s' if n != 1 else ''} queued or running (at most "
                f"{self.per_visitor} per visitor here); wait for it to finish or cancel it"
            )
        if self.per_address is None or (address := self.addresses.get(owner)) is None:
            return
        if (n := active([o for o, a in list(self.addresses.items()) if a == address])) >= (
            self.per_address
        ):
            raise JobError(
                f"{n} job{'s' if n != 1 else ''} from your network address "
                f"{'are' if n != 1 else 'is'} already queued or running (at most "
                f"{self.per_address} per address here, shared by everyone behind it); wait "
                "for one to finish, or sign in with Hugging Face to get your own slot"
            )

    def prunable(
        self, conn: sqlite3.Connection, owner: str | None = None, keep: str | None = None
    ) -> list[sqlite3.Row]:
        """What pruning may delete for a request of `owner` (rows: `id`, `state`, `owner`,
        `expired`), jobs without a final model first, then those past the retention age, oldest
        first; never active jobs or `keep` (a job being resumed). Multi-user mode: `owner`'s own
        finished jobs and anyone's past the age; single-user mode: anonymous visitors' too."""
        cutoff = -1.0 if self.retention_s is None else time.time() - self.retention_s
        ended = "COALESCE(finished, created)"
        mine = "(owner IS NOT NULL AND owner = ?)" if self.multiuser else "owner LIKE ?"
        return conn.execute(
            f"SELECT id, state, owner, {ended} < ? AS expired FROM jobs WHERE id != ? AND state "
            f"NOT IN {ACTIVE!r} AND ({mine} OR {ended} < ?) "
            "ORDER BY state = 'succeeded', expired = 0, created, rowid",
            (cutoff, keep or "", owner if self.multiuser else ANONYMOUS + "%", cutoff),
        ).fetchall()

    def plan_room(
        self, candidates: list[Mapping[str, Any]], sizes: Mapping[str, int], used: int,
        extra: int, owner: str | None = None, owner_used: int = 0,
    ) -> tuple[list[str], JobError | None]:  # fmt: skip
        """(ids to prune, None), or ([], the error) when even pruning every candidate (from
        `prunable`, `sizes` their bytes) would not leave room for `extra` more bytes, with the
        jobs using (or going to use) `used` bytes, `owner`'s `owner_used`. Only `owner`'s own
        jobs free room in their share; any candidate frees room in the total.

        >>> policy = JobPolicy(multiuser=True, disk_quota=100, owner_quota=50)
        >>> rows = [{"id": "old", "owner": "anon:b"}, {"id": "mine", "owner": "anon:a"}]
        >>> policy.plan_room(rows, {"old": 30, "mine": 20}, 90, 30, "anon:a", 40)
        (['mine'], None)
        >>> policy.plan_room(rows, {"old": 30, "mine": 20}, 90, 60, "anon:a", 40)[1] is not None
        True
        """
        plan: list[str] = []
        left = {True: owner_used, False: used}  # bytes used: owner's (True), in all (False)
        for mine, quota in (
            (True, None if owner is None else self.owner_quota),
            (False, self.disk_quota),
        ):
            if quota is None:
                continue
            for row in candidates:
                if left[mine] + extra <= quota:
                    break
                if row["id"] not in plan and (row["owner"] == owner or not mine):
                    plan.append(row["id"])
                    left[False] -= sizes[row["id"]]
                    left[True] -= sizes[row["id"]] if row["owner"] == owner else 0
            if left[mine] + extra > quota:
                return [], self._refusal(left[mine], extra, quota, mine)
        return plan, None

    def _refusal(self, used: int, extra: int, quota: int, mine: bool) -> JobError:
        """Why `extra` more bytes do not fit in `quota` (`mine`: the requester's share)."""
        whose, of = ("your jobs use", "of your share of") if mine else ("job outputs use", "of the")
        pruned = "pruning old anonymous jobs"
        if self.multiuser:
            pruned = "removing your own older finished jobs"
        wait = ""
        if self.retention_s and not mine:
            wait = f", or wait: finished jobs are kept for {hours_text(self.retention_s)}"
        return JobError(
            f"disk quota exceeded: {whose} (or running jobs will need) {used:,} bytes"
            + (f" (+{extra:,} for this job and its data)" if extra else "")
            + f" {of} {quota:,} allowed, even after {pruned}; delete finished jobs to make room"
            + wait
        )

    def retention_text(self) -> str | None:
        """How long finished jobs are kept, in a sentence; None when kept until deleted.

        >>> JobPolicy(multiuser=True, retention_s=24 * 3600).retention_text()
        'Kept for 24 h after it finishes, then removed to make room'
        """
        if self.retention_s is None:
            return None
        age = hours_text(self.retention_s)
        return f"Kept for {age} after it finishes, then removed to make room"


def hours_text(seconds: float) -> str:
    """A retention age for people.

    >>> hours_text(86400), hours_text(1800), hours_text(90 * 3600)
    ('24 h', '30 min', '90 h')
    """
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.3g} h"
