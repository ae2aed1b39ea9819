"""Training precision: fp32, or bf16 autocast where the hardware does bf16 natively.

Under ``bf16`` only the forward pass of the recurrent layers and the output layer runs in bfloat16
(``torch.autocast``); the weights, the RMSProp moments, gradient clipping and the loss stay fp32, and the
hidden state carried from one block to the next is cast back to fp32. Evaluation, capture, sampling and
every analysis always run in fp32 on the fp32 weights, so no analysis depends on how a model was trained.

``auto`` picks bf16 where it is native: a CUDA GPU of compute capability 8.0 or newer (Ampere on), or a CPU
with AVX512-BF16 or AMX-BF16 (oneDNN's bf16 LSTM needs one of them; without them a bf16 LSTM does not run
at all and a bf16 GRU or RNN runs about 12x slower than fp32, measured on a 2-core AMD EPYC without AVX-512).
Everywhere else ``auto`` means fp32.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import torch

from .exceptions import RnnlensError

PRECISIONS = ("fp32", "bf16")
CHOICES = ("fp32", "bf16", "auto")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and why (for messages and the run's record)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        if major >= 8:
            return True, f"CUDA compute capability {major}.{minor} has native bf16"
        return False, f"CUDA compute capability {major}.{minor} has no native bf16 (needs 8.0 or newer)"
    have = sorted(set(CPU_BF16_FLAGS) & cpu_flags())
    if have:
        return True, f"the CPU has {', '.join(have)}"
    return False, "the CPU has neither AVX512-BF16 nor AMX-BF16"


def resolve_precision(name: str | None, device: torch.device | str) -> str:
    """'fp32', 'bf16' or 'auto' (bf16 where native, else fp32) -> 'fp32' or 'bf16'."""
    name = name or "fp32"
    if name not in CHOICES:
        raise RnnlensError(f"unknown precision {name!r}; choose one of {', '.join(CHOICES)}")
    if name == "auto":
        return "bf16" if native_bf16(device)[0] else "fp32"
    return name


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The forward-pass context for ``precision`` on ``device`` (a no-op for fp32)."""
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise RnnlensError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def explain_failure(exc: RuntimeError, precision: str, cell: str, device: torch.device | str) -> RnnlensError | None:
    """A one-line error for a bf16 forward pass the backend cannot run (None if ``exc`` is something else)."""
    if precision != "bf16":
        return None
    message = str(exc)
    if "primitive descriptor" in message or "bfloat16" in message.lower() or "BFloat16" in message:
        why = native_bf16(device)[1]
        return RnnlensError(
            f"this device cannot train a {cell} in bf16 ({why}; the backend says: {message.splitlines()[0][:80]}); "
            "use --precision fp32 or auto"
        )
    return None
