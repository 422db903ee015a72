"""What the machine can do, and the choices that follow from it.

The fastest training precision depends on the hardware, not on taste: on a CPU with AMX or
AVX512-BF16 (and on GPUs since Ampere) bf16 autocast runs several times faster than fp32; on a
CPU without them bf16 is emulated and slower than fp32 (benchmarks/README.md, one table per CPU
kind). ``trainer.precision: auto`` follows that rule, and every benchmark records the CPU it ran
on with the flags the rule reads.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from fast_style.stylize import native_bf16

# The /proc/cpuinfo flags that decide bf16 speed on x86 (AVX-512 itself, its bf16 dot products,
# and Intel's AMX tiles), recorded in every benchmark JSON.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info() -> dict:
    """{"cpu": model name, "cpu_flags": the SPEED_FLAGS present, "cpu_count": logical CPUs}."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first processor speaks for all
    except OSError:  # not Linux: the platform's name is all we know
        pass
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": fields.get("model name") or platform.processor() or platform.machine(),
            "cpu_flags": [f for f in SPEED_FLAGS if f in flags], "cpu_count": cores}


def accelerator_device(accelerator: str) -> torch.device:
    """The device Lightning's ``accelerator`` setting will train on (one process's view)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def training_precision(precision: str, accelerator: str = "auto") -> str:
    """Lightning precision for ``trainer.precision``: ``auto`` is bf16-mixed where the device
    computes bf16 natively, 32-true elsewhere; any other value passes through unchanged."""
    if str(precision) != "auto":
        return str(precision)
    return "bf16-mixed" if native_bf16(accelerator_device(accelerator)) else "32-true"
