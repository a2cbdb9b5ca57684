#!/usr/bin/env bash
# The GPU check (issue 19, part 4). On a CUDA machine, from anywhere:
#
#     bash scripts/gpu_check.sh                      # about 2 minutes on one recent GPU
#
# 1. parity: a randomly initialised transformers GPT2LMHeadModel (GPT-2 124M's shape, written
#    with save_pretrained: no download) and our GPT loaded from that folder, both on the GPU:
#    logits (float32, and our bf16 autocast against float32), greedy generation, and every
#    Inside/Walk view on the GPU against the same view on the CPU;
# 2. a training-speed bench: our GPT-2 124M, `fit` on the GPU, tokens/s with bf16 autocast
#    (what training uses on CUDA) and without;
# 3. a 2-process DDP step through torchrun: NCCL with one GPU per rank when there are two GPUs
#    (with one GPU, NCCL cannot give two ranks the same device: gloo on the CPU instead, said so),
#    checked against one process training on the same batches.
#
# Results: one line per check on stdout and gpu_check.json in $OUT (else $GPU_CHECK_OUT, else
# /tmp/gpu-check/).
# Exit status 0 when every check passes, 1 when one fails, 2 when there is no CUDA.
# GPU_CHECK_DEVICE=cpu runs the same script on the CPU with small models: a dry run of the
# script itself, not a GPU check.
set -euo pipefail
cd "$(dirname "$0")/.."

export GPU_CHECK_DEVICE="${GPU_CHECK_DEVICE:-cuda}"
export GPU_CHECK_OUT="${OUT:-${GPU_CHECK_OUT:-/tmp/gpu-check}}"
export GPU_CHECK_WORK="$(mktemp -d)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
trap 'rm -rf "$GPU_CHECK_WORK"' EXIT
mkdir -p "$GPU_CHECK_OUT"

python - <<'EOF' || exit 2
import os, sys, torch
if os.environ["GPU_CHECK_DEVICE"].startswith("cuda") and not torch.cuda.is_available():
    print("gpu_check: no CUDA device here (torch", torch.__version__, "); nothing checked. "
          "GPU_CHECK_DEVICE=cpu runs the same script on the CPU as a dry run.")
    sys.exit(2)
EOF

# --- 1 and 2: parity and the training bench (one process) -------------------------------------
status=0
python - <<'EOF' || status=1
import contextlib, copy, json, os, statistics, sys, time
from pathlib import Path

import torch

import gpt
from gpt.config import PRESETS
from gpt.device import autocast, choose_device, describe
from gpt.train import loop
from gpt.train.loop import LMTask, TrainConfig, fit
from tests.conftest import SMALL_HF, make_hf_gpt2

dev = choose_device(os.environ["GPU_CHECK_DEVICE"])
on_gpu = dev.type == "cuda"
work, out = Path(os.environ["GPU_CHECK_WORK"]), Path(os.environ["GPU_CHECK_OUT"])
report = {"device": describe(dev), "torch": torch.__version__, "checks": {}}
failed = []


def check(name, ok, **figures):
    report["checks"][name] = {"ok": bool(ok), **figures}
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"{'PASS' if ok else 'FAIL'} {name}: {shown}", flush=True)
    if not ok:
        failed.append(name)


print(f"gpu_check on {describe(dev)}, torch {torch.__version__}", flush=True)
shape = dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257) if on_gpu else SMALL_HF
hf = make_hf_gpt2(work / "hf-gpt2", seed=0, **shape).to(dev)
ours = gpt.load_model(work / "hf-gpt2").to(dev).eval()
V = ours.config.vocab_size
torch.manual_seed(0)
x = torch.randint(0, V, (4, min(256, ours.config.block_size)), device=dev)

# logits, float32 (TF32 off, the PyTorch default for matmuls)
with torch.no_grad():
    ref, got = hf(x).logits.float(), ours(x).float()
diff = float((ref - got).abs().max())
check("logits_fp32_vs_transformers", diff < 2e-3, max_abs_diff=diff, shape=list(got.shape))

# bf16 autocast (training's forward on CUDA) against float32
with torch.no_grad(), autocast(dev):
    low = ours(x).float()
agree = float((low.argmax(-1) == got.argmax(-1)).float().mean())
bdiff = float((low - got).abs().max())
# a random model's logits are nearly tied, so bf16 may reorder some: figures, and a loose bar
check("logits_autocast_vs_fp32", agree > 0.5 and bdiff < 1.0, top1_agreement=agree, max_abs_diff=bdiff,
      autocast_on=on_gpu and torch.cuda.is_bf16_supported())

# greedy generation (our sampler with its KV cache) against transformers' generate
prompt = [5, 17, 256, 3, 99, 42]
cfg = gpt.SamplingConfig(temperature=0, max_new_tokens=40, stop_at_eot=False)
t0 = time.perf_counter()
mine = gpt.generate_ids(ours, prompt, cfg)
gen_s = time.perf_counter() - t0
with torch.no_grad():
    p = torch.tensor([prompt], device=dev)
    theirs = hf.generate(p, max_new_tokens=40, do_sample=False, pad_token_id=0,
                         attention_mask=torch.ones_like(p))[0, len(prompt):].tolist()
same = sum(a == b for a, b in zip(mine, theirs))
check("greedy_generation_vs_transformers", mine == theirs, tokens_equal=f"{same}/40",
      ours_tokens_per_s=40 / gen_s)

# every Inside/Walk view on the device, against the same view of a CPU copy
cpu = copy.deepcopy(ours).cpu()
L, H = ours.config.n_layer, ours.config.n_head
ids = torch.randint(0, V, (24,)).tolist()
corrupt = ids[:-3] + [(ids[-3] + 1) % V] + ids[-2:]
views = {
    "logit_lens": lambda m: gpt.logit_lens(m, ids, target="top"),
    "logit_lens_fast": lambda m: gpt.logit_lens(m, ids, target=7, fast=True),
    "surprisal": lambda m: gpt.predictions(m, ids),
    "ablate": lambda m: gpt.ablate(m, ids, [(0, 1), (L - 1, H - 1)], mode="mean"),
    "occlusion": lambda m: gpt.occlusion(m, ids, positions=[2, 5, 9]),
    "gradient_x_input": lambda m: gpt.gradient_x_input(m, ids),
    "patch": lambda m: gpt.patch(m, ids, corrupt, target_id=7),
    "compare": lambda m: gpt.compare(m, m, ids),
    "walk_trace": lambda m: gpt.trace(m, ids),
    "walk_knockouts": lambda m: gpt.compare_knockouts(m, ids, ["causal_mask", "gelu", "shuffle"], n_new=4),
}


def tensors(obj, path="out"):
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif hasattr(obj, "__dataclass_fields__"):
        for f in obj.__dataclass_fields__:
            if f not in ("config", "module"):
                yield from tensors(getattr(obj, f), f"{path}.{f}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{path}[{i}]")


for name, call in views.items():
    try:
        a, b = dict(tensors(call(ours))), dict(tensors(call(cpu)))
        worst, where = 0.0, ""  # the largest difference relative to the values' scale (>= 1)
        for k, t in b.items():
            u = a[k].detach().cpu()
            if t.is_floating_point() and t.numel():
                scale = max(1.0, float(t.float().nan_to_num().abs().max()))
                d = float((u.float() - t.float()).nan_to_num().abs().max()) / scale
                if d > worst:
                    worst, where = d, k
        check(f"view_{name}", worst < 1e-2, max_rel_diff_device_vs_cpu=worst, at=where or "-")
    except Exception as e:  # a view that does not run on the device
        check(f"view_{name}", False, error=f"{type(e).__name__}: {e}"[:300])

# what the pages turn into numpy arrays must come back on the CPU
lens, grid, tr = gpt.logit_lens(ours, ids), gpt.patch(ours, ids, corrupt, 7), gpt.trace(ours, ids)
outs = {"lens.top_probs": lens.top_probs, "patch": grid, "trace.residual_norms": tr.residual_norms(0),
        "trace.ids_step": tr.steps[0].value}
off = [k for k, t in outs.items() if t.device.type != "cpu"]
check("page_facing_results_on_cpu", not off, not_on_cpu=",".join(off) or "-")

# --- 2. training speed -----------------------------------------------------------------------
del hf, cpu
model_cfg = PRESETS["gpt2" if on_gpu else "tiny"]
T, B, steps = (512, 8, 30) if on_gpu else (32, 4, 6)
data = [(r[:-1], r[1:]) for r in torch.randint(0, model_cfg.vocab_size, (B * steps, T + 1))]
tcfg = TrainConfig(max_steps=steps, batch_size=B, lr=1e-4, eval_every=10**6, checkpoint_minutes=None)


def bench(use_autocast: bool) -> dict:
    torch.manual_seed(0)
    model = gpt.GPT(model_cfg)
    saved = loop.autocast
    if not use_autocast:
        loop.autocast = lambda device: contextlib.nullcontext()
    try:
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = fit(model, LMTask(), data, None, tcfg, device=dev)
        wall = time.perf_counter() - t0
    finally:
        loop.autocast = saved
    rates = [h["tokens_per_s"] for h in result.history[3:]]
    return {
        "tokens_per_s": statistics.median(rates),
        "first_loss": result.history[0]["loss"],
        "last_loss": result.history[-1]["loss"],
        "wall_s": wall,
        "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else 0.0,
    }


fp32, bf16 = bench(False), bench(True)
ok = all(r["last_loss"] < r["first_loss"] for r in (fp32, bf16))
check("train_bench_fp32", ok, model=("gpt2-124M" if on_gpu else "tiny"), batch=f"{B}x{T}", **fp32)
check("train_bench_bf16_autocast", ok, speedup_vs_fp32=bf16["tokens_per_s"] / fp32["tokens_per_s"], **bf16)

(out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
sys.exit(1 if failed else 0)
EOF

# --- 3. a 2-process DDP step through torchrun ---------------------------------------------------
cat > "$GPU_CHECK_WORK/ddp_step.py" <<'EOF'
"""Run by torchrun: 3 steps of DDP, then (rank 0) the same steps in one process, compared."""
import json, os, sys
from pathlib import Path

import torch
import torch.distributed as dist

import gpt
from gpt.config import PRESETS
from gpt.device import describe
from gpt.train.loop import LMTask, TrainConfig, fit, setup_distributed

rank, world = setup_distributed()
backend = dist.get_backend()


def run():
    torch.manual_seed(0)
    model = gpt.GPT(PRESETS["mini"])
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 4096, (24, 65), generator=g)
    cfg = TrainConfig(max_steps=3, batch_size=8, lr=1e-3, eval_every=10**6, checkpoint_minutes=None)
    result = fit(model, LMTask(), [(r[:-1], r[1:]) for r in rows], None, cfg)
    where = next(model.parameters()).device
    return [h["loss"] for h in result.history], {k: v.float().cpu() for k, v in model.state_dict().items()}, where


losses, state, where = run()
dist.barrier()
dist.destroy_process_group()
if rank == 0:
    one_losses, one_state, _ = run()  # one process, the same device type, the same batches
    wdiff = max(float((state[k] - v).abs().max()) for k, v in one_state.items())
    ldiff = max(abs(a - b) / abs(b) for a, b in zip(losses, one_losses))
    Path(os.environ["GPU_CHECK_WORK"], "ddp.json").write_text(json.dumps({
        "backend": backend, "world": world, "rank0_device": str(where), "device": describe(where),
        "losses_ddp": losses, "losses_one_process": one_losses,
        "max_rel_loss_diff": ldiff, "max_abs_weight_diff": wdiff,
    }))
sys.stdout.flush()
os._exit(0)  # not a normal exit: gloo can abort a rank in the interpreter's shutdown (see gpt.train.loop.leave_distributed)
EOF

n_gpu=$(python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$GPU_CHECK_DEVICE" != "cpu" ] && [ "$n_gpu" -ge 2 ]; then
  ddp_device=cuda; note="NCCL, one GPU per rank"
else
  ddp_device=cpu
  note="gloo on the CPU (NCCL needs one GPU per rank; this machine has $n_gpu)"
fi
launcher=(torchrun)
command -v torchrun >/dev/null || launcher=(python -m torch.distributed.run)
if GPT2LAB_DEVICE=$ddp_device OMP_NUM_THREADS=1 "${launcher[@]}" --standalone --nproc_per_node 2 \
     "$GPU_CHECK_WORK/ddp_step.py" > "$GPU_CHECK_WORK/ddp.log" 2>&1; then
  python - "$ddp_device" "$note" <<'EOF' || status=1
import json, os, sys
from pathlib import Path
device, note = sys.argv[1:]
r = json.loads(Path(os.environ["GPU_CHECK_WORK"], "ddp.json").read_text())
want = "nccl" if device == "cuda" else "gloo"
tol = (2e-2, 5e-3) if device == "cuda" else (1e-4, 1e-5)  # bf16 autocast on CUDA
ok = r["backend"] == want and r["max_rel_loss_diff"] < tol[0] and r["max_abs_weight_diff"] < tol[1]
print(f"{'PASS' if ok else 'FAIL'} ddp_2_processes: {note}; backend={r['backend']}, "
      f"rank 0 on {r['rank0_device']}, max_rel_loss_diff={r['max_rel_loss_diff']:.3g}, "
      f"max_abs_weight_diff={r['max_abs_weight_diff']:.3g}")
out = Path(os.environ["GPU_CHECK_OUT"], "gpu_check.json")
report = json.loads(out.read_text()) if out.is_file() else {"checks": {}}
report["checks"]["ddp_2_processes"] = {"ok": ok, "note": note, **r}
out.write_text(json.dumps(report, indent=2))
sys.exit(0 if ok else 1)
EOF
else
  echo "FAIL ddp_2_processes: torchrun failed; its log:"; tail -n 30 "$GPU_CHECK_WORK/ddp.log"
  status=1
fi

echo "results: $GPU_CHECK_OUT/gpu_check.json"
exit $status
