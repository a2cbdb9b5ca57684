"""gpt/inside.py against Hugging Face transformers: the logit lens, surprisal, head ablation,
attribution and comparison, on random-weight GPT-2 folders loaded through our loader."""

from __future__ import annotations

import copy
import threading

import pytest
import torch

from gpt import inside
from gpt.classifier import GPTClassifier
from gpt.lab.names import load_model
from tests.conftest import SMALL_HF, make_hf_gpt2


@pytest.fixture(scope="module")
def pair(hf_small):
    """(ours, hf, ids): the same random 2-layer GPT-2 in both implementations, and 24 tokens."""
    folder, hf = hf_small
    torch.manual_seed(3)
    return load_model(folder).eval(), hf, torch.randint(0, 1000, (24,))


def hf_logp(hf, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(hf(ids[None]).logits[0], dim=-1)  # (T, V)


def test_lens_rows_equal_hf_hidden_states_through_ln_f_and_head(pair):
    ours, hf, ids = pair
    k = 5
    lens = inside.logit_lens(ours, ids, k=k, target=7)
    with torch.no_grad():
        hs = hf(ids[None], output_hidden_states=True).hidden_states  # L+1 tensors (1, T, C)
        rows = []
        for i, h in enumerate(hs):
            # HF's last hidden state already has ln_f applied; the others do not.
            normed = h if i == len(hs) - 1 else hf.transformer.ln_f(h)
            rows.append(torch.log_softmax(hf.lm_head(normed)[0], dim=-1))
    expected = torch.stack(rows)  # (L+1, T, V)
    assert lens.top_ids.shape == lens.top_probs.shape == (SMALL_HF["n_layer"] + 1, 24, k)
    values, indices = expected.topk(k, dim=-1)
    torch.testing.assert_close(lens.top_probs, values.exp(), atol=1e-5, rtol=1e-4)
    assert torch.equal(lens.top_ids, indices)
    torch.testing.assert_close(lens.target_logprobs, expected[:, :, 7], atol=1e-4, rtol=1e-4)
    nxt = expected[:, torch.arange(23), ids[1:]]
    torch.testing.assert_close(lens.next_logprobs, nxt, atol=1e-4, rtol=1e-4)
    # the last row is the model's own next-token distribution
    top_own = hf_logp(hf, ids).topk(k, dim=-1)
    torch.testing.assert_close(lens.top_probs[-1], top_own.values.exp(), atol=1e-5, rtol=1e-4)


def test_surprisal_mean_equals_hf_loss_and_predictions_agree(pair):
    ours, hf, ids = pair
    s = inside.surprisal(ours, ids)
    with torch.no_grad():
        loss = hf(ids[None], labels=ids[None]).loss
    assert s.shape == (23,)
    torch.testing.assert_close(s.mean(), loss, atol=1e-5, rtol=1e-5)
    p = inside.predictions(ours, ids, k=3)
    torch.testing.assert_close(p.surprisal, s)
    assert abs(p.loss - float(loss)) < 1e-5 and abs(p.perplexity - float(loss.exp())) < 1e-3
    logp = hf_logp(hf, ids)[:-1]
    for t in range(23):  # brute force: the actual token's place in the sorted distribution
        order = torch.argsort(logp[t], descending=True).tolist()
        assert int(p.rank[t]) == order.index(int(ids[t + 1])) + 1
    entropy = -(logp.exp() * logp).sum(-1)
    torch.testing.assert_close(p.entropy, entropy, atol=1e-4, rtol=1e-4)
    assert torch.equal(p.top_ids, logp.topk(3, dim=-1).indices)


def hf_without_values(hf, layer: int, heads: list[int]):
    """A copy of `hf` whose chosen heads have zero value weights and biases: each such head's
    output is exactly zero, computed by HF's own code."""
    model = copy.deepcopy(hf)
    C, hd = hf.config.n_embd, hf.config.n_embd // hf.config.n_head
    attn = model.transformer.h[layer].attn.c_attn  # Conv1D: weight (C, 3C), columns q | k | v
    with torch.no_grad():
        for h in heads:
            cols = slice(2 * C + h * hd, 2 * C + (h + 1) * hd)
            attn.weight[:, cols] = 0
            attn.bias[cols] = 0
    return model


@pytest.mark.parametrize("layer, heads", [(0, [0, 1, 2, 3]), (1, [0, 1, 2, 3]), (1, [2])])
def test_zero_ablation_equals_hf_with_those_heads_silenced(pair, layer, heads):
    ours, hf, ids = pair
    expected = hf_logp(hf_without_values(hf, layer, heads), ids)
    with inside.ablate_heads(ours, [(layer, h) for h in heads], mode="zero"):
        got = torch.log_softmax(ours(ids[None])[0], dim=-1)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        assert not torch.allclose(torch.log_softmax(ours(ids[None])[0], -1), expected, atol=1e-3)


def test_ablating_a_whole_layer_equals_zeroing_its_attention_output(pair):
    ours, _, ids = pair
    with inside.ablate_heads(ours, [(1, h) for h in range(4)]):
        ablated = ours(ids[None])
    model = copy.deepcopy(ours)
    model.h[1].attn.c_proj.register_forward_pre_hook(lambda m, a: (torch.zeros_like(a[0]),))
    with torch.no_grad():
        torch.testing.assert_close(ablated, model(ids[None]), atol=1e-6, rtol=1e-6)


def test_mean_ablation_equals_hf_with_head_outputs_replaced_by_their_mean(pair):
    ours, hf, ids = pair
    layer, head, hd = 0, 2, 16
    cols = slice(head * hd, (head + 1) * hd)

    def mean_head(module, args):
        y = args[0].clone()  # HF's merged head outputs (1, T, C), the input of c_proj
        y[..., cols] = y[..., cols].mean(dim=1, keepdim=True)
        return (y,)

    handle = hf.transformer.h[layer].attn.c_proj.register_forward_pre_hook(mean_head)
    try:
        expected = hf_logp(hf, ids)
    finally:
        handle.remove()
    result = inside.ablate(ours, ids, [(layer, head)], mode="mean", k=3)
    with inside.ablate_heads(ours, [(layer, head)], mode="mean"):
        got = torch.log_softmax(ours(ids[None])[0], dim=-1)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        result.after.surprisal, -expected[:-1].gather(1, ids[1:, None])[:, 0]
    )
    torch.testing.assert_close(result.next_after, expected[-1].exp(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result.before.surprisal, inside.surprisal(ours, ids))


def test_ablation_is_invisible_to_other_threads(pair):
    ours, _, ids = pair
    with torch.no_grad():
        intact = ours(ids[None])
    seen = {}
    with inside.ablate_heads(ours, [(0, 0), (1, 1)]):
        t = threading.Thread(target=lambda: seen.setdefault("other", ours(ids[None]).detach()))
        t.start()
        t.join()
        here = ours(ids[None]).detach()
    torch.testing.assert_close(seen["other"], intact)
    assert not torch.allclose(here, intact)
    assert not ours.h[0].attn.c_proj._forward_pre_hooks  # hooks removed on exit


def test_bad_heads_and_modes_name_the_problem(pair):
    ours, _, ids = pair
    with (
        pytest.raises(ValueError, match="layer 5 is out of range"),
        inside.ablate_heads(ours, [(5, 0)]),
    ):
        pass
    with pytest.raises(ValueError, match="head 9 is out of range"):
        inside.ablate(ours, ids, [(0, 9)])
    with pytest.raises(ValueError, match="mode must be one of zero, mean"):
        inside.ablate(ours, ids, [(0, 0)], mode="noise")
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        inside.surprisal(ours, [1, 5000])
    with pytest.raises(ValueError, match="at least 2 token"):
        inside.surprisal(ours, [1])
    with pytest.raises(ValueError, match="exceed the model's context length 128"):
        inside.logit_lens(ours, [1] * 129)


@pytest.fixture(scope="module")
def classifier(pair):
    ours, _, _ = pair
    torch.manual_seed(1)
    clf = GPTClassifier(copy.deepcopy(ours), 2, ("ham", "spam")).eval()
    with torch.no_grad():
        clf.head.weight.normal_(std=1.0)
    return clf


def test_gradient_x_input_equals_hf_inputs_embeds_gradient(pair, classifier):
    ours, hf, ids = pair
    emb = hf.transformer.wte(ids[None]).detach().requires_grad_(True)
    # next-token logit of the model's favourite token
    logits = hf(inputs_embeds=emb).logits[0, -1]
    target = int(logits.argmax())
    (grad,) = torch.autograd.grad(logits[target], emb)
    got = inside.gradient_x_input(ours, ids)
    assert got.target == target and not got.classifier
    torch.testing.assert_close(got.scores, (grad * emb).sum(-1)[0], atol=1e-4, rtol=1e-3)
    # a classifier's class logit: HF's features at the last position through our head
    emb = emb.detach().requires_grad_(True)
    feats = hf.transformer(inputs_embeds=emb).last_hidden_state[0, -1]
    score = classifier.head(feats)[1]
    (grad,) = torch.autograd.grad(score, emb)
    got = inside.gradient_x_input(classifier, ids, target=1)
    assert got.classifier and got.target == 1 and 0 < got.prob < 1
    torch.testing.assert_close(got.scores, (grad * emb).sum(-1)[0], atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("which", ["lm", "classifier"])
def test_occlusion_matches_a_brute_force_loop(pair, classifier, which):
    ours, _, ids = pair
    model = ours if which == "lm" else classifier
    ids = ids[:12]
    got = inside.occlusion(model, ids, batch_size=5)

    def p_target(seq: torch.Tensor) -> float:
        with torch.no_grad():
            out = model(seq[None]) if which == "classifier" else ours(seq[None])[:, -1]
        return float(torch.softmax(out[0], -1)[got.target])

    full = p_target(ids)
    expected = [full - p_target(torch.cat([ids[:i], ids[i + 1 :]])) for i in range(len(ids))]
    assert abs(got.prob - full) < 1e-6
    torch.testing.assert_close(got.scores, torch.tensor(expected), atol=1e-6, rtol=1e-5)
    some = inside.occlusion(model, ids, positions=[3, 0, 11])
    torch.testing.assert_close(some.scores[[0, 3, 11]], got.scores[[0, 3, 11]])
    assert int(some.scores.isnan().sum()) == 9
    assert inside.attribute(model, ids, "occlusion").method == "occlusion"
    with pytest.raises(ValueError, match="method must be one of gradient, occlusion"):
        inside.attribute(model, ids, "shap")
    with pytest.raises(ValueError, match="out of range"):
        inside.occlusion(model, ids, target=10**6)
    with pytest.raises(ValueError, match="measure must be one of prob, log_odds"):
        inside.occlusion(model, ids, measure="odds")


def test_occlusion_in_log_odds_does_not_saturate_at_a_near_certain_verdict(classifier):
    """At P = 0.999 every ΔP is tiny; the change in log-odds is the brute-force
    log(P/(1-P)) difference, and stays large for a token that matters."""
    ids = torch.arange(10, 22)
    classifier = copy.deepcopy(classifier)  # the fixture is shared
    head = classifier.head
    with torch.no_grad():  # a near-certain verdict: small token effects on a large class 1 logit
        head.weight.mul_(0.05)
        head.bias.copy_(torch.tensor([0.0, 8.0]))
    got = inside.occlusion(classifier, ids, target=1, measure="log_odds")
    by_p = inside.occlusion(classifier, ids, target=1)

    def odds(seq: torch.Tensor) -> float:
        with torch.no_grad():
            p = torch.softmax(classifier(seq[None])[0].double(), -1)[1]
        return float(torch.log(p / (1 - p)))

    expected = [odds(ids) - odds(torch.cat([ids[:i], ids[i + 1 :]])) for i in range(len(ids))]
    expected = torch.tensor(expected, dtype=torch.float32)
    torch.testing.assert_close(got.scores, expected, atol=1e-3, rtol=1e-3)
    assert got.prob > 0.999 and by_p.scores.abs().max() < 1e-3  # saturated in P ...
    assert got.scores.abs().max() > 100 * by_p.scores.abs().max()  # ... not in log-odds


def test_compare_gives_hf_log_prob_differences(pair, tmp_path):
    ours, hf, ids = pair
    hf_b = make_hf_gpt2(tmp_path / "b", seed=5, **SMALL_HF)
    b = load_model(tmp_path / "b").eval()
    c = inside.compare(ours, b, ids)
    lp_a = hf_logp(hf, ids)[:-1].gather(1, ids[1:, None])[:, 0]
    lp_b = hf_logp(hf_b, ids)[:-1].gather(1, ids[1:, None])[:, 0]
    torch.testing.assert_close(c.diff, lp_b - lp_a, atol=1e-4, rtol=1e-4)
    full_a, full_b = hf_logp(hf, ids)[:-1], hf_logp(hf_b, ids)[:-1]
    kl = (full_a.exp() * (full_a - full_b)).sum(-1)
    torch.testing.assert_close(c.kl, kl, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(c.lens_diff, c.lens_b - c.lens_a)
    torch.testing.assert_close(c.lens_a[-1], c.logprobs_a)
    fast = inside.compare(ours, b, ids, fast=True)
    torch.testing.assert_close(fast.diff, c.diff)  # the final rows are float32 either way
    torch.testing.assert_close(fast.lens_diff, c.lens_diff, atol=1e-2, rtol=1e-2)
    same = inside.compare(ours, ours, ids)
    assert float(same.diff.abs().max()) == 0 and float(same.kl.abs().max()) < 1e-6


def test_compare_models_of_different_depths_and_vocabularies(pair, tmp_path):
    ours, _, ids = pair
    make_hf_gpt2(tmp_path / "deep", **{**SMALL_HF, "n_layer": 3})
    c = inside.compare(ours, load_model(tmp_path / "deep"), ids)
    assert c.lens_diff is None and c.lens_b.shape == (4, 23)
    make_hf_gpt2(tmp_path / "other", **{**SMALL_HF, "vocab_size": 999})
    with pytest.raises(ValueError, match="vocabularies differ"):
        inside.compare(ours, load_model(tmp_path / "other"), ids)


def test_fast_lens_agrees_with_the_exact_one(pair):
    ours, _, ids = pair
    exact = inside.logit_lens(ours, ids, k=5, target="top")
    fast = inside.logit_lens(ours, ids, k=5, target="top", fast=True)
    assert exact.target == int(exact.top_ids[-1, -1, 0]) == fast.target  # "top": the own guess
    assert torch.equal(fast.top_ids, exact.top_ids)
    torch.testing.assert_close(fast.top_probs, exact.top_probs, atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(fast.next_logprobs, exact.next_logprobs, atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(fast.target_logprobs, exact.target_logprobs, atol=1e-2, rtol=1e-2)
    # after the last token, the model's own next-token distribution: float32 in both
    torch.testing.assert_close(fast.top_probs[-1, -1], exact.top_probs[-1, -1], atol=0, rtol=1e-6)


def test_fast_lens_reads_an_untied_head(pair):
    """A hub fine-tune with its own output head (UntiedGPT): the fast lens reads that head, as
    the exact one (`lm_head`) does, not `wte`."""
    from gpt.checkpoint import UntiedGPT

    ours, _, ids = pair
    untied = UntiedGPT(ours.config).eval()
    untied.load_state_dict(ours.state_dict(), strict=False)
    with torch.no_grad():
        untied.out_head.copy_(torch.randn_like(untied.out_head) * 0.5)
    exact = inside.logit_lens(untied, ids, k=5, target="top")
    fast = inside.logit_lens(untied, ids, k=5, target="top", fast=True)
    assert torch.equal(fast.top_ids, exact.top_ids)
    torch.testing.assert_close(fast.top_probs, exact.top_probs, atol=2e-3, rtol=1e-2)
    tied = inside.logit_lens(ours, ids, k=5, target="top")
    assert not torch.equal(tied.top_ids, exact.top_ids)  # the head matters here


def test_a_fast_row_with_a_shift_too_low_falls_back_to_its_own(pair):
    """The product subtracts each position's shift; one far below the best logit overflows the
    exponentials, and the row is done again with its best exact logit: the same answer."""
    ours, _, ids = pair
    gpt = inside.body(ours)
    with torch.inference_mode():
        h = gpt.ln_f(inside.residual_stream(gpt, ids[None])[1])  # (T, C) after block 1
        plain = inside._fast_row(gpt, h, 5)
        good = (h * gpt.wte.weight[plain[0][:, 2]]).sum(-1)  # the 3rd-best token's logit
        shifted = inside._fast_row(gpt, h, 5, shift=good)
        overflow = inside._fast_row(gpt, h, 5, shift=torch.full((h.shape[0],), -1e4))
        lse = torch.logsumexp(gpt.lm_head(h).float(), dim=-1)  # float32: the reference
    for ids_, logp, norm in (plain, shifted, overflow):
        assert torch.equal(ids_, plain[0])
        torch.testing.assert_close(norm, lse, atol=1e-2, rtol=0)
        torch.testing.assert_close(logp, plain[1], atol=1e-2, rtol=0)
    assert torch.equal(overflow[2], plain[2])  # done again exactly as without a shift


@pytest.mark.slow
def test_gpt2_124m_lens_surprisal_and_ablation_match_hf(hf_gpt2):
    """The same checks on the full GPT-2 124M shape (random weights, 12 layers x 12 heads)."""
    folder, hf = hf_gpt2
    ours = load_model(folder).eval()
    torch.manual_seed(4)
    ids = torch.randint(0, 50257, (32,))
    with torch.no_grad():
        out = hf(ids[None], labels=ids[None], output_hidden_states=True)
        hs = out.hidden_states
        rows = [hf.lm_head(h if i == 12 else hf.transformer.ln_f(h))[0] for i, h in enumerate(hs)]
    expected = torch.log_softmax(torch.stack(rows), dim=-1)  # (13, T, V)
    for fast in (False, True):
        lens = inside.logit_lens(ours, ids, k=5, fast=fast)
        assert torch.equal(lens.top_ids, expected.topk(5, dim=-1).indices)
        tol = dict(atol=2e-3, rtol=1e-2) if fast else dict(atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(lens.top_probs, expected.topk(5, dim=-1).values.exp(), **tol)
    torch.testing.assert_close(inside.surprisal(ours, ids).mean(), out.loss, atol=1e-5, rtol=1e-5)
    silenced = hf_logp(hf_without_values(hf, 5, [3, 7]), ids)
    with inside.ablate_heads(ours, [(5, 3), (5, 7)]):
        got = torch.log_softmax(ours(ids[None])[0], dim=-1)
    torch.testing.assert_close(got, silenced, atol=1e-4, rtol=1e-4)


# --- activation patching -------------------------------------------------------------------------


def next_prob(model, ids: torch.Tensor, target: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.softmax(model(ids[None], last_only=True)[0, -1].float(), -1)[target]


def test_patch_last_layer_last_position_is_the_clean_run_exactly(pair):
    ours, _, clean = pair
    corrupt = clean.clone()
    corrupt[[3, 10]] = torch.tensor([17, 99])
    target = 42
    grid = inside.patch(ours, clean, corrupt, target)
    L, T = ours.config.n_layer, len(clean)
    assert grid.shape == (L + 1, T)
    p_clean, p_corrupt = next_prob(ours, clean, target), next_prob(ours, corrupt, target)
    assert torch.equal(grid[L, T - 1], p_clean)
    assert torch.equal(grid[L, : T - 1], p_corrupt.expand(T - 1))
    # patching a position where the prompts agree, before any block, changes nothing
    torch.testing.assert_close(grid[0, 0], p_corrupt, atol=1e-6, rtol=0)


def test_patch_with_identical_prompts_is_the_clean_value_everywhere(pair):
    ours, _, ids = pair
    grid = inside.patch(ours, ids, ids, 7)
    p = next_prob(ours, ids, 7)
    torch.testing.assert_close(grid, p.expand_as(grid), atol=1e-6, rtol=1e-5)


def test_patch_cells_equal_one_forward_per_variant(pair):
    """The batched variants against a brute-force loop: one patched forward each."""
    ours, _, clean = pair
    corrupt = torch.flip(clean, [0])
    target = 5
    grid = inside.patch(ours, clean, corrupt, target)
    with torch.inference_mode():
        for layer in range(ours.config.n_layer + 1):
            good, bad = ours.residual(clean[None], layer), ours.residual(corrupt[None], layer)
            for t in (0, 4, len(clean) - 1):
                x = bad.clone()
                x[0, t] = good[0, t]
                h = ours.hidden_from(x, layer)[0, -1]
                p = torch.softmax(ours.lm_head(h).float(), -1)[target]
                torch.testing.assert_close(grid[layer, t], p, atol=1e-6, rtol=1e-5)


def test_patch_on_a_classifier_and_in_long_prompts(pair, monkeypatch):
    ours, _, ids = pair
    clf = GPTClassifier(copy.deepcopy(ours), num_classes=2).eval()
    corrupt = ids.clone()
    corrupt[2] = 1
    grid = inside.patch(clf, ids, corrupt, 1)
    with torch.inference_mode():
        p = torch.softmax(clf(ids[None])[0], -1)[1]
    assert grid.shape == (3, len(ids)) and torch.equal(grid[-1, -1], p)
    monkeypatch.setattr(inside, "PATCH_BATCH_TOKENS", 48)  # variants in batches of 2
    torch.testing.assert_close(inside.patch(clf, ids, corrupt, 1), grid, atol=1e-6, rtol=1e-5)


def test_patch_names_its_problems(pair):
    ours, _, ids = pair
    with pytest.raises(ValueError, match="same number of tokens, got 24 and 23"):
        inside.patch(ours, ids, ids[:-1], 3)
    with pytest.raises(ValueError, match=r"target token 1000 is out of range \[0, 1000\)"):
        inside.patch(ours, ids, ids, 1000)
