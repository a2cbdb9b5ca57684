"""Nobody's action deletes another visitor's work (issue 20, parts 1, 3 and 4 for jobs).

A shared Space with a tiny disk budget: a finished model of visitor A survives B's submissions
until its retention age; a refused submission deletes nothing; each owner has a share of the
disk; an upload leaves Gradio's cache once its job has copied (or refused) it and goes with its
job; a job model's card names `job:<id>`, never a server path, and shows an upload's file name
only to its owner. Fake jobs (rows and files written here) keep it fast; the scheduler is
switched off, so no worker trains anything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import gpt
from gpt.jobs import JobError, JobManager, JobPolicy, Visitor
from gpt.lab.runs import expected_bytes
from tests.test_disk_budget import fake_job, ids
from tests.test_jobs import classify_spec, files  # noqa: F401 (a fixture)

A, B = Visitor("anon:" + "a" * 16), Visitor("anon:" + "b" * 16)
KB = 1000
DAY = 24 * 3600


@pytest.fixture(autouse=True)
def no_workers(monkeypatch):
    """Queued jobs stay queued: these tests are about the budget, not training."""
    monkeypatch.setattr("gpt.jobs.manager.schedule", lambda *args, **kwargs: None)


def manager(tmp_path: Path, **policy) -> JobManager:
    return JobManager(
        tmp_path / "jobs", policy=JobPolicy(multiuser=True, **policy), background=False
    )


def finished(jobs: JobManager, job_id: str, hours_ago: float) -> None:
    ended = time.time() - hours_ago * 3600
    jobs._execute("UPDATE jobs SET created = ?, finished = ? WHERE id = ?", (ended, ended, job_id))


def test_a_finished_model_survives_others_submissions_until_its_retention_age(tmp_path, files):  # noqa: F811
    spec = classify_spec(files)
    need = expected_bytes(spec) + (files / "sms.tsv").stat().st_size
    # room for one more job only if A's fresh model went: the attack of issue 20
    with manager(tmp_path, disk_quota=need + 50 * KB, retention_s=DAY) as jobs:
        fake_job(jobs, "a-model", "succeeded", A.owner, 60 * KB)
        finished(jobs, "a-model", hours_ago=0.01)  # succeeded a few seconds ago
        for _ in range(3):  # B tries again and again
            with pytest.raises(JobError, match="disk quota exceeded"):
                jobs.submit(spec, B)
        assert ids(jobs) == {"a-model"} and jobs.job_dir("a-model").exists()
        assert (jobs.job_dir("a-model") / "out" / "model" / "weights.bin").is_file()
        assert jobs.last_pruned == []

        finished(jobs, "a-model", hours_ago=25)  # past the Space's retention age: it may go
        job_id = jobs.submit(spec, B)
        assert jobs.last_pruned == ["a-model"] and ids(jobs) == {job_id}
        assert not jobs.job_dir("a-model").exists()


def test_a_visitors_own_old_models_make_room_for_their_new_job(tmp_path, files):  # noqa: F811
    spec = classify_spec(files)
    need = expected_bytes(spec) + (files / "sms.tsv").stat().st_size
    with manager(tmp_path, disk_quota=need + 50 * KB, retention_s=DAY) as jobs:
        fake_job(jobs, "a-model", "succeeded", A.owner, 60 * KB)
        fake_job(jobs, "b-old", "succeeded", B.owner, 60 * KB)
        with pytest.raises(JobError):  # B's own model alone does not free enough: nothing goes
            jobs.submit(spec, B)
        assert ids(jobs) == {"a-model", "b-old"}
        jobs.policy.disk_quota = need + 70 * KB
        job_id = jobs.submit(spec, B)  # B's own old model goes, A's stays
        assert jobs.last_pruned == ["b-old"] and ids(jobs) == {"a-model", job_id}


def test_a_refused_submission_deletes_nothing(tmp_path, files):  # noqa: F811
    spec = classify_spec(files)
    with manager(tmp_path, disk_quota=expected_bytes(spec) // 2) as jobs:
        fake_job(jobs, "b-cancelled", "cancelled", B.owner, KB)
        fake_job(jobs, "b-model", "succeeded", B.owner, KB)
        fake_job(jobs, "a-model", "succeeded", A.owner, KB)
        before = {i: jobs.job_dir(i).exists() for i in ids(jobs)}
        with pytest.raises(JobError, match="disk quota exceeded"):  # would not fit even empty
            jobs.submit(spec, B)
        assert ids(jobs) == {"b-cancelled", "b-model", "a-model"}
        assert (
            {i: jobs.job_dir(i).exists() for i in ids(jobs)}
            == before
            == dict.fromkeys(before, True)
        )
        assert jobs.last_pruned == []


def test_per_owner_budget_refuses_the_owner_over_it_but_not_another(tmp_path, files):  # noqa: F811
    spec = classify_spec(files)
    share = expected_bytes(spec) + 200 * KB
    with manager(tmp_path, owner_quota=share, disk_quota=10 * share) as jobs:
        first = jobs.submit(spec, A)  # queued: its expected bytes are A's
        with pytest.raises(JobError, match="your jobs use .* of your share"):
            jobs.submit(spec, A)
        second = jobs.submit(spec, B)  # B has a share of their own
        assert ids(jobs) == {first, second}
        assert jobs.usage(A.owner) >= expected_bytes(spec)


def test_an_upload_counts_towards_its_owners_share(tmp_path, files):  # noqa: F811
    big = tmp_path / "big.tsv"
    rows = [
        f"{'spam' if i % 3 == 0 else 'ham'}\tmessage number {i} " + "x" * 80 for i in range(3000)
    ]
    big.write_text("\n".join(rows) + "\n", encoding="utf-8")
    spec = classify_spec(files)
    share = expected_bytes(spec) + 100 * KB  # the small file fits, the 250 KB one does not
    with manager(tmp_path, owner_quota=share) as jobs:
        with pytest.raises(JobError, match=r"\+[\d,]+ for this job and its data"):
            jobs.submit({**spec, "data": str(big)}, A)
        assert ids(jobs) == set()
        jobs.submit(spec, A)


def test_deleting_or_pruning_a_job_removes_its_uploaded_data(tmp_path, files):  # noqa: F811
    spec = classify_spec(files)
    with manager(tmp_path, retention_s=DAY) as jobs:
        job_id = jobs.submit(spec, A)
        copy = Path(json.loads(jobs._row(job_id)["spec"])["data"])
        assert copy.is_file() and jobs.job_dir(job_id) in copy.parents
        assert jobs.get(job_id).data == str(copy)  # the row names the job's own copy
        jobs.delete(job_id, A)
        assert not copy.exists() and not jobs.job_dir(job_id).exists()

        pruned = jobs.submit(spec, A)
        jobs._execute("UPDATE jobs SET state = 'cancelled' WHERE id = ?", (pruned,))
        copy = jobs.job_dir(pruned) / "data" / "sms.tsv"
        assert copy.is_file()
        jobs.policy.owner_quota = expected_bytes(spec) + copy.stat().st_size + 10
        jobs.submit(spec, A)  # A's own cancelled job (and its data) makes room
        assert jobs.last_pruned == [pruned] and not copy.exists()


def test_policy_file_for_cards_holds_no_secret(tmp_path):
    with manager(tmp_path, retention_s=DAY) as jobs:
        public = json.loads((jobs.root / "policy.json").read_text())
    assert public == {"multiuser": True, "retention_hours": 24.0}


# --- the Fine-tune tab and the cards ------------------------------------------------------------


def test_an_upload_leaves_gradios_cache_once_copied_or_refused(tmp_path, files, monkeypatch):  # noqa: F811
    pytest.importorskip("gradio")
    from pages import jobs as page

    cache = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))

    def upload(name: str, text: str) -> Path:
        path = cache / f"hash-{name}" / name
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
        return path

    good = upload("my secret sms.tsv", (files / "sms.tsv").read_text(encoding="utf-8"))
    bad = upload("broken.tsv", "not\ta label\n")
    args = ("preset:tiny", "upload")
    settings = ("full", 1, "1e-3", 4, 4, 2)
    with manager(tmp_path) as jobs:
        jobs.policy.max_examples = None
        _, job_id = page.start_job(jobs, "classify", *args, str(good), *settings, A)
        assert not good.exists() and not good.parent.exists()  # copied, then deleted
        assert (jobs.job_dir(job_id) / "data" / good.name).is_file()
        with pytest.raises(Exception, match="broken.tsv"):
            page.start_job(jobs, "classify", *args, str(bad), *settings, A)
        assert not bad.exists()  # refused, then deleted
        outside = tmp_path / "mine.tsv"  # a file outside Gradio's cache is never touched
        outside.write_text("x", encoding="utf-8")
        assert page.discard_upload(str(outside)) is False and outside.exists()


def test_fine_tune_tab_shows_an_uploads_name_only_to_its_owner(tmp_path, files):  # noqa: F811
    pytest.importorskip("gradio")
    from pages.jobs import details, kept_text, limits_text

    with manager(tmp_path, retention_s=DAY, owner_quota=4 * 10**9) as jobs:
        job_id = jobs.submit({**classify_spec(files), "data": str(files / "sms.tsv")}, A)
        status, metrics = jobs.get(job_id), jobs.metrics(job_id)
        mine = details(status, metrics, jobs.job_dir(job_id), mine=True)
        theirs = details(status, metrics, jobs.job_dir(job_id), mine=False)
        assert "sms.tsv" in mine and "sms.tsv" not in theirs and "an uploaded file" in theirs
        jobs._execute("UPDATE jobs SET error = ? WHERE id = ?", ("data/sms.tsv: line 3", job_id))
        status = jobs.get(job_id)
        assert "sms.tsv: line 3" in details(status, metrics, jobs.job_dir(job_id), mine=True)
        theirs = details(status, metrics, jobs.job_dir(job_id), mine=False)
        assert "line 3" in theirs and "sms.tsv" not in theirs
        assert str(tmp_path) not in mine + theirs
        text = limits_text(jobs.policy)
        assert "Kept for 24 h after it finishes, then removed to make room" in text.replace(
            "kept", "Kept"
        )
        assert "4 GB of disk per visitor" in text
        assert "24 h" in kept_text(status, jobs.policy)


def job_model(tmp_path: Path, multiuser: bool = True) -> tuple[Path, str]:
    """A finished job's folder as a worker leaves it (a tiny model, spec.json, metrics.json),
    trained on an upload named "my secret sms.tsv"; (jobs folder, job id)."""
    root, job_id = tmp_path / "jobs", "20261203-120000-abcdef"
    out = root / job_id / "out"
    data = root / job_id / "data" / "my secret sms.tsv"
    data.parent.mkdir(parents=True)
    data.write_text("ham\thi\n", encoding="utf-8")
    cfg = gpt.GPTConfig(vocab_size=300, block_size=64, n_layer=1, n_head=2, n_embd=16)
    record = {"data": {"data": str(data), "train_examples": 40}, "steps": 4}
    gpt.save_checkpoint(out / "model", gpt.GPT(cfg), tokenizer="gpt2", metadata=record)
    spec = {"kind": "lm", "base": "preset:tiny", "data": str(data), "method": "full"}
    (out / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(record), encoding="utf-8")
    policy = {"multiuser": multiuser, "retention_hours": 24 if multiuser else None}
    (root / "policy.json").write_text(json.dumps(policy), encoding="utf-8")
    return root, job_id


def test_a_job_models_card_names_no_server_path_nor_file_for_others(tmp_path):
    pytest.importorskip("gradio")
    from gpt.lab.cards import model_card
    from gpt.lab.registry import ModelRegistry, folder_entry
    from pages.common.models import card_markdown

    root, job_id = job_model(tmp_path)
    reg = ModelRegistry(sources=[])
    entry = folder_entry(f"job:{job_id}", root / job_id / "out" / "model", "job")
    reg.sources = [lambda: [entry]]
    card = model_card(f"job:{job_id}", reg)
    text = card_markdown(card)
    assert f"job:{job_id}" in text and "Loaded from `job:" in text
    assert str(tmp_path) not in text and "/out/model" not in text and "/jobs/" not in text
    assert "secret" not in text and "an uploaded file" in text
    assert "Kept for 24 h after it finishes, then removed to make room." in text
    owners = card_markdown(model_card(f"job:{job_id}", reg, private=True))
    assert "my secret sms.tsv" in owners and str(tmp_path) not in owners


def test_single_user_cards_keep_the_file_name(tmp_path):
    from gpt.lab.cards import model_card
    from gpt.lab.registry import ModelRegistry, folder_entry

    root, job_id = job_model(tmp_path, multiuser=False)
    entry = folder_entry(f"job:{job_id}", root / job_id / "out" / "model", "job")
    card = model_card(f"job:{job_id}", ModelRegistry(sources=[lambda: [entry]]))
    assert card.data.startswith("the file my secret sms.tsv") and card.location == f"job:{job_id}"
    assert "Kept for" not in card.summary
