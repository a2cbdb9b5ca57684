"""Background training jobs: a queue of `RunSpec`s, each trained in its own process.

    from gpt.jobs import JobManager

    with JobManager("jobs") as jobs:
        job_id = jobs.submit({"kind": "classify", "base": "starter", "data": "bundled"})
        jobs.wait(job_id).state            # 'succeeded'
        jobs.models()                      # finished jobs' models, for gpt.load_model

Four modules, each owning one part (dependencies point down this list, never up):

| module       | owns                                                                          |
|--------------|-------------------------------------------------------------------------------|
| `cli`        | `python -m gpt jobs ...`: submit, list, show, cancel, resume, delete          |
| `worker`     | the process that trains one attempt of one job and reports its end            |
| `manager`    | `JobManager`: validation, limits, disk budget, owners, scheduling, spawning    |
| `store`      | `jobs.db`, the job lifecycle (`LIFECYCLE`, `transition`), job folders, locks  |

Jobs need `flock` (Linux or macOS): a worker's liveness is the lock it holds.
"""

from gpt.jobs.manager import (
    ANONYMOUS,
    CANCEL_GRACE_S,
    REPO,
    JobError,
    JobManager,
    JobModel,
    JobStatus,
    NotOwnerError,
    expected_bytes,
    scrub,
    start_queued,
)
from gpt.jobs.store import (
    DB_RETRY_S,
    ESTIMATE_FILE,
    LIFECYCLE,
    LOCK_NAME,
    LOG_TAIL_LINES,
    RESUMABLE,
    SCHEDULER_LOCK,
    STATES,
    connect,
    dir_size,
    is_worker_alive,
    jobs_usage,
    log_tail,
    record_metric,
    retry_db,
    rewind_metrics,
    scheduler_running,
    take_worker_lock,
    transition,
    worker_holds_lock,
    write_estimate,
)

__all__ = [
    "ANONYMOUS",
    "CANCEL_GRACE_S",
    "DB_RETRY_S",
    "ESTIMATE_FILE",
    "LIFECYCLE",
    "LOCK_NAME",
    "LOG_TAIL_LINES",
    "REPO",
    "RESUMABLE",
    "SCHEDULER_LOCK",
    "STATES",
    "JobError",
    "JobManager",
    "JobModel",
    "JobStatus",
    "NotOwnerError",
    "connect",
    "dir_size",
    "expected_bytes",
    "is_worker_alive",
    "jobs_usage",
    "log_tail",
    "record_metric",
    "retry_db",
    "rewind_metrics",
    "scheduler_running",
    "scrub",
    "start_queued",
    "take_worker_lock",
    "transition",
    "worker_holds_lock",
    "write_estimate",
]
