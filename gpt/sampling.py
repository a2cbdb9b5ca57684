"""Sampling: turn a model's next-token logits into text, one token at a time.

The model only returns logits; everything about choosing tokens lives here:
temperature (0 means greedy), top-k, top-p (nucleus), repetition penalty, a seed, a token budget,
and stopping at `<|endoftext|>` or at stop strings. Each step can also report the top-N candidate
tokens with their probabilities, which is what the generation tab draws.

>>> import torch
>>> from gpt.config import PRESETS
>>> from gpt.model import GPT
>>> torch.manual_seed(0) and None
>>> model = GPT(PRESETS["tiny"]).eval()
>>> ids = generate_ids(model, [1, 2, 3], SamplingConfig(temperature=0, max_new_tokens=4))
>>> len(ids)
4
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from gpt.config import unknown_fields
from gpt.model import GPT

MAX_TEMPERATURE = 100.0
MIN_TEMPERATURE = 0.01  # below this (and above 0) logits / T overflows float32 for big logits
MAX_CANDIDATES = 50


class SamplingError(ValueError):
    """An invalid sampling argument; the message names it and its valid range."""


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick tokens.

    Attributes:
        temperature: 0 picks the most likely token (greedy); otherwise logits are divided by it,
            in [0.01, 100].
        top_k: keep only the k most likely tokens (0 or None: off).
        top_p: keep the smallest set of tokens whose probability sums to at least top_p (1: off).
        repetition_penalty: > 1 discourages tokens already in the prompt or output (1: off).
        max_new_tokens: how many tokens to generate at most.
        seed: seed of the sampling random generator (None: nondeterministic).
        stop: strings that end generation; the text returned stops before them.
        stop_at_eot: stop when the model emits the end-of-text token.
        n_candidates: report this many top candidates at each step (0: none).
        keep_logits: hand each step's raw logits `(V,)` to the caller (`TokenStep.logits`,
            `StreamEvent.logits`), e.g. to redraw the sampling stages later without the model.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 100
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_at_eot: bool = True
    n_candidates: int = 0
    keep_logits: bool = False

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> SamplingError:
            return SamplingError(f"{name} must be {rule}, got {getattr(self, name)!r}")

        t = self.temperature
        if not _is_number(t) or not (t == 0 or MIN_TEMPERATURE <= t <= MAX_TEMPERATURE):
            raise bad("temperature", f"0 (greedy) or in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}]")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 0):
            raise bad("top_k", "a non-negative integer (0 or None: off)")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise bad("top_p", "in (0, 1]")
        rp = self.repetition_penalty
        if not _is_number(rp) or not 0 < rp <= 10:
            raise bad("repetition_penalty", "in (0, 10] (1: off)")
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 0:
            raise bad("max_new_tokens", "a non-negative integer")
        if self.seed is not None and not _is_int(self.seed):
            raise bad("seed", "an integer or None")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise bad("stop", "a tuple of non-empty strings")
        if not _is_int(self.n_candidates) or not 0 <= self.n_candidates <= MAX_CANDIDATES:
            raise bad("n_candidates", f"an integer in [0, {MAX_CANDIDATES}]")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> SamplingConfig:
        """Build from keyword arguments, naming any unknown one.

        >>> SamplingConfig.from_kwargs(temperature=0.5, stop=["\\n"]).stop
        ('\\n',)
        """
        if unknown := unknown_fields(cls, kwargs):
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise SamplingError(
                f"unknown sampling argument(s): {', '.join(unknown)}; known: {known}"
            )
        if "stop" in kwargs:
            stop = kwargs["stop"]
            kwargs["stop"] = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return cls(**kwargs)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # rejects NaN


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class Candidate:
    """One of the most likely next tokens at a step."""

    token_id: int
    prob: float  # probability in the distribution actually sampled from
    raw_prob: float  # probability under the model alone (temperature 1, no filters)
    text: str = ""


@dataclass(frozen=True)
class TokenStep:
    """One generated token: its id, its probability, and the top candidates at that step."""

    token_id: int
    prob: float
    candidates: tuple[Candidate, ...] = ()
    logits: torch.Tensor | None = None  # the raw logits (V,) when `keep_logits`


@dataclass(frozen=True)
class SamplingStages:
    """Every stage between a step's raw logits and the distribution sampled from, each `(V,)`.

    The order is the one `next_token_distribution` applies: repetition penalty, then ÷ temperature
    (the two commute: both rescale a logit without changing its sign), then the top-k cut, the
    softmax, and the top-p cut. Greedy (temperature 0) skips the division and the cuts and ends
    one-hot on the best token.

    Attributes:
        raw: the model's logits.
        penalized: after the repetition penalty on seen tokens.
        scaled: after ÷ temperature.
        top_k: `scaled` with -inf outside the top k.
        softmax: probabilities before the top-p cut.
        probs: the final probabilities.
    """

    raw: torch.Tensor
    penalized: torch.Tensor
    scaled: torch.Tensor
    top_k: torch.Tensor
    softmax: torch.Tensor
    probs: torch.Tensor


def sampling_stages(
    logits: torch.Tensor, seen: torch.Tensor | None, cfg: SamplingConfig
) -> SamplingStages:
    """The stages from raw logits `(V,)` and a seen-token mask `(V,)` to the sampled distribution.

    >>> st = sampling_stages(torch.tensor([1.0, 3.0, 2.0]), None, SamplingConfig(temperature=2))
    >>> st.scaled.tolist(), [round(x, 3) for x in st.probs.tolist()]
    ([0.5, 1.5, 1.0], [0.186, 0.506, 0.307])
    """
    raw = logits = logits.float()
    logits = penalized = _penalized(logits, seen, cfg)
    if cfg.temperature == 0:
        return SamplingStages(
            raw, penalized, penalized, penalized, torch.softmax(logits, -1), _one_hot(logits)
        )
    logits = scaled = logits / cfg.temperature
    top = None
    if cfg.top_k and cfg.top_k < logits.shape[-1]:
        top = torch.topk(logits, cfg.top_k)  # sorted, best first
        logits = logits.masked_fill(logits < top.values[-1], float("-inf"))
    cut_k = logits
    probs = softmax = torch.softmax(logits, dim=-1)  # max-subtracted: stable for any temperature
    if cfg.top_p < 1.0:
        probs = _top_p(probs, cfg.top_p, top)
    return SamplingStages(raw, penalized, scaled, cut_k, softmax, probs)


def _penalized(
    logits: torch.Tensor, seen: torch.Tensor | None, cfg: SamplingConfig
) -> torch.Tensor:
    if seen is None or cfg.repetition_penalty == 1.0:
        return logits
    # CTRL's penalty: push seen tokens' logits towards "less likely" whatever their sign.
    penalized = torch.where(
        logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty
    )
    return torch.where(seen, penalized, logits)


def _one_hot(logits: torch.Tensor) -> torch.Tensor:
    probs = torch.zeros_like(logits)
    probs[int(torch.argmax(logits))] = 1.0
    return probs


def _top_p(probs: torch.Tensor, top_p: float, top: Any = None) -> torch.Tensor:
    """`probs` cut to the smallest set of best tokens reaching `top_p`, renormalised.

    A token is dropped when the tokens before it (best first) already reach `top_p`; the best
    always stays. Only the best tokens are sorted: the top-k ones when a top-k cut left exactly
    k (`top`), else the best 256, 1024, ... until one of them is dropped (then all after it are
    too), which gives the set a full sort gives, at a fraction of its cost.

    >>> [round(p, 3) for p in _top_p(torch.tensor([0.1, 0.5, 0.4]), 0.8).tolist()]
    [0.0, 0.556, 0.444]
    """
    V = probs.shape[-1]
    if top is not None and int((probs > 0).sum()) == top.indices.shape[-1]:
        order = top.indices  # the k kept tokens, best first (probs follow logits' order)
        sorted_p = probs[order]
        drop_sorted = (torch.cumsum(sorted_p, dim=-1) - sorted_p) >= top_p
    else:
        m = min(V, 256)
        while True:
            sorted_p, order = torch.topk(probs, m)
            drop_sorted = (torch.cumsum(sorted_p, dim=-1) - sorted_p) >= top_p
            if m == V or bool(drop_sorted[-1]):
                break
            m = min(V, 4 * m)
    # every token outside `order` comes after a dropped one (or has probability 0): dropped
    drop = torch.ones(V, dtype=torch.bool, device=probs.device).scatter(0, order, drop_sorted)
    probs = probs.masked_fill(drop, 0.0)
    return probs / probs.sum()


def next_token_distribution(
    logits: torch.Tensor, seen: torch.Tensor | None, cfg: SamplingConfig
) -> torch.Tensor:
    """Probabilities `(V,)` to sample from, given raw logits `(V,)` and a seen-token mask `(V,)`.

    Greedy (temperature 0) returns a one-hot distribution on the best token. The stages in
    between are `sampling_stages`.

    >>> p = next_token_distribution(torch.tensor([1.0, 3.0, 2.0]), None, SamplingConfig(top_k=2))
    >>> [round(x, 3) for x in p.tolist()]
    [0.0, 0.731, 0.269]
    """
    if cfg.temperature == 0:  # no need for the stages' softmax
        return _one_hot(_penalized(logits.float(), seen, cfg))
    return sampling_stages(logits, seen, cfg).probs


def _candidates(raw_logits: torch.Tensor, probs: torch.Tensor, n: int) -> tuple[Candidate, ...]:
    raw = torch.softmax(raw_logits.float(), dim=-1)
    # Rank by the sampling distribution, breaking ties (e.g. zeros after top-k) by raw probability.
    score = probs + raw * 1e-9
    top = torch.topk(score, min(n, score.shape[-1])).indices.tolist()
    return tuple(Candidate(i, float(probs[i]), float(raw[i])) for i in top)


def checked_prompt(model: GPT, prompt_ids: Sequence[int]) -> list[int]:
    """The prompt as a list of ints, or a SamplingError naming what is wrong with it."""
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise SamplingError("the prompt is empty: give at least one token")
    vocab = model.config.vocab_size
    bad = [t for t in prompt if not 0 <= t < vocab]
    if bad:
        raise SamplingError(f"token id {bad[0]} is outside the model's vocabulary [0, {vocab})")
    return prompt


def new_generator(seed: int | None) -> torch.Generator:
    """The CPU random generator of one run: seeded, or seeded at random when `seed` is None."""
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def pick_token(
    raw: torch.Tensor, seen: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator
) -> tuple[int, torch.Tensor]:
    """The next token and the distribution `(V,)` it was drawn from (one-hot when greedy).

    >>> pick_token(torch.tensor([1.0, 3.0, 2.0]), torch.zeros(3, dtype=torch.bool),
    ...            SamplingConfig(temperature=0), new_generator(0))
    (1, tensor([0., 1., 0.]))
    """
    if cfg.temperature == 0:  # the best token: no softmax, one pass over the vocabulary
        token = int(torch.argmax(_penalized(raw.float(), seen, cfg)))
        probs = torch.zeros(raw.shape[-1], dtype=torch.float32, device=raw.device)
        probs[token] = 1.0
        return token, probs
    probs = next_token_distribution(raw, seen, cfg)
    return int(torch.multinomial(probs, 1, generator=generator)), probs


def token_step(
    token: int, probs: torch.Tensor, raw: torch.Tensor, cfg: SamplingConfig
) -> TokenStep:
    """The `TokenStep` of a picked token: its probability, candidates and kept logits as `cfg`
    asks. (Batched decoding calls this in the visitor's own thread, outside the shared step.)"""
    cands = _candidates(raw, probs, cfg.n_candidates) if cfg.n_candidates else ()
    return TokenStep(token, float(probs[token]), cands, raw if cfg.keep_logits else None)


def sample_steps(
    model: GPT,
    prompt_ids: Sequence[int],
    cfg: SamplingConfig,
    eot_id: int | None = None,
) -> Iterator[TokenStep]:
    """Yield generated tokens one by one, using a KV cache.

    Stops after `cfg.max_new_tokens`, or after yielding `eot_id` when `cfg.stop_at_eot`.
    When the context fills up, the cache is rebuilt from the most recent three quarters of the
    context, so generation can run past the context length.
    """
    prompt = checked_prompt(model, prompt_ids)
    if cfg.max_new_tokens == 0:
        return
    block, vocab = model.config.block_size, model.config.vocab_size
    generator = new_generator(cfg.seed)
    seen = torch.zeros(vocab, dtype=torch.bool, device="cpu")  # sampling runs on the CPU
    seen[prompt] = True
    ids = list(prompt[-block:])

    def forward(new_ids: list[int]) -> torch.Tensor:
        # inference_mode is thread-local, and a generator may be resumed on another thread (a
        # web server's worker pool does that): enter it around each call, never across a yield.
        with torch.inference_mode():
            x = torch.tensor([new_ids], device=model.device)
            return model(x, cache, last_only=True)[0, -1].float().cpu()  # (V,)

    with torch.inference_mode():  # room for the whole run, not the whole context
        cache = model.new_cache(1, min(block, len(ids) + cfg.max_new_tokens))
    raw = forward(ids)
    for step in range(cfg.max_new_tokens):
        token, probs = pick_token(raw, seen, cfg, generator)
        yield token_step(token, probs, raw, cfg)
        if (cfg.stop_at_eot and token == eot_id) or step == cfg.max_new_tokens - 1:
            return
        seen[token] = True
        ids.append(token)
        if cache.pos >= block:  # context full: re-encode the recent tail
            ids = ids[-(3 * block) // 4 :]
            cache.reset()
            raw = forward(ids)
        else:
            raw = forward([token])


def generate_ids(
    model: GPT, prompt_ids: Sequence[int], cfg: SamplingConfig, eot_id: int | None = None
) -> list[int]:
    """The generated token ids (without the prompt)."""
    return [s.token_id for s in sample_steps(model, prompt_ids, cfg, eot_id)]


class TextTokenizer(Protocol):
    """What sampling needs from a tokenizer."""

    eot_token: int | None

    def encode(self, text: str) -> list[int]: ...

    def token_bytes(self, token_id: int) -> bytes: ...

    def stream_decoder(self) -> Any: ...  # has push(token_id) -> str and flush() -> str


# What makes a run's tokens: (model, prompt ids, settings, end-of-text id) -> its steps.
Sampler = Callable[[GPT, Sequence[int], SamplingConfig, "int | None"], Iterator[TokenStep]]


@dataclass(frozen=True)
class StreamEvent:
    """One step of `stream`: the new text, the token that produced it, and its candidates.

    `text` may be empty while a multi-byte character or a possible stop string is held back.
    `finish_reason` is set on the last event: "length", "eot" or "stop".
    """

    text: str
    token_id: int
    prob: float
    candidates: tuple[Candidate, ...] = ()
    finish_reason: str | None = None
    logits: torch.Tensor | None = None  # the step's raw logits (V,) when `keep_logits`


def stream(
    model: GPT,
    tokenizer: TextTokenizer,
    prompt: str,
    cfg: SamplingConfig | None = None,
    sampler: Sampler | None = None,
    **sampling: Any,
) -> Iterator[StreamEvent]:
    """Generate text from `prompt`, yielding a `StreamEvent` per token as it is produced.

    The settings are `cfg`, taken as it is, or else keyword arguments naming `SamplingConfig`
    fields. Stop strings are never emitted: text that could be the start of one is held back
    until it is known not to be. `sampler` makes the tokens (default `sample_steps`; a web app
    passes `gpt.batching.Batcher.steps`, which shares decode steps between concurrent runs).
    Closing the stream closes the sampler.
    """
    if cfg is None:
        cfg = SamplingConfig.from_kwargs(**sampling)
    elif sampling:
        raise SamplingError("give a SamplingConfig or keyword arguments, not both")
    if not isinstance(prompt, str):
        raise SamplingError(f"prompt must be a string, got {type(prompt).__name__}")
    prompt_ids = tokenizer.encode(prompt)
    eot = getattr(tokenizer, "eot_token", None)
    steps = (sampler or sample_steps)(model, prompt_ids, cfg, eot)
    with contextlib.closing(steps):
        yield from _events(steps, tokenizer, cfg, eot)


def _events(
    steps: Iterator[TokenStep], tokenizer: TextTokenizer, cfg: SamplingConfig, eot: int | None
) -> Iterator[StreamEvent]:
    decoder = tokenizer.stream_decoder()  # holds back half-finished UTF-8 characters
    pending = ""  # text held back because it may begin a stop string
    longest_stop = max((len(s) for s in cfg.stop), default=0)
    for i, step in enumerate(steps):
        cands = tuple(
            dataclasses.replace(
                c, text=tokenizer.token_bytes(c.token_id).decode("utf-8", "replace")
            )
            for c in step.candidates
        )
        is_eot = cfg.stop_at_eot and step.token_id == eot
        is_last = is_eot or i == cfg.max_new_tokens - 1
        text = pending + ("" if is_eot else decoder.push(step.token_id))
        if is_last:
            text += decoder.flush()
        hit = _find_stop(text, cfg.stop)
        if hit is not None:
            yield StreamEvent(text[:hit], step.token_id, step.prob, cands, "stop", step.logits)
            return
        if is_last:
            reason = "eot" if is_eot else "length"
            yield StreamEvent(text, step.token_id, step.prob, cands, reason, step.logits)
            return
        keep = _held_back(text, cfg.stop, longest_stop)
        emit, pending = text[: len(text) - keep], text[len(text) - keep :]
        yield StreamEvent(emit, step.token_id, step.prob, cands, None, step.logits)


def _find_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: tuple[str, ...], longest: int) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a stop string.

    >>> _held_back("hello wor", ("world",), 5)
    3
    """
    for n in range(min(longest - 1, len(text)), 0, -1):
        suffix = text[-n:]
        if any(s.startswith(suffix) for s in stops):
            return n
    return 0


def generate(model: GPT, tokenizer: TextTokenizer, prompt: str, **sampling: Any) -> str:
    """The completion of `prompt` as one string (see `stream` for the arguments)."""
    return "".join(event.text for event in stream(model, tokenizer, prompt, **sampling))
