"""Background training jobs: a queue of `RunSpec`s, each trained in its own process.

    from gpt.jobs import JobManager, Visitor

    with JobManager("jobs") as jobs:
        job_id = jobs.submit({"kind": "classify", "base": "starter", "data": "bundled"})
        jobs.get(job_id).progress          # poll a plain JobStatus
        jobs.cancel(job_id, Visitor("hf:alice"))  # stops within ~2 s; multi-user: owner only
        jobs.resume(job_id)                # continues from the last checkpoint
        jobs.models()                      # finished jobs' models, for gpt.load_model

Six modules; dependencies point down this list, never up:

| module      | owns                                                                         |
|-------------|------------------------------------------------------------------------------|
| `cli`       | `python -m gpt jobs ...`: submit, list, show, cancel, resume, delete         |
| `manager`   | `JobManager`: submit (the one validator), the commands, the queries          |
| `policy`    | `JobPolicy`, `Visitor`: ownership, limits, the disk budget and pruning        |
| `worker`    | the process that trains one attempt of one job and reports its end           |
| `scheduler` | `schedule`, the one scheduler: starts queued jobs, ends dead workers' jobs   |
| `store`     | `jobs.db`, the job lifecycle (`LIFECYCLE`, `transition`), job folders, locks |

Jobs need `flock` (Linux or macOS): a worker's liveness is the lock it holds.
"""

from gpt.jobs.manager import CANCEL_GRACE_S, JobManager, JobModel, JobStatus
from gpt.jobs.policy import (
    ANONYMOUS,
    MAX_EXAMPLES,
    NOBODY,
    JobError,
    JobPolicy,
    NotOwnerError,
    Visitor,
    expected_bytes,
    scrub,
)
from gpt.jobs.scheduler import REPO
from gpt.jobs.store import connect, dir_size, is_worker_alive, retry_db

__all__ = [
    "ANONYMOUS", "CANCEL_GRACE_S", "MAX_EXAMPLES", "NOBODY", "REPO", "JobError", "JobManager",
    "JobModel", "JobPolicy", "JobStatus", "NotOwnerError", "Visitor", "connect", "dir_size",
    "expected_bytes", "is_worker_alive", "retry_db", "scrub",
]  # fmt: skip
