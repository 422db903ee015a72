"""The GPU benchmark (scripts/benchmark_gpu.py, run by benchmarks/gpu.sh) in its tiny CPU mode:
every section must run, so the script is ready on the day a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_runs_every_section_in_tiny_mode(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark_gpu.py"), "--tiny",
                           "--device", "cpu", "--out", str(out), "--quality-s", "5"],
                          check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert report["cpu"] and "cpu_flags" in report
    [train] = sections["train"]
    assert train["losses_finite"] and train["images_per_s"] > 0
    assert train["projected_40k_steps_min"] > 0
    assert 0 < train["step_ms_median"] <= train["step_ms_max"]  # every timed step's own gap
    assert sections["train_compiled"][0]["skipped"]  # compiling is for the real run
    assert sections["step_profile"]["profiled_steps"] == 1  # no CUDA kernels on a CPU
    gram = sections["gram"]
    assert gram["whole_ms"] > 0 and gram["chunks_ms"] > 0 and len(gram["layers"]) == 4
    assert gram["chunk_positions"] == 256  # chunks at tiny sizes too: the chunked path runs
    routes = sections["kernel_routes"]["variants"]
    assert {"default", "bf16 channels_last batchnorm-IN",
            "bf16 channels_last aten-IN autocast-pads"} <= routes.keys()
    assert sections["data"]["photos_per_s"] > 0 and "data_over_training" in sections["data"]
    for row in sections["infer"].values():
        assert row["stylize_photo_ms"] > 0 and row["network_ms_aten-IN"] > 0
    assert sections["correctness"]["ok"]
    video = sections["video"]
    assert video["frames"] == 4 and video["fp16 default fps (frames in memory)"] > 0
    assert video["fp16 default fps (mp4 file to mp4 file)"] > 0  # PyAV is installed here
    quality = sections["quality"]  # the real train.py, then the judge on held-out photos
    assert [p["step"] for p in quality["points"]] == [2, 4]
    assert quality["steps_run"] == 4 and quality["steady_ms_per_step"] > 0  # train.py's own pace
    assert "lr_decay=linear" in quality["recipe"]
    assert all(p["total"] > 0 and p["content_vs_painting"] > 0 for p in quality["points"])
    assert quality["judged_photos"] == 2 and quality["painting_content"] > 0
    assert (tmp_path / "gpu_quality_starry_night.pth").is_file()  # the trained network comes back


def test_gpu_script_refuses_cuda_without_a_gpu(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark_gpu.py"), "--out",
                           str(tmp_path / "x.json")], check=False, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "--device cpu --tiny" in proc.stderr
    assert not (tmp_path / "x.json").exists()
