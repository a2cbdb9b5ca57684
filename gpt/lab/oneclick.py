"""One click to a real GPT-2 model: fine-tuning jobs sized for a 2-core CPU.

Each `OneClick` is a ready `RunSpec` on GPT-2 124M and an online data source, with the time it
took on the project's 2-core machines (`bench/bench_finetune.py`), said before the job's own
estimate for this machine arrives. The Spam and Chat tabs start them with one button; so can
the CLI (`python -m gpt jobs submit --spec ...`) or any code:

    from gpt.jobs import JobManager
    job_id = JobManager("jobs").submit(ONE_CLICK["gpt2-spam"].spec)

`why_not(one)` says, without touching the network, why one cannot start here (offline, or GPT-2
neither cached nor downloadable), or None.

>>> ONE_CLICK["gpt2-spam"].spec.base, ONE_CLICK["gpt2-spam"].spec.method
('gpt2', 'last_blocks')
>>> ONE_CLICK["gpt2-chat"].spec.kind, ONE_CLICK["gpt2-chat"].spec.data
('instruct', 'instruction-data')
"""

from __future__ import annotations

from dataclasses import dataclass

from gpt.lab import hub
from gpt.lab.registry import default_registry
from gpt.lab.runs import RunSpec
from gpt.lab.sources import SOURCES, availability


@dataclass(frozen=True)
class OneClick:
    """A one-click fine-tune.

    Attributes:
        name: key in `ONE_CLICK`.
        title: the button's text.
        spec: what the job trains.
        minutes: wall time measured on 2 CPU cores (download of weights and data not included).
        about: one line for people: what it trains, on what, how.
    """

    name: str
    title: str
    spec: RunSpec
    minutes: float
    about: str


ONE_CLICK: dict[str, OneClick] = {
    "gpt2-spam": OneClick(
        name="gpt2-spam",
        title="Fine-tune GPT-2 on the SMS Spam Collection",
        # The LLMs-from-scratch recipe (chapter 6): balanced classes, the last block + final
        # LayerNorm + a 2-class head, lr 5e-5. The frozen trunk runs once per message (its output
        # is cached), so five epochs cost little more than one; the prefix term makes the Spam
        # tab's per-token trace rise where the spam starts.
        spec=RunSpec(
            kind="classify",
            base="gpt2",
            data="sms-spam",
            method="last_blocks",
            last_n_blocks=1,
            balance=True,
            epochs=5,
            lr=5e-5,
            batch_size=8,
            eval_every=50,
            prefix_weight=0.5,
            save_dtype="bfloat16",
        ),
        minutes=2,  # 47 s for 3 epochs over 2,000 messages (bench/bench_finetune.py); ~1,050 here
        about=(
            "GPT-2 124M, last block + final LayerNorm + a spam/ham head, 5 epochs on the UCI SMS "
            "Spam Collection (balanced, 70% train), as in LLMs-from-scratch chapter 6"
        ),
    ),
    "gpt2-chat": OneClick(
        name="gpt2-chat",
        title="Instruction-tune GPT-2",
        # LoRA on every projection (rank 8), merged at the end: the trunk cannot be cached, so
        # this is the slow one; 2 epochs over the 1,100 LLMs-from-scratch instructions (85% train),
        # as chapter 7 does. bench/bench_finetune.py projects 4.5-5.7 min on 2 cores with bf16
        # autocast (CPUs with native bf16) and 8.6 min in float32 (9.2 min before stop 26).
        spec=RunSpec(
            kind="instruct",
            base="gpt2",
            data="instruction-data",
            method="lora",
            lora_rank=8,
            lora_alpha=16.0,
            epochs=2,
            lr=3e-4,
            batch_size=8,
            eval_every=50,
            eval_samples=20,
            save_dtype="bfloat16",
        ),
        minutes=5,
        about=(
            "GPT-2 124M with LoRA adapters (rank 8), 2 epochs on the 1,100 Alpaca-style "
            "instructions of LLMs-from-scratch chapter 7, prompt masked"
        ),
    ),
}


def why_not(one: OneClick) -> str | None:
    """Why `one` cannot start now ("needs the network: ..."), or None. Never touches the network:
    it reads the hub check's answer (`gpt.lab.hub.status`) and the caches."""
    if one.spec.data in SOURCES and (why := availability(one.spec.data)) is not None:
        return why
    if one.spec.base not in default_registry().names("lm"):  # not local, cached or downloadable
        reason = hub.status().reason or "the Hugging Face hub has not answered yet"
        return f"needs the network to download {one.spec.base}: {reason}"
    return None
