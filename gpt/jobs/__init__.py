"""Background training jobs: a queue of `RunSpec`s, each trained in its own process.

    from gpt.jobs import JobManager, Visitor

    with JobManager("jobs") as jobs:
        job_id = jobs.submit({"kind": "classify", "base": "starter", "data": "bundled"})
        jobs.get(job_id).progress          # poll a plain JobStatus
        jobs.cancel(job_id, Visitor("hf:alice"))  # stops within ~2 s; multi-user: owner only
        jobs.resume(job_id)                # continues from the last checkpoint
        jobs.models()                      # finished jobs' models, for gpt.load_model

Dependencies point down this list, never up: `cli` (`python -m gpt jobs ...`); `manager`
(`JobManager`: submit, the one validator, the commands and queries); `policy` (`JobPolicy`,
`Visitor`: ownership, limits, the disk budget, pruning); `worker` (the process that trains one
attempt of one job); `scheduler` (the one scheduler: starts queued jobs, ends dead workers'
jobs); `store` (`jobs.db`, the lifecycle, job folders, locks). Jobs need `flock` (Linux or
macOS): a worker's liveness is the lock it holds.
"""

from gpt.jobs.manager import JobManager, JobModel, JobStatus
from gpt.jobs.policy import (
    BASE_TASKS,
    KIND_WORDS,
    NOBODY,
    RANGES,
    JobError,
    JobPolicy,
    NotOwnerError,
    Visitor,
    a_job,
)
from gpt.jobs.scheduler import REPO
from gpt.jobs.store import connect, dir_size, retry_db

__all__ = [
    "BASE_TASKS", "KIND_WORDS", "NOBODY", "RANGES", "REPO", "JobError", "JobManager", "JobModel",
    "JobPolicy", "JobStatus", "NotOwnerError", "Visitor", "a_job", "connect", "dir_size",
    "retry_db",
]  # fmt: skip
