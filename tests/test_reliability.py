"""Hostile files, crashes and bad values: real files, real processes, real signals, a real server.

Every probe of benchmarks/reliability.md is a test here; `python -m pytest tests/test_reliability.py -v`
reruns the table. Command-line probes run the entry points as a person would (subprocesses);
value checks run in-process through the same functions, which is the same code minus Hydra's
argument parsing (that part has its own CLI tests).
"""

from __future__ import annotations

import functools
import http.server
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, write_photo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fast_style.batch import plan_jobs
from fast_style.checks import flag, number, whole
from fast_style.errors import FastStyleError
from fast_style.image_io import MAX_PIXELS, load_photo, open_rgb, save_image
from fast_style.safe_io import RunLock, atomic_write, load_torch_file, remove_stale_temps

# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def run(script, *args, cwd, env=None, timeout=600, **kwargs):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                          check=False, text=True, cwd=cwd, env=env, timeout=timeout, **kwargs)


def error_lines(result) -> list[str]:
    """stderr lines that are not blank (Lightning may print an empty line before ours)."""
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_error(result, *words):
    assert result.returncode != 0, result.stdout[-2000:]
    lines = [line for line in error_lines(result) if not line.startswith(("Seed set", "note:"))]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def photos_folder(root: Path, count: int = 6) -> Path:
    for i in range(count):
        write_photo(root / f"p{i}.jpg", size=(72 + i, 64), seed=i)
    return root


def train_args(photos: Path, tmp: Path, *extra) -> list[str]:
    return ["debug=tiny", f"data.root={photos}", f"ckpt_dir={tmp}/ckpt", f"log_dir={tmp}/logs",
            f"hydra.run.dir={tmp}/out", *extra]


class Payload:
    """A pickle that, if unpickled, creates ``marker``: what no loader may ever do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_payload(path: Path, marker: Path, shape: str = "ckpt") -> Path:
    if shape == "ckpt":
        payload = {"state_dict": {}, "hyper_parameters": {"style_name": "x"}, "x": Payload(marker)}
    else:
        payload = {"format": "fast-style/transformer-v1", "state_dict": {}, "x": Payload(marker)}
    torch.save(payload, path)
    return path


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/www``."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real 4-step train.py run: its folder holds last.ckpt, the .pth and config.yaml."""
    tmp = tmp_path_factory.mktemp("reliability")
    photos = photos_folder(tmp / "photos")
    result = run("train.py", *train_args(photos, tmp), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, photos


# ----------------------------------------------------------------------------------------------
# 1. No file, path or URL runs code
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_payload_checkpoint_runs_nowhere(tmp_path, http_server, tiny_run):
    www, url = http_server
    marker = tmp_path / "PWNED"
    write_payload(www / "evil.ckpt", marker)
    write_payload(www / "evil.pth", marker, shape="pth")
    local_ckpt, local_pth = www / "evil.ckpt", www / "evil.pth"
    _, photos = tiny_run
    photo = photos / "p0.jpg"
    # Sanity: the server really serves the payload.
    import urllib.request
    with urllib.request.urlopen(f"{url}/evil.ckpt", timeout=10) as response:
        assert response.read() == local_ckpt.read_bytes()

    # A sweep folder whose run holds the payload as its inference file.
    multirun = tmp_path / "multirun"
    job = multirun / "0_style=starry_night"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- style=starry_night\n")
    ckpts = tmp_path / "checkpoints" / "starry_night"
    ckpts.mkdir(parents=True)
    (ckpts / "starry_night.pth").write_bytes(local_pth.read_bytes())

    probes = [
        ("train.py", *train_args(photos, tmp_path / "t1", f"ckpt_path='{url}/evil.ckpt'")),
        ("train.py", *train_args(photos, tmp_path / "t2", f"ckpt_path={local_ckpt}")),
        ("infer.py", f"ckpt={url}/evil.pth", f"input={photo}", f"output={tmp_path}/o1.jpg"),
        ("infer.py", f"ckpt={local_pth}", f"input={photo}", f"output={tmp_path}/o2.jpg"),
        ("infer.py", f"ckpt={local_ckpt}", f"input={photo}", f"output={tmp_path}/o3.jpg"),
        ("scripts/export.py", f"ckpt={local_pth}"),
        ("scripts/evaluate.py", f"ckpt={local_pth}", f"content={photo}"),
    ]
    for script, *args in probes:
        result = run(script, *args, cwd=tmp_path)
        assert not marker.exists(), f"{script} {args} ran the payload"
        assert_one_line_error(result)
        assert "Traceback" not in result.stderr
    result = run("scripts/summarize.py", str(multirun), "--judge", "1", cwd=tmp_path)
    assert not marker.exists(), "summarize.py ran the payload"
    assert "Traceback" not in result.stderr


def test_safe_loader_names_the_refused_class(tmp_path):
    marker = tmp_path / "PWNED"
    path = write_payload(tmp_path / "evil.pth", marker)
    with pytest.raises(FastStyleError, match=r"refuses \(the class (posix|os)\.system\)"):
        load_torch_file(path)
    assert not marker.exists()
    with pytest.raises(FastStyleError, match="is a URL"):
        load_torch_file("https://example.org/x.pth")


# ----------------------------------------------------------------------------------------------
# 2. Nothing half-written: atomic writes, kills during saves
# ----------------------------------------------------------------------------------------------

def test_atomic_write_replaces_a_planted_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out" / "config.yaml"
    link.parent.mkdir()
    link.symlink_to(victim)
    with atomic_write(link) as f:
        f.write(b"ours")
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and link.read_text() == "ours"


def test_atomic_write_keeps_the_old_file_on_error_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_ctrl_c_the_moment_the_temp_file_appears_still_removes_it(tmp_path, monkeypatch):
    # infer.py's Ctrl-C test signals as soon as the output folder has an entry: the signal can
    # land just after the temp file is created, before any cleanup is armed. Make it land there.
    from fast_style import safe_io
    real_close = os.close

    def interrupted_close(fd):
        real_close(fd)
        monkeypatch.setattr(safe_io.os, "close", real_close)
        raise KeyboardInterrupt

    monkeypatch.setattr(safe_io.os, "close", interrupted_close)
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "b0.png") as f:
        f.write(b"never reached")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_never_removes_a_file_already_under_its_temp_name(tmp_path, monkeypatch):
    from fast_style import safe_io
    monkeypatch.setattr(safe_io.secrets, "token_hex", lambda n: "0123456789abcdef")
    planted = tmp_path / ".a.bin.0123456789abcdef.tmp"
    planted.write_bytes(b"someone else's")
    with pytest.raises(FastStyleError, match="cannot write .*a.bin"), \
            atomic_write(tmp_path / "a.bin") as f:
        f.write(b"x")
    assert planted.read_bytes() == b"someone else's"
    assert not (tmp_path / "a.bin").exists()


def test_atomic_write_follows_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        with atomic_write(tmp_path / "shared.png") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.png").stat().st_mode & 0o777 == 0o664


def test_file_size_limit_is_an_error_not_a_truncated_image(tmp_path):
    # Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG: it must surface.
    script = ("import resource, sys, torch\n"
              "from fast_style.image_io import save_image\n"
              "from fast_style.errors import FastStyleError\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
              "try:\n"
              f"    save_image(torch.rand(3, 256, 256), {str(tmp_path / 'big.png')!r})\n"
              "except FastStyleError as e:\n"
              "    print(e); sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "File too large" in result.stdout and "ulimit" in result.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_infer_under_a_file_size_limit_reports_failure_and_leaves_nothing(tmp_path, tiny_run):
    run_dir, photos = tiny_run

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "out"
    result = run("infer.py", f"ckpt={run_dir / 'ckpt' / 'starry_night.pth'}",
                 f"input={photos}", f"output={out}", "format=png", "max_size=64",
                 cwd=tmp_path, preexec_fn=limit)
    assert result.returncode != 0
    assert "wrote" not in result.stdout
    assert "File too large" in result.stderr
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


@pytest.mark.slow
def test_training_under_a_file_size_limit_fails_in_one_line_and_leaves_no_partial_file(tmp_path):
    photos = photos_folder(tmp_path / "photos")

    def limit():  # 1 MB: the logs and config fit, a checkpoint (several MB) does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    result = run("train.py", *train_args(photos, tmp_path), cwd=tmp_path, preexec_fn=limit)
    assert_one_line_error(result, "File too large")
    ckpt = tmp_path / "ckpt"
    assert not (ckpt / "last.ckpt").exists()
    assert [p.name for p in ckpt.iterdir() if p.name.endswith(".tmp")] == []


def test_stale_temps_of_killed_writers_are_removed(tmp_path):
    (tmp_path / ".last.ckpt.a1b2c3.tmp").write_bytes(b"half")
    (tmp_path / "last.ckpt").write_bytes(b"whole")
    (tmp_path / "notes.tmp").write_bytes(b"someone else's")
    removed = remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".last.ckpt.a1b2c3.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "notes.tmp"]


def _other_filesystem() -> Path | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and os.stat(shm).st_dev != os.stat(REPO).st_dev:
        return shm
    return None


@pytest.mark.slow
def test_sigkill_during_saves_never_breaks_last_ckpt(tmp_path):
    """Kill -9 a run that saves every step, again and again; every time last.ckpt loads and
    ckpt_path=last resumes. The checkpoints live on another filesystem than $TMPDIR (/dev/shm
    where the machine has it), where Lightning's own save used to leave a 0-byte last.ckpt."""
    import shutil
    import tempfile

    other = _other_filesystem()
    base = Path(tempfile.mkdtemp(dir=other)) if other else tmp_path / "ckpts"
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    photos = photos_folder(tmp_path / "photos")
    args = train_args(photos, tmp_path, f"ckpt_dir={base}/ckpt", "trainer.max_steps=400",
                      "checkpoint_every_n_steps=1", "sample_every_n_steps=0",
                      "trainer.val_check_interval=1000", "data.image_size=16", "style.size=16")
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "TMPDIR": str(tmpdir)}
    last = base / "ckpt" / "last.ckpt"
    rng = random.Random(0)
    hits = 0
    kills = int(os.environ.get("FAST_STYLE_KILLS", "4"))  # benchmarks/reliability.md ran 20
    try:
        for attempt in range(kills):
            extra = ["ckpt_path=last"] if last.exists() else []
            proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, *extra],
                                    cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 240
            before = last.stat().st_mtime_ns if last.exists() else 0
            # Wait for a save of this process, then kill it at a random moment among its saves.
            while (not last.exists() or last.stat().st_mtime_ns == before) and proc.poll() is None:
                assert time.monotonic() < deadline, "no checkpoint was written"
                time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            time.sleep(rng.uniform(0.0, 0.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
            hits += any(p.name.startswith(".") and p.name.endswith(".tmp")
                        for p in last.parent.iterdir())
            state = torch.load(last, weights_only=True)  # whole, whatever the kill interrupted
            assert state["global_step"] >= 1, attempt
            assert list(tmpdir.iterdir()) == [], "a save left files in $TMPDIR"
        # Resumes from the last good checkpoint and finishes (stale temps are swept first).
        result = subprocess.run([sys.executable, str(REPO / "train.py"), *args, "ckpt_path=last",
                                 "trainer.max_steps=" + str(state["global_step"] + 2)],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                check=False, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert torch.load(last, weights_only=True)["global_step"] == state["global_step"] + 2
        leftovers = [p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []
        print(f"kills that landed inside a save: {hits} of {kills}")
    finally:
        if other:
            shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# 3. One run per checkpoint folder
# ----------------------------------------------------------------------------------------------

def test_run_lock_refuses_a_second_holder_and_takes_over_a_dead_ones(tmp_path):
    first = RunLock(tmp_path / "ckpt").acquire()
    with pytest.raises(FastStyleError, match=rf"another training run \(pid {os.getpid()}\)"):
        RunLock(tmp_path / "ckpt").acquire()
    first.release()
    assert not (tmp_path / "ckpt" / RunLock.NAME).exists()
    # A lock file left by a process that died (SIGKILL): its flock is gone, its pid stays.
    dies_holding_it = ("import os; from fast_style.safe_io import RunLock; "
                       f"RunLock({str(tmp_path / 'ckpt')!r}).acquire(); os._exit(0)")
    child = subprocess.run([sys.executable, "-c", dies_holding_it],
                           check=True, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0
    notes = []
    lock = RunLock(tmp_path / "ckpt").acquire(say=notes.append)
    assert notes and "took over the lock of an earlier run" in notes[0]
    lock.release()


@pytest.mark.slow
def test_two_runs_on_one_folder_the_second_refuses(tmp_path):
    photos = photos_folder(tmp_path / "photos")
    args = train_args(photos, tmp_path, "trainer.max_steps=400", "sample_every_n_steps=0",
                      "trainer.val_check_interval=1000", "data.image_size=16", "style.size=16")
    lock = tmp_path / "ckpt" / RunLock.NAME
    first = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "seed=1"],
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not lock.exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = run("train.py", *args, "seed=2", "overwrite=true", cwd=tmp_path)
        assert_one_line_error(second, "another training run", str(first.pid))
    finally:
        first.kill()
        first.wait()
    # The first one died without cleaning up: the next run takes over, with a note.
    third = run("train.py", *args, "ckpt_path=last", "trainer.max_steps=2", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "took over the lock" in third.stderr


# ----------------------------------------------------------------------------------------------
# 4-5, 8. Planted links, checkpoint fields, failed starts
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_planted_symlinks_in_the_checkpoint_folder_are_replaced_not_followed(tmp_path):
    photos = photos_folder(tmp_path / "photos")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    victims = {}
    for name in ("config.yaml", "starry_night.pth", "starry_night.pth.tmp"):
        victim = tmp_path / f"victim_{name}"
        victim.write_text("precious")
        (ckpt / name).symlink_to(victim)
        victims[name] = victim
    result = run("train.py", *train_args(photos, tmp_path, "trainer.max_steps=2"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(v.read_text() == "precious" for v in victims.values())
    assert not (ckpt / "config.yaml").is_symlink() and not (ckpt / "starry_night.pth").is_symlink()
    # Export into a planted link: the same.
    victim = tmp_path / "victim.onnx"
    victim.write_text("precious")
    (tmp_path / "model.pt").symlink_to(victim)
    exported = run("scripts/export.py", f"ckpt={ckpt / 'starry_night.pth'}", "format=torchscript",
                   f"out={tmp_path / 'model.pt'}", "check_size=64x64", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert victim.read_text() == "precious" and not (tmp_path / "model.pt").is_symlink()


@pytest.mark.slow
def test_checkpoint_fields_are_not_trusted_as_paths(tmp_path, tiny_run):
    run_dir, photos = tiny_run
    state = torch.load(run_dir / "ckpt" / "last.ckpt", weights_only=True)
    state["log_version"] = "../../somewhere"
    forged = tmp_path / "forged.ckpt"
    torch.save(state, forged)
    result = run("train.py", *train_args(photos, tmp_path, f"ckpt_path={forged}",
                                         "trainer.max_steps=6"), cwd=tmp_path)
    assert_one_line_error(result, "log_version", "not a whole number")
    assert not (tmp_path / "somewhere").exists() and not (tmp_path.parent / "somewhere").exists()


def test_huge_network_settings_in_a_tiny_file_are_refused_before_allocating(tmp_path):
    from fast_style.stylize import load_transformer

    path = tmp_path / "huge.pth"
    torch.save({"format": "fast-style/transformer-v1", "state_dict": {},
                "transformer_hparams": {"width": 1_000_000, "num_residual_blocks": 5}}, path)
    assert path.stat().st_size < 4096
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FastStyleError, match="model.width=1000000"):
        load_transformer(path)
    # ru_maxrss is in KiB on Linux: nothing near the gigabytes a 10^6-wide net would take.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 200_000


@pytest.mark.slow
def test_a_run_that_fails_to_start_leaves_the_folder_as_it_was(tmp_path, tiny_run):
    run_dir, photos = tiny_run
    ckpt = run_dir / "ckpt"
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    for bad in ("data.batch_size=0", "data.root=/nonexistent/photos"):
        result = run("train.py", *train_args(photos, run_dir, "ckpt_path=last", bad), cwd=run_dir)
        assert_one_line_error(result)
        assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before, bad


# ----------------------------------------------------------------------------------------------
# 7, 9. Bad values: one line each, before any work
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_val_count_zero_trains_and_saves_without_validation(tmp_path):
    photos = photos_folder(tmp_path / "photos")
    result = run("train.py", *train_args(photos, tmp_path, "data.val_count=0"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 4


@pytest.mark.slow
@pytest.mark.parametrize(("override", "words"), [
    ("data.batch_size=0", ["data.batch_size=0"]),
    ("data.batch_size=-3", ["data.batch_size=-3"]),
    ("data.image_size=7", ["data.image_size=7"]),
    ("data.image_size=0", ["data.image_size=0"]),
    ("data.load_size=8", ["data.load_size=8"]),  # a short side below the crop's
    ("trainer.max_steps=abc", ["trainer.max_steps='abc'"]),
    ("trainer.max_time=20min", ["trainer.max_time='20min'", "DD:HH:MM:SS"]),
    ("data.val_count=-1", ["data.val_count=-1"]),
    ("lr=-1", ["lr=-1"]),
    ("model.width=100000", ["model.width=100000"]),
    ("ckpt_path=/nonexistent.ckpt", ["not found"]),
])
def test_train_refuses_bad_values_in_one_line(tmp_path, override, words):
    photos = photos_folder(tmp_path / "photos", 3)
    result = run("train.py", *train_args(photos, tmp_path, override), cwd=tmp_path)
    assert_one_line_error(result, *words)
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.slow
def test_train_refuses_foreign_corrupt_and_inference_files_as_ckpt_path(tmp_path, tiny_run):
    run_dir, photos = tiny_run
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes((run_dir / "ckpt" / "last.ckpt").read_bytes()[:5000])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"model": torch.zeros(3)}, foreign)
    for path, words in ((corrupt, ["not a readable"]), (foreign, ["not a fast-style"]),
                        (run_dir / "ckpt" / "starry_night.pth", ["inference file"])):
        result = run("train.py", *train_args(photos, tmp_path, f"ckpt_path={path}"), cwd=tmp_path)
        assert_one_line_error(result, *words)


@pytest.mark.slow
@pytest.mark.parametrize("override", ["quality=high", "strength=lots", "max_size=big",
                                      "auto_tile_pixels=many", "tile=-5", "max_pixels=x",
                                      "device=tpu", "precision=fp8"])
def test_infer_refuses_bad_values_in_one_line(tmp_path, tiny_run, override):
    run_dir, photos = tiny_run
    out = tmp_path / "o.jpg"
    result = run("infer.py", f"ckpt={run_dir / 'ckpt' / 'starry_night.pth'}",
                 f"input={photos / 'p0.jpg'}", f"output={out}", override, cwd=tmp_path)
    assert_one_line_error(result, override.split("=")[0])
    assert not out.exists()


def test_onnx_metadata_step_that_is_not_a_number_is_ignored(tmp_path):
    import onnx

    from fast_style.export import export
    from fast_style.stylize import ONNX_FORMAT, load_model
    from fast_style.transformer_net import TransformerNet

    pth = tmp_path / "tiny.pth"
    net = TransformerNet(width=4, num_residual_blocks=1)
    torch.save({"format": "fast-style/transformer-v1", "style_name": "tiny", "global_step": 1,
                "transformer_hparams": {"width": 4, "num_residual_blocks": 1},
                "state_dict": net.state_dict()}, pth)
    result = export(pth, "onnx", tmp_path / "m.onnx", check_size=(32, 32))
    model = onnx.load(result.path)
    for entry in model.metadata_props:
        if entry.key == "global_step":
            entry.value = "../../not a number"
    assert any(e.key == "format" and e.value == ONNX_FORMAT for e in model.metadata_props)
    onnx.save(model, tmp_path / "m.onnx")
    assert load_model(tmp_path / "m.onnx", "cpu").info["global_step"] is None


@pytest.mark.slow
def test_export_to_an_existing_folder_is_one_line_and_leaves_nothing(tmp_path, tiny_run):
    run_dir, _ = tiny_run
    folder = tmp_path / "exports"
    folder.mkdir()
    result = run("scripts/export.py", f"ckpt={run_dir / 'ckpt' / 'starry_night.pth'}",
                 f"out={folder}", cwd=tmp_path)
    assert_one_line_error(result, "is a folder")
    assert list(folder.iterdir()) == [] and list(tmp_path.glob(".*tmp")) == []


@pytest.mark.slow
def test_evaluate_leaves_no_scratch_folder_in_tmpdir(tmp_path, tiny_run):
    run_dir, photos = tiny_run
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    result = run("scripts/evaluate.py", f"ckpt={run_dir / 'ckpt' / 'starry_night.pth'}",
                 f"content={photos / 'p0.jpg'}", "size=32", "baseline=1", cwd=tmp_path,
                 env={"TMPDIR": str(tmpdir)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmpdir.iterdir()) == []


def start_with_ctrl_c(args: list[str], **kwargs) -> subprocess.Popen:
    """Popen whose child has Ctrl-C's default, as in a terminal. A test run started in the
    background by a non-interactive shell ignores SIGINT; a child inherits an ignored signal,
    and Python then installs no KeyboardInterrupt handler: infer.py ran on, deaf to it (exit 0).
    A handled signal is reset to the default in the child, so handle it while starting one."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(args, **kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_sigterm_and_ctrl_c_during_infer_leave_no_partial_output(tmp_path, tiny_run):
    run_dir, _ = tiny_run
    photos = tmp_path / "big"
    for i in range(6):
        write_photo(photos / f"b{i}.png", size=(1400, 1000), seed=i)
    for sig, status in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        out = tmp_path / f"out_{sig.name}"
        proc = start_with_ctrl_c([sys.executable, str(REPO / "infer.py"),
                                  f"ckpt={run_dir / 'ckpt' / 'starry_night.pth'}",
                                  f"input={photos}", f"output={out}", "format=png",
                                  "progress=false"],
                                 cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not (out.exists() and any(out.iterdir())):  # the first photo is being written
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.005)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == status, stderr[-2000:]
        assert "Traceback" not in stderr
        assert len([line for line in stderr.splitlines() if line.strip()]) == 1, stderr
        for written in out.iterdir():  # finished photos are whole; nothing hidden remains
            assert not written.name.startswith("."), written
            with Image.open(written) as img:
                img.load()


# ----------------------------------------------------------------------------------------------
# 10-11. Decoding limits, umask, globs
# ----------------------------------------------------------------------------------------------

def test_pixel_bomb_is_refused_from_its_header(tmp_path):
    # 12000 x 12000 = 144 MP of one colour: a few KB as PNG, 430 MB as pixels.
    path = tmp_path / "bomb.png"
    Image.new("L", (12000, 12000)).save(path, optimize=True)
    assert path.stat().st_size < 200_000
    assert 12000 * 12000 > MAX_PIXELS
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FastStyleError, match="144 MP.*max_pixels"):
        load_photo(path, max_size=256)
    with pytest.raises(FastStyleError, match="144 MP"):
        open_rgb(path, 64)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000
    assert load_photo(path, max_pixels=0, max_size=64).rgb.shape == (3, 12000, 12000)


def test_max_size_is_applied_while_decoding_a_jpeg(tmp_path):
    path = tmp_path / "large.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8)
                    ).save(path, quality=80)
    # libjpeg decodes at the smallest of 1/2 .. 1/8 scale that is at least what was asked:
    # 1/8 (500x375) for 500 px, 1/4 (1000x750) for 600 px; never the 4000x3000 pixels.
    assert load_photo(path, max_size=500).rgb.shape == (3, 375, 500)
    assert load_photo(path, max_size=600).rgb.shape == (3, 750, 1000)
    assert load_photo(path).rgb.shape == (3, 3000, 4000)


def test_glob_skips_symlinked_folders_like_folder_inputs(tmp_path):
    root = tmp_path / "shots"
    write_photo(root / "a.jpg")
    (root / "sub").mkdir()
    write_photo(root / "sub" / "b.jpg")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "linked").symlink_to(root / "sub", target_is_directory=True)
    by_glob = plan_jobs(f"{root}/**/*.jpg", str(tmp_path / "out"))
    by_folder = plan_jobs(str(root), str(tmp_path / "out2"))
    assert sorted(j.source.name for j in by_glob) == ["a.jpg", "b.jpg"]
    assert sorted(j.source.name for j in by_folder) == ["a.jpg", "b.jpg"]


def test_saved_images_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_image(torch.rand(3, 8, 8), tmp_path / "x.jpg")
    finally:
        os.umask(old)
    assert (tmp_path / "x.jpg").stat().st_mode & 0o777 == 0o644


# ----------------------------------------------------------------------------------------------
# Property-based: random bytes, truncations and random values never give a traceback or a hang
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_photo_bytes(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("formats")
    out = {}
    for suffix in (".jpg", ".png", ".webp", ".bmp"):
        path = write_photo(folder / f"p{suffix}", size=(40, 32))
        out[suffix] = path.read_bytes()
    return out


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_photo_loader_on_random_bytes_and_truncations(tmp_path, real_photo_bytes, data):
    suffix = data.draw(st.sampled_from(sorted(real_photo_bytes)))
    original = real_photo_bytes[suffix]
    kind = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        blob = original[: data.draw(st.integers(0, len(original) - 1))]
    elif kind == "flip":
        blob = bytearray(original)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] = data.draw(st.integers(0, 255))
        blob = bytes(blob)
    else:
        blob = data.draw(st.binary(max_size=4096))
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(blob)
    try:
        photo = load_photo(path, max_size=64)
    except FastStyleError as e:
        assert "\n" not in str(e)
    else:
        assert photo.rgb.dtype == torch.uint8 and photo.rgb.shape[0] == 3


values = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))


@settings(max_examples=300, deadline=1000)
@given(value=values, low=st.one_of(st.none(), st.integers(-5, 5)))
def test_value_checks_return_the_type_or_one_line(value, low):
    for check in (lambda: whole("k", value, low), lambda: number("k", value, low),
                  lambda: flag("k", value)):
        try:
            result = check()
        except FastStyleError as e:
            assert str(e).startswith("k=") and "\n" not in str(e)
        else:
            assert isinstance(result, (int, float, bool))


@functools.cache
def composed_train_config():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        return compose("train", return_hydra_config=False)


@settings(max_examples=120, deadline=3000)
@given(key=st.sampled_from(["data.batch_size", "data.image_size", "data.val_count",
                            "data.num_workers", "trainer.max_steps", "lr", "loss.style_weight",
                            "model.width", "model.num_residual_blocks", "seed",
                            "checkpoint_every_n_steps", "style.size"]),
       value=values)
def test_training_config_check_on_random_values(key, value):
    import copy

    from omegaconf import open_dict

    from fast_style.checks import check_training_config

    cfg = copy.deepcopy(composed_train_config())
    with open_dict(cfg):
        section, _, name = key.rpartition(".")
        (cfg[section] if section else cfg)[name] = value
    try:
        check_training_config(cfg)
    except FastStyleError as e:
        assert key in str(e) and "\n" not in str(e)
