"""Where models run: one device choice for the whole program, and bf16 autocast where it helps.

`choose_device()` picks CUDA, then MPS (Apple GPUs), then the CPU. An explicit name (the CLI's
`--device`) wins over `$GPT2LAB_DEVICE`, which wins over that order. Code that already holds a
model follows the model instead (`device_of(model)`): the model is moved once, where it is
loaded, and every tensor made for it is made on its device.

`autocast(device)` is bf16 autocast where bf16 matrix products are fast (a CUDA GPU with bf16, a
CPU with AVX512-BF16 or AMX), a no-op elsewhere; `$GPT2LAB_BF16=0` turns it off everywhere and
`=1` forces it on a CPU without them (emulated there: no faster, for tests).

>>> choose_device("cpu")
device(type='cpu')
>>> device_of(torch.nn.Linear(2, 2))
device(type='cpu')
>>> os.environ[BF16_ENV] = "0"
>>> with autocast(torch.device("cpu")):  # switched off: float32
...     torch.ones(2, 2).mm(torch.ones(2, 2)).dtype
torch.float32
>>> del os.environ[BF16_ENV]
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import torch

DEVICE_ENV = "GPT2LAB_DEVICE"
BF16_ENV = "GPT2LAB_BF16"  # "0": float32 everywhere; "1": bf16 autocast on any CPU too
DEVICE_NAMES = ("auto", "cuda", "cuda:N", "mps", "cpu")  # what --device and $GPT2LAB_DEVICE take


class DeviceError(ValueError):
    """A device name that is not one of DEVICE_NAMES, or a device this machine does not have."""


def available() -> list[str]:
    """The device types this machine can run on, best first ("cpu" always last).

    >>> available()[-1]
    'cpu'
    """
    found = ["cuda"] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def _parse(name: str, source: str) -> torch.device | None:
    """`name` as a device (None for "auto"), checked against this machine; `source` says where
    the name came from, for the error."""
    text = name.strip().lower()
    if text == "auto":
        return None
    kind, _, index = text.partition(":")
    if kind not in ("cuda", "mps", "cpu") or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(
            f"unknown device {name!r} ({source}): use one of {', '.join(DEVICE_NAMES)}"
        )
    here = available()
    if kind not in here:
        raise DeviceError(
            f"device {name!r} ({source}) is not available on this machine: "
            f"{kind.upper()} was not found; available: {', '.join(here)}"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise DeviceError(
            f"device {name!r} ({source}) does not exist: this machine has "
            f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}"
        )
    return torch.device(text)


def choose_device(name: str | torch.device | None = None) -> torch.device:
    """The device to run on: `name` when given, else `$GPT2LAB_DEVICE`, else the best one here
    (CUDA, then MPS, then CPU). Under torchrun, plain "cuda" means this process's own GPU
    (`cuda:$LOCAL_RANK`). A bad or missing device raises DeviceError naming the valid ones.

    >>> choose_device(" CPU ")
    device(type='cpu')
    >>> choose_device("tpu")
    Traceback (most recent call last):
      ...
    gpt.device.DeviceError: unknown device 'tpu' (the argument): use one of auto, cuda, cuda:N, mps, cpu
    """
    if isinstance(name, torch.device):
        return name
    source = "the argument"
    if not name:
        name, source = os.environ.get(DEVICE_ENV, "").strip() or "auto", f"${DEVICE_ENV}"
    device = _parse(name, source)
    if device is None:
        device = torch.device(available()[0])
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0") or 0))
    return device


def device_of(module: torch.nn.Module) -> torch.device:
    """Where a module's weights are (its first parameter or buffer; the CPU if it has none).

    >>> device_of(torch.nn.ReLU())
    device(type='cpu')
    """
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX, read from
    /proc/cpuinfo's flags): there a bf16 product runs about 2.7x faster than a float32 one
    (1024 x 768 x 3072 on 2 cores of an AMD EPYC: 423 against 158 GFLOP/s); elsewhere bf16 is
    emulated and gains nothing.

    >>> isinstance(cpu_has_bf16(), bool)
    True
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_enabled(device: torch.device) -> bool:
    """Whether `autocast(device)` is bf16 autocast: `$GPT2LAB_BF16` when set ("0" off, "1" on
    for CUDA with bf16 and any CPU), else a CUDA device that supports bf16 or a CPU that has it
    natively (`cpu_has_bf16`); never on MPS.

    >>> os.environ[BF16_ENV] = "1"
    >>> bf16_enabled(torch.device("cpu")), bf16_enabled(torch.device("mps"))
    (True, False)
    >>> del os.environ[BF16_ENV]
    """
    env = os.environ.get(BF16_ENV, "").strip().lower()
    if env in ("0", "off", "false", "no"):
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return env in ("1", "on", "true", "yes") or cpu_has_bf16()
    return False


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where it pays (`bf16_enabled`: matrix products in bf16, reductions, softmax
    and the loss in float32; about twice as fast on recent GPUs and on CPUs with native bf16);
    nothing elsewhere, where it would only change the numbers. Training runs its forward and
    the frozen trunk's features under it; evaluation, generation and the Inside/Walk numbers
    stay float32.

    >>> os.environ[BF16_ENV] = "1"
    >>> with autocast(torch.device("cpu")):
    ...     torch.is_autocast_enabled("cpu"), torch.ones(2, 2).mm(torch.ones(2, 2)).dtype
    (True, torch.bfloat16)
    >>> del os.environ[BF16_ENV]
    """
    if bf16_enabled(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device) -> str:
    """The device in words, for the app and the CLI.

    >>> describe(torch.device("cpu")).startswith("CPU (")
    True
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"CUDA: {torch.cuda.get_device_name(index)}"
    if device.type == "mps":
        return "MPS (Apple GPU)"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''})"


def running_on(name: str | torch.device | None = None) -> str:
    """One line saying where models run ("Running on CPU (2 threads)"), or what is wrong with
    the device asked for; never raises.

    >>> running_on("cpu").startswith("Running on CPU")
    True
    >>> running_on("tpu").startswith("Device problem: unknown device 'tpu'")
    True
    """
    try:
        return f"Running on {describe(choose_device(name))}"
    except DeviceError as e:
        return f"Device problem: {e}. Models will not load until it is fixed."


@contextlib.contextmanager
def env_device(name: str | None) -> Iterator[None]:
    """`$GPT2LAB_DEVICE` set to `name` (checked first) inside the block, restored after; None
    changes nothing. The CLI uses it so that code below it (training, jobs) sees `--device`.

    >>> with env_device("cpu"):
    ...     os.environ[DEVICE_ENV]
    'cpu'
    """
    if not name:
        yield
        return
    _parse(name, "--device")
    old = os.environ.get(DEVICE_ENV)
    os.environ[DEVICE_ENV] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(DEVICE_ENV, None)
        else:
            os.environ[DEVICE_ENV] = old
