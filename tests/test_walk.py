"""gpt/walk.py: the trace of one forward pass against the model itself and against Hugging Face
transformers' GPT-2 (eager attention), each step's source against the file, and the knockouts."""

from __future__ import annotations

import copy
import threading
import warnings

import pytest
import torch

from gpt import walk
from gpt.checkpoint import load_model
from gpt.classifier import GPTClassifier
from gpt.config import PRESETS, GPTConfig
from gpt.model import GPT
from gpt.sampling import SamplingConfig, generate_ids, sampling_stages

# The steps of one block, in order.
BLOCK_KINDS = [
    "ln.mean", "ln.var", "ln.norm", "ln.out",
    "c_attn", "q", "k", "v",
    "attn.scores", "attn.mask", "attn.softmax", "attn.mix", "attn.sdpa", "attn.concat",
    "attn.c_proj", "residual",
    "ln.mean", "ln.var", "ln.norm", "ln.out",
    "mlp.c_fc", "mlp.gelu", "mlp.c_proj", "residual",
]  # fmt: skip


@pytest.fixture(scope="module")
def pair(hf_small):
    """(ours, hf eager, ids): the same random 2-layer GPT-2 in both implementations, 12 tokens."""
    from transformers import GPT2LMHeadModel

    folder, _ = hf_small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
    torch.manual_seed(5)
    return load_model(folder).eval(), hf, torch.randint(0, 1000, (12,))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return GPT(PRESETS["tiny"]).eval()


def hooks_of(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._forward_hooks_always_called)
        for m in model.modules()
    )


def test_trace_logits_are_the_models_own(pair):
    ours, _, ids = pair
    tr = walk.trace(ours, ids)
    with torch.inference_mode():
        assert torch.equal(tr.logits, ours(ids[None])[0])
    assert torch.equal(tr.find("logits").value, tr.logits)
    assert torch.equal(tr.ids, ids)


def test_every_hf_hidden_state_and_attention_map_is_a_step(pair):
    ours, hf, ids = pair
    tr = walk.trace(ours, ids)
    with torch.no_grad():
        out = hf(ids[None], output_hidden_states=True, output_attentions=True)
    values = [s.value for s in tr.steps]

    def found(t: torch.Tensor) -> bool:
        return any(v.shape == t.shape and torch.allclose(v, t, atol=1e-5) for v in values)

    assert len(out.hidden_states) == ours.config.n_layer + 1
    for i, h in enumerate(out.hidden_states):  # the last one is after ln_f
        assert found(h[0]), f"hidden state {i}"
    for i, a in enumerate(out.attentions):
        assert found(a[0]), f"attention map {i}"
        torch.testing.assert_close(tr.find("softmax", block=i).value, a[0], atol=1e-5, rtol=0)
    for i, s in enumerate(tr.residual()):  # embeddings, then each block's output
        if i < len(out.hidden_states) - 1:
            torch.testing.assert_close(s.value, out.hidden_states[i][0], atol=1e-5, rtol=0)


def test_steps_come_in_the_models_order(pair):
    ours, _, ids = pair
    tr = walk.trace(ours, ids)
    L = ours.config.n_layer
    kinds = [s.kind for s in tr.steps]
    assert kinds[:4] == ["ids", "wte", "wpe", "embed"]
    for b in range(L):
        start = tr.block_start(b)
        assert kinds[start : start + len(BLOCK_KINDS)] == BLOCK_KINDS
        assert {s.block for s in tr.steps[start : start + len(BLOCK_KINDS)]} == {b}
    rest = kinds[4 + L * len(BLOCK_KINDS) :]
    assert rest == ["ln.mean", "ln.var", "ln.norm", "ln.out", "logits", "sample.temperature",
                    "sample.softmax"]  # fmt: skip
    assert [s.index for s in tr.steps] == list(range(len(tr)))
    assert all(s.why and s.equation and len(s.axes) == s.value.dim() for s in tr.steps)
    paths = {s.kind: s.path for s in tr.steps}
    assert paths["attn.softmax"] == "explain" and paths["attn.sdpa"] == "fast"
    assert paths["ln.mean"] == "derived" and paths["mlp.gelu"] == "model"


@torch.no_grad()
def test_step_values_fit_together(pair):
    ours, _, ids = pair
    tr = walk.trace(ours, ids)
    T, H = len(ids), ours.config.n_head
    emb = tr.find("embed").value
    torch.testing.assert_close(emb, tr.find("wte").value + tr.find("wpe").value)
    torch.testing.assert_close(tr.find("wte").value, ours.wte.weight[ids])
    ln = ours.h[0].ln_1
    norm = tr.find("ln.norm", block=0).value
    torch.testing.assert_close(norm * ln.weight + ln.bias, tr.find("ln_1", block=0).value)
    torch.testing.assert_close(tr.find("ln.mean", block=0).value, emb.mean(-1))
    scores = tr.find("attn.scores", block=1).value  # (H, T, T)
    assert scores.shape == (H, T, T)
    masked = tr.find("attn.mask", block=1).value
    above = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    assert torch.isinf(masked[:, above]).all() and torch.equal(masked[:, ~above], scores[:, ~above])
    mix = tr.find("attn.mix", block=1).value
    torch.testing.assert_close(mix, tr.find("attn.sdpa", block=1).value, atol=1e-6, rtol=0)
    torch.testing.assert_close(mix, tr.find("softmax", block=1).value @ tr.find("v", block=1).value)
    gelu = tr.find("GELU", block=0).value
    torch.testing.assert_close(
        gelu, torch.nn.functional.gelu(tr.find("c_fc", block=0).value, approximate="tanh")
    )
    norms = tr.residual_norms(3)
    assert norms.shape == (ours.config.n_layer + 1,)
    st = tr.find("softmax", block=0).stats(position=4)
    assert st.shape == (H, T, T) and abs(st.mean - 1 / T) < 1e-6  # each row sums to 1


def test_each_steps_source_is_the_files_lines(pair):
    ours, _, ids = pair
    tr = walk.trace(ours, ids)
    files: dict = {}
    for s in tr.steps:
        if s.source is None:
            assert s.kind == "ids"
            continue
        src = s.source
        lines = files.setdefault(src.path, src.file.read_text().splitlines(keepends=True))
        assert src.text == "".join(lines[src.first_line - 1 : src.last_line]), s.name
        assert src.first_line <= src.last_line
        if src.expr is not None:
            line, col, end_line, end_col = src.expr
            assert src.first_line <= line <= end_line <= src.last_line
    by_kind = {s.kind: s.source for s in reversed(tr.steps) if s.source}  # the first of each
    assert by_kind["attn.softmax"].path == "gpt/model.py"
    assert "softmax" in by_kind["attn.softmax"].text
    assert by_kind["attn.softmax"].function == "CausalSelfAttention.forward"
    assert "scaled_dot_product_attention" in by_kind["attn.sdpa"].text
    assert "gelu" in by_kind["mlp.gelu"].text and "self.ln_1" in by_kind["ln.mean"].text
    assert by_kind["sample.temperature"].path == "gpt/sampling.py"
    assert "temperature" in by_kind["sample.temperature"].text


def test_text_to_ids_and_sampling_stages():
    from gpt.tokenizer import gpt2_tokenizer

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=16)
    model = GPT(cfg).eval()
    tok = gpt2_tokenizer()
    sampling = SamplingConfig(temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.2)
    tr = walk.trace(model, "Hello world, again", tok, sampling=sampling)
    first = tr.steps[0]
    assert first.name == "text → ids" and first.value.tolist() == tok.encode("Hello world, again")
    assert first.source.path == "gpt/tokenizer.py" and "def encode" in first.source.text
    names = [s.name for s in tr.steps if s.path == "sampling"]
    assert names == ["repetition penalty", "÷ temperature", "top-k", "softmax", "top-p"]
    seen = torch.zeros(cfg.vocab_size, dtype=torch.bool)
    seen[tr.ids] = True
    expected = sampling_stages(tr.logits[-1], seen, sampling)
    assert torch.equal(tr.steps[-1].value, expected.probs)
    assert torch.equal(tr.stages(sampling).probs, expected.probs)
    greedy = walk.trace(model, tr.ids, sampling=SamplingConfig(temperature=0))
    assert [s.name for s in greedy.steps if s.path == "sampling"] == ["softmax", "greedy pick"]
    assert greedy.steps[-1].value.sum() == 1


def test_classifier_trace_ends_with_its_head(tiny):
    clf = GPTClassifier(copy.deepcopy(tiny), num_classes=3).eval()
    ids = [4, 8, 15, 16]
    tr = walk.trace(clf, ids)
    with torch.inference_mode():
        assert torch.equal(tr.logits, clf(torch.tensor([ids]))[0])
    assert [s.kind for s in tr.steps[-2:]] == ["class_logits", "class_probs"]
    assert tr.classifier and tr.logits.shape == (3,)
    assert "head" in tr.steps[-2].source.text


def test_lora_models_trace_merged_and_not(tiny):
    from gpt.train.lora import apply_lora, merge_lora

    model = copy.deepcopy(tiny)
    apply_lora(model, rank=2, alpha=4)
    with torch.no_grad():
        for p in model.parameters():
            if p.shape[0] == 2:  # lora_B: make the adapters do something
                p.normal_()
    model.eval()
    ids = [3, 1, 4, 1, 5]
    tr = walk.trace(model, ids)
    with torch.inference_mode():
        assert torch.equal(tr.logits, model(torch.tensor([ids]))[0])
    assert [s.kind for s in tr.steps] == [s.kind for s in walk.trace(tiny, ids).steps]
    merge_lora(model)
    merged = walk.trace(model, ids)
    torch.testing.assert_close(merged.logits, tr.logits, atol=1e-5, rtol=1e-5)


def test_trace_leaves_no_hooks_and_checks_its_input(tiny):
    before = hooks_of(tiny)
    walk.trace(tiny, [1, 2, 3])
    assert hooks_of(tiny) == before == 0
    with pytest.raises(ValueError, match="vocabulary"):
        walk.trace(tiny, [1, 600])
    with pytest.raises(ValueError, match="capped at 4 tokens"):
        walk.trace(tiny, [1, 2, 3, 4, 5], max_tokens=4)
    with pytest.raises(ValueError, match="tokenizer"):
        walk.trace(tiny, "some text")
    assert hooks_of(tiny) == 0


def test_a_trace_records_its_own_thread_only(tiny):
    """Another thread runs the same model in the middle of a trace (while its hooks are on)."""
    ids = [1, 2, 3, 4]
    reference = logits_of(tiny, ids)
    other: dict = {}

    def run_elsewhere(module, args):
        if threading.current_thread() is threading.main_thread() and not other:
            t = threading.Thread(target=lambda: other.setdefault("out", logits_of(tiny, ids)))
            t.start()
            t.join()

    handle = tiny.h[1].register_forward_pre_hook(run_elsewhere)
    try:
        tr = walk.trace(tiny, ids)
    finally:
        handle.remove()
    assert torch.equal(other["out"], reference) and torch.equal(tr.logits, reference)
    assert len(tr) == len(walk.trace(tiny, ids).steps) == 4 + 2 * len(BLOCK_KINDS) + 5 + 2


@pytest.mark.slow
def test_gpt2_124m_step_count_and_memory():
    torch.manual_seed(0)
    model = GPT(PRESETS["gpt2"]).eval()
    tr = walk.trace(model, torch.randint(0, 50257, (64,)))
    assert len(tr) == 4 + 12 * len(BLOCK_KINDS) + 5 + 2 == 299
    assert tr.nbytes < 100e6


# --- knockouts -----------------------------------------------------------------------------------


def logits_of(model, ids) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.as_tensor(ids)[None])[0]


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_restored(model, state, ids, out_before):
    now = model.state_dict()
    assert state.keys() == now.keys()
    assert all(torch.equal(state[k], now[k]) for k in state)
    assert torch.equal(logits_of(model, ids), out_before)
    assert hooks_of(model) == 0


IDS = [7, 3, 11, 42, 5, 9, 100, 2]
ALL_KINDS = [
    ("causal_mask", {}),
    ("causal_mask", {"block": 1}),
    ("positions", {}),
    ("gelu", {}),
    ("gelu", {"block": 0}),
    ("layernorm", {}),
    ("layernorm", {"block": 1, "which": "ln_2"}),
    ("residual", {"block": 0}),
    ("residual", {"block": 1, "which": "mlp"}),
    ("attention", {"block": 1}),
    ("shuffle", {"seed": 3}),
]


@pytest.mark.parametrize(("kind", "where"), ALL_KINDS)
def test_each_knockout_changes_the_output_and_restores_the_model_exactly(tiny, kind, where):
    state, out = snapshot(tiny), logits_of(tiny, IDS)
    with walk.knockout(tiny, kind, **where) as ko:
        assert ko.kind == kind
        assert not torch.equal(logits_of(tiny, IDS), out)
    assert_restored(tiny, state, IDS, out)
    with pytest.raises(RuntimeError, match="boom"), walk.knockout(tiny, kind, **where):
        logits_of(tiny, IDS)
        raise RuntimeError("boom")
    assert_restored(tiny, state, IDS, out)


def test_without_the_mask_a_position_sees_the_future(tiny):
    other = list(IDS)
    other[5] = 99
    assert torch.equal(logits_of(tiny, IDS)[2], logits_of(tiny, other)[2])  # causal: unchanged
    with walk.knockout(tiny, "causal_mask"):
        assert not torch.allclose(logits_of(tiny, IDS)[2], logits_of(tiny, other)[2])
        tr = walk.trace(tiny, IDS)  # the explain path loses its mask too
        assert not torch.isinf(tr.find("attn.mask", block=0).value).any()
        torch.testing.assert_close(tr.logits, logits_of(tiny, IDS), atol=1e-5, rtol=0)
    with walk.knockout(tiny, "causal_mask", block=1):  # block 0 still masked: position 2 of
        tr = walk.trace(tiny, IDS)  # block 0's output is as before
        assert torch.isinf(tr.find("attn.mask", block=0).value).any()
        assert not torch.isinf(tr.find("attn.mask", block=1).value).any()


def test_positions_knockout_equals_a_model_without_wpe(tiny):
    no_wpe = copy.deepcopy(tiny)
    with torch.no_grad():
        no_wpe.wpe.weight.zero_()
    with walk.knockout(tiny, "positions"):
        assert torch.equal(logits_of(tiny, IDS), logits_of(no_wpe, IDS))


def test_knockouts_do_what_they_say_step_by_step(tiny):
    with walk.knockout(tiny, "gelu", block=1):
        tr = walk.trace(tiny, IDS)
    relu = torch.relu(tr.find("c_fc", block=1).value)
    assert torch.equal(tr.find("GELU", block=1).value, relu)
    assert not torch.equal(tr.find("GELU", block=0).value, torch.relu(tr.find("c_fc", block=0).value))

    with walk.knockout(tiny, "layernorm"):
        tr = walk.trace(tiny, IDS)
    assert torch.equal(tr.find("ln_1", block=0).value, tr.find("embed").value)
    assert torch.equal(tr.find("ln_f").value, tr.residual()[-1].value)

    with walk.knockout(tiny, "residual", block=1):
        tr = walk.trace(tiny, IDS)
    assert torch.equal(tr.find("residual", block=1).value, tr.find("attn.c_proj", block=1).value)
    assert torch.equal(tr.find("residual", block=1, nth=1).value, tr.find("mlp.c_proj", block=1).value)

    with walk.knockout(tiny, "residual", block=0, which="attn"):
        tr = walk.trace(tiny, IDS)
    assert torch.equal(tr.find("residual", block=0).value, tr.find("attn.c_proj", block=0).value)
    mlp_out = tr.find("residual", block=0).value + tr.find("mlp.c_proj", block=0).value
    assert torch.equal(tr.find("residual", block=0, nth=1).value, mlp_out)

    with walk.knockout(tiny, "attention", block=0):
        tr = walk.trace(tiny, IDS)
    assert torch.equal(tr.find("residual", block=0).value, tr.find("embed").value)

    with walk.knockout(tiny, "shuffle", seed=3) as ko:
        shuffled = logits_of(tiny, IDS)
    order = ko.order(len(IDS))
    assert sorted(order.tolist()) == list(range(len(IDS))) and order.tolist() != list(range(8))
    assert torch.equal(shuffled, logits_of(tiny, torch.tensor(IDS)[order]))


def test_knockouts_act_in_their_own_thread_only(tiny):
    out = logits_of(tiny, IDS)
    seen = {}
    entered, done = threading.Event(), threading.Event()

    def other():
        entered.wait(5)
        seen["out"] = logits_of(tiny, IDS)
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with walk.knockouts(tiny, ["positions", "causal_mask", ("gelu", {"block": 0})]):
        entered.set()
        done.wait(5)
        inside = logits_of(tiny, IDS)
    t.join()
    assert torch.equal(seen["out"], out) and not torch.equal(inside, out)


def test_compare_knockouts(tiny):
    cmp = walk.compare_knockouts(tiny, IDS, ["causal_mask", ("attention", {"block": 0})], n_new=4)
    logits = logits_of(tiny, IDS).float()
    loss = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(IDS[1:]))
    assert abs(cmp.before.loss - float(loss)) < 1e-6
    assert cmp.before.top_ids.tolist() == torch.topk(logits[-1], 5).indices.tolist()
    assert len(cmp.before.continuation) == len(cmp.after.continuation) == 4
    greedy = SamplingConfig(temperature=0, max_new_tokens=4, stop_at_eot=False)
    assert cmp.before.continuation == generate_ids(tiny, IDS, greedy)
    assert cmp.after.loss != cmp.before.loss and len(cmp.shows) == 2
    assert [k.kind for k in cmp.knockouts] == ["causal_mask", "attention"]
    shuffled = walk.compare_knockouts(tiny, IDS, [("shuffle", {"seed": 1})], n_new=2)
    assert sorted(shuffled.after.ids.tolist()) == sorted(IDS) and shuffled.after.ids.tolist() != IDS
    assert hooks_of(tiny) == 0


def test_bad_knockouts_name_the_problem(tiny):
    with pytest.raises(ValueError, match="unknown knockout 'mask'"), walk.knockout(tiny, "mask"):
        pass
    with pytest.raises(ValueError, match="blocks 0-1"), walk.knockout(tiny, "gelu", block=2):
        pass
    with pytest.raises(ValueError, match="which must be one of"):
        walk.Knockout.of(("residual", {"which": "ln_1"}))
    with pytest.raises(ValueError, match="takes block"):
        walk.Knockout.of(("gelu", {"seed": 1}))
    assert hooks_of(tiny) == 0
