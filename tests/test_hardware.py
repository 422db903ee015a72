"""trainer.precision=auto follows the hardware; every benchmark names the CPU it ran on."""

from __future__ import annotations

import torch

from fast_style.hardware import SPEED_FLAGS, cpu_info, training_precision
from fast_style.stylize import native_bf16


def test_auto_precision_is_bf16_only_where_bf16_is_native():
    expected = "bf16-mixed" if native_bf16(torch.device("cpu")) else "32-true"
    assert training_precision("auto", "cpu") == expected


def test_a_named_precision_is_kept():
    for precision in ("32-true", "bf16-mixed", "16-mixed"):
        assert training_precision(precision, "cpu") == precision


def test_cpu_info_names_the_model_and_only_the_flags_that_decide_bf16_speed():
    info = cpu_info()
    assert info["cpu"] and info["cpu_count"] >= 1
    assert set(info["cpu_flags"]) <= set(SPEED_FLAGS)
    # torch's own check and /proc/cpuinfo agree on whether bf16 is native here (x86 Linux)
    if info["cpu_flags"]:
        native = {"avx512_bf16", "amx_bf16", "amx_tile"} & set(info["cpu_flags"])
        assert bool(native) == native_bf16(torch.device("cpu"))
