"""Model cards: what a model is, what it learned from, how it does on held-out data, its limits.

A `ModelCard` is plain data built without loading any weights, from what each kind of model
has on disk:

- starter models: `assets/models/<name>/card.json` (written by `gpt.lab.recipes`);
- GPT-2 sizes: facts from OpenAI's paper (Radford et al., 2019), nothing on disk needed;
- fine-tuning jobs (`job:<id>`): the job's `out/spec.json` and `out/metrics.json`, and what the
  jobs folder's `policy.json` says (multi-user mode, how long finished jobs are kept). A job's
  card names it `job:<id>`, never its folder; in multi-user mode it says "an uploaded file"
  rather than the uploader's file name, which only its owner sees (`private=True`);
- a hub repo (`org/name`, a folder in the hub cache): its hub README's first lines and
  licence, its size, the weights file read and its storage type (`hub_card`);
- any other checkpoint folder: its `card.json` if it has one, else the metadata that
  `gpt.lab.runs.save_final` puts in `config.json`, else only what `config.json` says.

Every field of those files is optional: a missing or malformed one is left out of the card,
never an error. A card file may also carry its own words, which win over derived ones:
`summary` (one line), `data_description` (or `data.description`), `limits` (a list of
sentences, the most important first) and `multi_turn` (an instruct model trained on
conversations, so a chat should send it earlier turns).

>>> card = gpt2_card("gpt2")
>>> card.parameters, card.task
(124439808, 'lm')
>>> card.limits[0]
'Not instruction-tuned: it continues text, it does not follow instructions or answer questions.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt.checkpoint import CheckpointError, read_json
from gpt.config import HUB_IDS, PRESETS
from gpt.lab.registry import ModelEntry, ModelRegistry, RegistryError, default_registry

SMALL_MODEL = 50_000_000  # below this many parameters a model gets the "small model" limit
JOBS_POLICY_FILE = "policy.json"  # in the jobs folder, by gpt.jobs: {multiuser, retention_hours}
UPLOADED = "an uploaded file"  # an upload's name, as visitors other than its owner see it
DOWNLOADED = "a downloaded file"


@dataclass(frozen=True)
class Metric:
    """One held-out number.

    >>> Metric("accuracy", 0.99861, percent=True).text
    '99.9%'
    >>> Metric("perplexity", 2.061).text
    '2.06'
    """

    label: str
    value: float
    percent: bool = False

    @property
    def text(self) -> str:
        if self.percent:
            return f"{self.value * 100:.1f}%"
        if 0 <= self.value <= 1:
            return f"{self.value:.3f}"
        return f"{self.value:.3g}" if abs(self.value) < 100 else f"{self.value:,.1f}"


@dataclass(frozen=True)
class ModelCard:
    """What a person should know before trusting a model; fields that are unknown are None.

    Attributes:
        name: the name in model pickers.
        task: "lm", "classify" or "instruct".
        summary: one line saying what it is.
        source: "starter", "GPT-2", "job" or "checkpoint".
        parameters: parameter count.
        architecture: layers, heads, width, context.
        tokenizer: which tokenizer, and its vocabulary size.
        base: the model it was fine-tuned from.
        data: the training data, in words.
        training: how it was trained (steps, epochs, method, time).
        metrics: held-out results.
        baseline: the same held-out results of the base model before fine-tuning.
        metrics_on: what the held-out results were measured on.
        limits: honest limits, the most important first (the Spam tab shows the first).
        multi_turn: an instruction model trained on conversations (none of ours is).
        location: the folder it loads from, when it has one.
        licence: the licence its hub card declares (hub models only).
        prompt_format: for a chat model, the `gpt.lab.prompts` format it was trained in
            (None: "alpaca", ours).
    """

    name: str
    task: str
    summary: str
    source: str
    parameters: int | None = None
    architecture: str | None = None
    tokenizer: str | None = None
    base: str | None = None
    data: str | None = None
    training: str | None = None
    metrics: tuple[Metric, ...] = ()
    baseline: tuple[Metric, ...] = ()
    metrics_on: str | None = None
    limits: tuple[str, ...] = ()
    multi_turn: bool = False
    location: str | None = None
    licence: str | None = None
    prompt_format: str | None = None


def params_text(n: int) -> str:
    """A parameter count for people.

    >>> params_text(124439808), params_text(4273664), params_text(43904)
    ('124M', '4.3M', '43,904')
    """
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e8:
        return f"{n / 1e6:.0f}M"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n:,}"


# --- reading files, forgivingly -----------------------------------------------------------------


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _int(x: Any) -> int | None:
    n = _num(x)
    return int(n) if n is not None else None


def _text(x: Any) -> str | None:
    return x.strip() if isinstance(x, str) and x.strip() else None


def _base_name(base: Any) -> str | None:
    """A base as people know it: `starter` for `/somewhere/assets/models/starter`, `job:<id>`
    for a job's model folder (`/somewhere/jobs/<id>/out/model`).

    >>> _base_name("/srv/jobs/20260101-x/out/model"), _base_name("/a/models/starter")
    ('job:20260101-x', 'starter')
    """
    base = _text(base)
    if base is None:
        return None
    if "/" not in base and "\\" not in base:
        return base
    parts = Path(base.replace("\\", "/")).parts
    if len(parts) >= 3 and parts[-2:] == ("out", "model"):
        return f"job:{parts[-3]}"
    return parts[-1] if parts else None


# --- GPT-2 ----------------------------------------------------------------------------------------

# Zero-shot results from the GPT-2 paper, table 3 (the paper counts 117M, 345M, 762M, 1542M).
_GPT2_PAPER = {
    "gpt2": ("small", 0.4599, 37.50),
    "gpt2-medium": ("medium", 0.5548, 26.37),
    "gpt2-large": ("large", 0.6012, 22.05),
    "gpt2-xl": ("XL", 0.6324, 17.48),
}
GPT2_LIMITS = (
    "Not instruction-tuned: it continues text, it does not follow instructions or answer "
    "questions.",
    "Can produce false, biased or offensive text: it learned from web pages nobody checked, "
    "and states made-up facts as confidently as true ones.",
    "Knows nothing after its training data was collected (links up to 2017) and is weak "
    "outside English.",
)


def gpt2_card(size: str, location: str | None = None) -> ModelCard:
    """The card of an OpenAI GPT-2 size, from the paper; needs no weights.

    >>> gpt2_card("gpt2-xl").architecture
    'GPT-2, 48 layers, 25 heads, 1600 wide, context 1024'
    """
    if size not in HUB_IDS:
        raise ValueError(f"unknown GPT-2 size {size!r}; expected one of {', '.join(HUB_IDS)}")
    cfg = PRESETS[size]
    label, lambada_acc, wt103_ppl = _GPT2_PAPER[size]
    return ModelCard(
        name=size,
        task="lm",
        summary=f"OpenAI's GPT-2 {label}, released in 2019 ({HUB_IDS[size]} on Hugging Face).",
        source="GPT-2",
        parameters=cfg.n_params(),
        architecture=_architecture(vars(cfg)),
        tokenizer="GPT-2's byte-level BPE, 50,257 tokens",
        data="WebText: about 40 GB of text from some 8 million web pages linked from Reddit "
        "(posts with at least 3 karma), Wikipedia removed; collected by OpenAI, not released.",
        training="Pretrained by OpenAI to predict the next token (Radford et al., 2019, "
        '"Language Models are Unsupervised Multitask Learners").',
        metrics=(
            Metric("LAMBADA accuracy", lambada_acc, percent=True),
            Metric("WikiText-103 perplexity", wt103_ppl),
        ),
        metrics_on="public benchmarks, zero-shot, as reported in table 3 of the GPT-2 paper",
        limits=GPT2_LIMITS,
        location=location,
    )


# --- what the data was ----------------------------------------------------------------------------

_BUNDLED_FILES = {
    "lm": "data/corpus/stories.txt",
    "classify": "data/sms/train.tsv",
    "instruct": "data/instructions/train.json",
}
_BUNDLED = {
    "lm": (
        "{file}: about 2,100 children's stories set in an invented valley, written by this "
        "project's generator (2.2 MB).",
        "Knows only the stories of its own invented valley, nothing of the real world.",
    ),
    "classify": (
        "{file}: {n} SMS-like messages (ham and spam) written by this project's template "
        "generator.",
        "Trained on templated messages from our own generator, not real SMS: its test score "
        "says it learned the generator.",
    ),
    "instruct": (
        "{file}: {n} single-turn Alpaca-style instructions (simple text tasks and facts of the "
        "stories' invented world), written by this project's generator.",
        "Trained on single-turn instructions about its own invented world: it knows nothing "
        "else, and earlier chat turns confuse it.",
    ),
}
_SINGLE_TURN = "Trained on single-turn instructions: earlier chat turns in the prompt confuse it."


def _count(n: int | None, what: str) -> str:
    return f"{n:,} {what}" if n is not None else what


def describe_data(
    task: str, data: dict[str, Any], hide_file: bool = False
) -> tuple[str | None, str | None]:
    """(the training data in words, the limit it implies) from a run's data summary. With
    `hide_file`, a file or URL is "an uploaded file" ("a downloaded file"), never its name.

    >>> describe_data("classify", {"data": "bundled", "train_examples": 2520})[0]
    "data/sms/train.tsv: 2,520 SMS-like messages (ham and spam) written by this project's template generator."
    >>> describe_data("classify", {"data": "/j/1/data/my sms.tsv"}, hide_file=True)
    ('an uploaded file', 'Trained on messages from an uploaded file: trust it only on similar text.')
    """
    from gpt.lab.sources import SOURCES

    name = _text(data.get("data")) or _text(data.get("file"))
    n = _int(data.get("train_examples"))
    words = _text(data.get("description"))
    if name is None:
        return words, None
    norm = name.replace("\\", "/")
    bundled_file = _BUNDLED_FILES.get(task)
    if task in _BUNDLED and (name == "bundled" or (bundled_file and norm.endswith(bundled_file))):
        text, limit = _BUNDLED[task]
        return words or text.format(file=bundled_file, n=_count(n, "").strip() or "the"), limit
    if name in SOURCES:
        text = f"{SOURCES[name].description} (online source `{name}`)"
        if n is not None:
            text += f"; {n:,} used for training"
        if task == "classify":
            limit = (
                f"Trained on {_count(n, 'real SMS')} from the UCI SMS Spam Collection (English, "
                "2011): newer kinds of spam may fool it."
            )
        elif task == "instruct":
            limit = _SINGLE_TURN
        else:
            limit = None
        return words or text, limit
    file = Path(norm).name
    if hide_file:
        file = DOWNLOADED if norm.startswith(("http://", "https://")) else UPLOADED
        norm = ""
    if task == "classify" and "sms" in norm.lower() and "spam" in norm.lower():
        limit = (
            f"Trained on {_count(n, 'real SMS')} from the UCI SMS Spam Collection ({file}): "
            "newer kinds of spam may fool it."
        )
    elif task == "classify":
        limit = f"Trained on {_count(n, 'messages')} from {file}: trust it only on similar text."
    elif task == "instruct":
        limit = _SINGLE_TURN
    else:
        limit = f"Knows only the text of {file}."
    shown = file if hide_file else f"the file {file}"
    return words or shown + (f" ({n:,} training examples)" if n else ""), limit


# --- cards of trained checkpoints -----------------------------------------------------------------

_METRICS = (  # test key, label, shown as a percentage
    ("test_accuracy", "accuracy", True),
    ("test_precision", "precision (spam)", False),
    ("test_recall", "recall (spam)", False),
    ("test_f1", "F1 (spam)", False),
    ("test_macro_f1", "macro F1", False),
    ("test_rouge_l_f1", "ROUGE-L F1", False),
    ("test_token_f1", "token F1", False),
    ("test_exact_match", "exact match", True),
    ("test_ppl", "perplexity", False),
    ("test_loss", "cross-entropy loss", False),
)


def _metrics(test: Any) -> tuple[Metric, ...]:
    test = _dict(test)
    return tuple(
        Metric(label, v, pct)
        for key, label, pct in _METRICS
        if (v := _num(test.get(key))) is not None
    )


def _baseline(record: dict[str, Any]) -> tuple[Metric, ...]:
    """The base model's held-out results before tuning (`untuned_<base>_test` in a card)."""
    for key, value in record.items():
        if re.fullmatch(r"untuned_(.+)_test", key):
            return _metrics(value)
    return ()


def _metrics_on(task: str, record: dict[str, Any]) -> str | None:
    test, data = _dict(record.get("test")), _dict(record.get("data"))
    n = _int(test.get("test_n")) or _int(data.get("test_examples"))
    if task == "classify":
        text = f"{_count(n, 'held-out test messages')}"
        cm = test.get("test_confusion_matrix")
        if (
            isinstance(cm, list)
            and len(cm) == 2
            and all(isinstance(r, list) and len(r) == 2 for r in cm)
        ):
            text += f"; errors: {cm[0][1]} ham called spam, {cm[1][0]} spam missed"
    elif task == "instruct":
        text = f"{_count(n, 'held-out test instructions')}, answers generated greedily"
    else:
        windows = _int(data.get("val_windows"))
        text = f"{_count(windows, 'held-out windows')} of the training text"
    if _text(data.get("data")) == "bundled":
        text += "; made by the same generator as the training data"
    return text if test else None


def _architecture(model: dict[str, Any]) -> str | None:
    keys = ("n_layer", "n_head", "n_embd", "block_size")
    if not all(_int(model.get(k)) for k in keys):
        return None
    n_layer, n_head, n_embd, block = (int(model[k]) for k in keys)
    return f"GPT-2, {n_layer} layers, {n_head} heads, {n_embd} wide, context {block}"


def _training(record: dict[str, Any]) -> str | None:
    spec = _dict(record.get("spec"))
    parts = []
    method = _text(spec.get("method"))
    base = _base_name(record.get("base") or spec.get("base"))
    if method and base:
        parts.append(f"{method.replace('_', ' ')} fine-tuning of {base}")
    epochs, steps = _num(spec.get("epochs")), _int(record.get("steps"))
    if epochs is not None and not spec.get("max_steps"):
        parts.append(f"{epochs:g} epoch{'' if epochs == 1 else 's'}")
    if steps:
        parts.append(f"{steps:,} steps")
    if (tokens := _int(record.get("tokens_seen"))) is not None:
        parts.append(f"{tokens / 1e6:.1f}M tokens seen")
    if (lr := _num(spec.get("lr"))) is not None:
        parts.append(f"learning rate {lr:g}")
    if spec.get("mask_prompt") is True and (record.get("kind") or record.get("task")) == "instruct":
        parts.append("loss on the responses only")
    if (secs := _num(record.get("train_seconds"))) is not None:
        parts.append(f"{secs / 60:.1f} min" if secs >= 90 else f"{secs:.0f} s")
    return ", ".join(parts) + "." if parts else None


def _tokenizer(config: dict[str, Any], record: dict[str, Any]) -> str | None:
    if words := _text(record.get("tokenizer")):
        return words
    vocab = _int(_dict(config.get("model")).get("vocab_size"))
    tok = config.get("tokenizer", "gpt2") if config else None
    if tok == "gpt2":
        return "GPT-2's byte-level BPE, 50,257 tokens"
    if tok:
        return "its own byte-level BPE" + (f", {vocab:,} tokens" if vocab else "")
    return None


def card_from_record(
    name: str,
    task: str,
    record: dict[str, Any],
    source: str,
    summary: str = "",
    config: dict[str, Any] | None = None,
    n_params: int | None = None,
    location: str | None = None,
    hide_file: bool = False,
) -> ModelCard:
    """A card from a run's record (a starter `card.json`, a job's metrics, checkpoint metadata);
    `hide_file`: its data file's name is not shown (`describe_data`).

    >>> c = card_from_record("m", "classify", {"data": {"data": "bundled"}}, "checkpoint")
    >>> c.limits[0].startswith("Trained on templated messages")
    True
    """
    config = config or {}
    data_words, data_limit = describe_data(task, _dict(record.get("data")), hide_file)
    if not hide_file:  # a card file's own words about its data may name the file
        data_words = _text(record.get("data_description")) or data_words
    params = _int(record.get("parameters")) or n_params
    explicit = record.get("limits")
    if isinstance(explicit, str):
        explicit = [explicit]
    limits = [s for s in explicit if _text(s)] if isinstance(explicit, list) else []
    if not limits and data_limit:
        limits.append(data_limit)
    if task == "lm" and source != "GPT-2":
        limits.append("Not instruction-tuned: it continues text, it does not answer questions.")
    if task == "instruct":
        limits.append("Answers are generated word by word: they can be fluent and wrong.")
    if params and params < SMALL_MODEL:
        small = f"Small ({params_text(params)} parameters; GPT-2 small has 124M)"
        if task == "classify":
            limits.append(f"{small}: wording unlike its training data can fool it.")
        else:
            limits.append(f"{small}: it often gets things wrong and repeats itself.")
    head = _dict(config.get("head"))
    arch = _text(record.get("architecture")) or _architecture(_dict(config.get("model")))
    labels = head.get("labels")
    if arch and task == "classify" and isinstance(labels, list) and labels:
        arch += f"; a {len(labels)}-class head: {' / '.join(map(str, labels))}"
    trainable = _int(record.get("trainable_parameters"))
    training = _training(record)
    if training and trainable and params and trainable < params:
        training = training[:-1] + f", {trainable:,} of {params:,} parameters trained."
    return ModelCard(
        name=name,
        task=task,
        summary=_text(record.get("summary")) or _text(record.get("description")) or summary,
        source=source,
        parameters=params,
        architecture=arch,
        tokenizer=_tokenizer(config, record),
        base=_base_name(record.get("base")),
        data=data_words,
        training=training,
        metrics=_metrics(record.get("test")),
        baseline=_baseline(record),
        metrics_on=_metrics_on(task, record),
        limits=tuple(dict.fromkeys(limits)),
        multi_turn=record.get("multi_turn") is True,
        prompt_format=_text(record.get("prompt_format")),
        location=location,
    )


def folder_record(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, config) of a checkpoint folder: `card.json`, else config.json's metadata."""
    folder = Path(folder)
    config = read_json(folder / "config.json", {})
    record = read_json(folder / "card.json", {}) or _dict(config.get("metadata"))
    return record, config


def job_record(model_folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, config) of a job's model folder (`<jobs>/<id>/out/model`): the checkpoint's
    metadata, updated with the run's `out/metrics.json` and `out/spec.json`."""
    record, config = folder_record(model_folder)
    out = Path(model_folder).parent
    metrics = read_json(out / "metrics.json", {})
    keys = ("data", "steps", "train_seconds", "test", "parameters", "trainable_parameters")
    record = {**record, **{k: metrics[k] for k in keys if k in metrics}}
    spec = read_json(out / "spec.json", {})
    if spec:
        record["spec"] = spec
        record.setdefault("base", spec.get("base"))
    return record, config


def jobs_policy(model_folder: str | Path) -> dict[str, Any]:
    """What the jobs folder of a job's model folder (`<jobs>/<id>/out/model`) says of its policy
    (`JOBS_POLICY_FILE`): `multiuser`, `retention_hours`; {} when it says nothing."""
    return _dict(read_json(Path(model_folder).parents[2] / JOBS_POLICY_FILE, {}))


def retention_sentence(hours: Any) -> str | None:
    """How long a visitor's job model is kept, in words; None when it is kept until deleted.

    >>> retention_sentence(24), retention_sentence(0.5), retention_sentence(None)
    ('Kept for 24 h after it finishes, then removed to make room.', 'Kept for 30 min after it finishes, then removed to make room.', None)
    """
    hours = _num(hours)
    if hours is None:
        return None
    age = f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.3g} h"
    return f"Kept for {age} after it finishes, then removed to make room."


# --- hub repos ------------------------------------------------------------------------------------

HUB_LIMITS = (
    "Downloaded from the Hugging Face hub: GPT-2 Lab has not evaluated it; what its card "
    "claims is its authors' word.",
    "Can produce false, biased or offensive text, as GPT-2 can.",
)


def readme_parts(text: str) -> tuple[dict[str, Any], str]:
    r"""(front matter, first lines) of a hub README.md: the YAML between the `---` lines, and
    the first paragraph of prose after it (headings, badges, images, HTML and tables skipped;
    at most 400 characters).

    >>> readme_parts("---\nlicense: mit\n---\n# T\n\n![b](x.svg)\nA small GPT-2.\nIt chats.\n\nMore.")
    ({'license': 'mit'}, 'A small GPT-2. It chats.')
    """
    meta: dict[str, Any] = {}
    body = text
    m = re.match(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", text, re.S)
    if m:
        import yaml

        try:
            loaded = yaml.safe_load(m.group(1))
        except yaml.YAMLError:
            loaded = None
        meta = loaded if isinstance(loaded, dict) else {}
        body = text[m.end():]
    lines: list[str] = []
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            if lines:
                break
            continue
        if line.startswith(("#", "!", "[!", "<", "|", "```", "---", "===")):
            if lines:
                break
            continue
        lines.append(line)
    first = " ".join(lines)
    return meta, (first[:397] + "..." if len(first) > 400 else first)


def _weights_words(folder: Path) -> str | None:
    """"model.safetensors (176 MB, float16)": the weights file a folder loads from."""
    from gpt.checkpoint import CheckpointError, hf_weight_files, stored_dtype

    try:
        files = hf_weight_files(folder)
    except CheckpointError:
        return None
    size = sum(f.stat().st_size for f in files if f.is_file())
    dtype = stored_dtype(files[0])
    shown = files[0].name if len(files) == 1 else f"{len(files)} safetensors shards"
    return f"{shown} ({size / 1e6:,.0f} MB" + (f", {dtype} storage)" if dtype else ")")


def hub_card(name: str, folder: str | Path | None, task: str, config: Any = None,
             n_params: int | None = None) -> ModelCard:
    """The card of a hub repo, from its cached snapshot `folder` (README.md, config.json,
    added_tokens.json, its weights file) without loading weights; with no folder yet (not
    downloaded), what its config says.

    >>> hub_card("org/tiny", None, "lm").summary
    'org/tiny from the Hugging Face hub (GPT-2 architecture); not downloaded yet.'
    """
    from gpt.lab import hub, hubmodels

    folder = Path(folder) if folder is not None else None
    repo = (hub.snapshot_repo(folder) if folder is not None else None) or (
        hub.parse_hub_id(name) or (name, None))[0]
    meta, first = ({}, "")
    small = folder or hub.snapshot_path(*(hub.parse_hub_id(name) or (name, None)))
    if (small / "README.md").is_file():  # fetched with config.json before the weights come
        meta, first = readme_parts((small / "README.md").read_text(encoding="utf-8",
                                                                    errors="replace"))
    curated = hubmodels.curated(repo)
    summary = first or (curated.description if curated else "") or (
        f"{repo} from the Hugging Face hub (GPT-2 architecture)"
        + ("." if folder is not None else "; not downloaded yet.")
    )
    licence = _text(meta.get("license")) or _text(meta.get("license_name"))
    base = meta.get("base_model")
    base = ", ".join(map(str, base)) if isinstance(base, list) else _text(base)
    datasets = meta.get("datasets")
    data = None
    if isinstance(datasets, list) and datasets:
        data = "According to its hub card: " + ", ".join(map(str, datasets[:5])) + "."
    raw = read_json(small / "config.json", {})
    tok = "GPT-2's byte-level BPE, 50,257 tokens"
    if folder is not None:
        added = read_json(folder / "added_tokens.json", {})
        if (folder / "vocab.json").is_file():
            tok = "its own vocab.json + merges.txt (GPT-2's byte-level BPE)"
        if added:
            tok += f", plus {len(added)} added token{'s' * (len(added) > 1)} ({', '.join(list(added)[:3])})"
    if folder is None and not (small / "config.json").is_file():
        config = None  # not read from the repo yet (offline, or no config.json): unknown
    params = n_params or (config.n_params() if config is not None else None)
    arch = _architecture(vars(config)) if config is not None else None
    labels = _dict(raw.get("id2label"))
    if arch and task == "classify" and labels:
        arch += f"; a {len(labels)}-class head: {' / '.join(map(str, labels.values()))}"
    weights = _weights_words(folder) if folder is not None else None
    limits = list(HUB_LIMITS)
    if task == "lm":
        limits.insert(0, "Not instruction-tuned unless its card says so: it continues text.")
    if params and params < SMALL_MODEL:
        limits.append(f"Small ({params_text(params)} parameters): it often gets things wrong.")
    fmt = hubmodels.prompt_format(repo, task) if task == "instruct" else None
    return ModelCard(
        name=name,
        task=task,
        summary=summary,
        source="hub",
        parameters=params,
        architecture=arch,
        tokenizer=tok,
        base=base,
        data=data,
        training=f"Weights read from {weights}." if weights else None,
        limits=tuple(limits),
        location=f"{repo}@{folder.name}" if folder is not None else None,  # its exact commit
        licence=licence,
        prompt_format=fmt,
        multi_turn=fmt == "dialogpt",  # trained on conversations
    )


def card_for_entry(entry: ModelEntry, private: bool = False) -> ModelCard:
    """The card of a registry entry; reads small JSON files only. A job's model is named
    `job:<id>` (never its folder); `private`: the card its owner sees, with its upload's name
    (others, in multi-user mode, see "an uploaded file")."""
    if entry.ref is not None and entry.ref.kind == "gpt2":
        location = entry.location if entry.location != entry.name else None
        return gpt2_card(entry.name, location)
    from gpt.lab import hub

    if (entry.ref is not None and entry.ref.kind == "hub") or hub.snapshot_repo(entry.location):
        config = entry.ref.config if entry.ref is not None else None
        return hub_card(entry.name, entry.location, entry.task, config, entry.n_params)
    hide_file, location = False, entry.location
    if entry.source == "job":
        record, config = job_record(entry.location)
        job_id = entry.name.removeprefix("job:")
        kind = {"lm": "Language model", "classify": "Spam classifier", "instruct": "Chat model"}
        summary = f"{kind.get(entry.task, 'Model')} fine-tuned by job {job_id}."
        policy = jobs_policy(entry.location)
        if kept := retention_sentence(policy.get("retention_hours")):
            summary += f" {kept}"
        source, location = "job", f"job:{job_id}"
        hide_file = policy.get("multiuser") is True and not private
    else:
        record, config = folder_record(entry.location)
        summary = entry.description
        source = "starter" if entry.source == "starter" else "checkpoint"
    return card_from_record(
        entry.name,
        entry.task,
        record,
        source,
        summary=summary,
        config=config,
        n_params=entry.n_params,
        location=location,
        hide_file=hide_file,
    )


def model_card(
    name: str, registry: ModelRegistry | None = None, private: bool = False
) -> ModelCard:
    """The card of a listed model (`RegistryError` when no model has that name); `private`:
    as the model's owner sees it (`card_for_entry`).

    A GPT-2 size that is not listed here (no weights, downloads off) still has a card.
    """
    registry = registry or default_registry()
    if name in HUB_IDS and name not in registry.names():
        return gpt2_card(name)
    if name not in registry.names():
        from gpt.lab import hub
        from gpt.lab.names import resolve

        if hub.parse_hub_id(name) is not None:  # a hub id typed in, not listed (yet)
            try:
                ref = resolve(name, weights=False)
                return hub_card(name, ref.folder, ref.task, ref.config)
            except (CheckpointError, OSError) as e:
                raise RegistryError(f"no card for {name!r}: {e}") from e
    return card_for_entry(registry.entry(name), private)
