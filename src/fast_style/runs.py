"""Run identity and cross-process safety for sweeps and multi-process (DDP) training.

- ``run_name``: what names a run's checkpoint folder and logger run. A single run is named after
  its style (``checkpoints/<style>/``); a job of a sweep (``python train.py -m ...``) adds its
  overrides, so no two jobs write the same files. Registered as the OmegaConf resolver
  ``fast_style.run_name`` when fast_style is imported, so anything that reads a run's saved
  config back (scripts/summarize.py) resolves the same name.
- ``resumed_tensorboard_run``: where a resumed run's TensorBoard logging goes on.
- ``cache_lock``: an inter-process lock (``fcntl.flock``) around filling a cache entry, so DDP
  ranks and parallel sweep jobs download or convert once and the others then read the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, read_write

from fast_style.errors import FastStyleError
from fast_style.safe_io import is_url, load_torch_file


def run_name(name: str, mode=None, override_dirname: str | None = None) -> str:
    """``name`` for a single run; ``name/<override_dirname>`` for a job of a multirun.

    ``mode`` is Hydra's run mode (``${hydra:mode}``: the RunMode enum inside a run, its name when a
    saved hydra.yaml is read back). ``override_dirname`` is ``${hydra:job.override_dirname}``:
    the job's overrides without the keys configs/train.yaml excludes (those that do not change
    what is trained: ckpt_path, devices, ...). A ``/`` in a value (a path) becomes ``_`` so that
    the name stays one folder.
    """
    if str(getattr(mode, "name", mode)) != "MULTIRUN" or not override_dirname:
        return str(name)
    return f"{name}/{one_folder(override_dirname)}"


def one_folder(name: str) -> str:
    """``name`` usable as one folder: a ``/`` (a path in an override) becomes ``_``."""
    return str(name).replace("/", "_")


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("fast_style.run_name", run_name, replace=True)
    # hydra.sweep.subdir in configs/train.yaml: one folder per sweep job, whatever its overrides.
    OmegaConf.register_new_resolver("fast_style.one_folder", one_folder, replace=True)
    # ${fast_style.styles:...}: a multi-style run is named after all its styles (a+b+c).
    OmegaConf.register_new_resolver("fast_style.styles", _styles_label, replace=True)


def _styles_label(last_name: str, extra_styles=None) -> str:
    from fast_style.multistyle.selection import styles_label

    return styles_label(last_name, extra_styles)


@contextlib.contextmanager
def sweep_job(cfg: DictConfig) -> Iterator[None]:
    """Run one job of a sweep so that it can use several processes (DDP) as a single run does.

    Lightning starts DDP ranks 1..N-1 by re-running ``sys.argv`` with
    ``hydra.run.dir=<hydra.run.dir>`` (lightning/fabric/strategies/launchers/subprocess_script.py).
    In a sweep, sys.argv is the whole sweep (``-m``, comma lists): every rank would start a sweep
    of its own. So, for the job, the arguments become its own overrides plus its run name (the
    ranks run as single runs, which would name themselves after the style alone) and the run
    directory becomes the job's folder. After the job, the environment variables Lightning set
    for its ranks (LOCAL_RANK, MASTER_PORT, ...) and the process group go, or the next job of the
    sweep (same process) would take itself for a rank of the last one. Joblib workers are no
    script that can be re-run: DDP there is refused. Outside a sweep this does nothing.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        yield
        return
    hydra_cfg = HydraConfig.get()
    ddp = str(cfg.trainer.get("strategy", "")).startswith("ddp")
    if ddp and "joblib" in str(hydra_cfg.launcher.get("_target_", "")):
        raise FastStyleError("DDP cannot run inside joblib workers: sweep DDP runs with the "
                             "default launcher (one job after the other) or hydra/launcher=slurm")
    argv, environ = sys.argv, dict(os.environ)
    quoted = str(cfg.run_name).replace("'", "\\'")
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task, f"run_name='{quoted}'"]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = argv
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def cache_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<target>.lock`` (blocking) while the caller fills ``target``.

    Callers check for ``target`` again once they hold the lock: the process that waited finds
    the file that the first one wrote. The lock file stays (removing it would race); the lock
    itself is released by the kernel even if the holder dies.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.with_name(f"{target.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_resume_checkpoint(ckpt_path: str | None, ckpt_dir: Path) -> tuple[str | None, dict | None]:
    """The checkpoint a run resumes from, checked before Lightning is given it: (path, contents).

    ``ckpt_path``: None (a fresh run), ``last`` (``<ckpt_dir>/last.ckpt``; a fresh run when there
    is none yet, so a requeued job can always say ckpt_path=last) or a local ``.ckpt`` file.
    URLs are refused and the file is read as weights only (safe_io.load_torch_file); it must be a
    fast-style training checkpoint whose fields have the types we wrote, since some of them
    (the logger version) become paths and steps.
    """
    if ckpt_path is None:
        return None, None
    if is_url(ckpt_path):  # before Path(), which would fold "http://" into "http:/"
        raise FastStyleError(f"ckpt_path={ckpt_path} is a URL: download the file yourself and "
                             "pass its local path (checkpoints are only read from disk, as "
                             "weights)")
    path = ckpt_dir / "last.ckpt" if str(ckpt_path) == "last" else Path(str(ckpt_path))
    if str(ckpt_path) == "last" and not path.exists():
        return None, None
    state = load_torch_file(path, what="ckpt_path",
                            hint="pass a .ckpt that train.py wrote, or ckpt_path=last", mmap=True)
    if isinstance(state, dict) and str(state.get("format", "")).startswith("fast-style/"):
        raise FastStyleError(f"{path} is a small inference file (weights only, no optimizer "
                             "state): resume needs the .ckpt beside it, e.g. ckpt_path=last")
    hparams = state.get("hyper_parameters") if isinstance(state, dict) else None
    if not isinstance(hparams, dict) or "style_name" not in hparams or "state_dict" not in state:
        raise FastStyleError(f"{path} is not a fast-style training checkpoint: pass a .ckpt that "
                             "train.py wrote, or start fresh without ckpt_path")
    step, version = state.get("global_step"), state.get("log_version")
    for key, value in (("global_step", step), ("log_version", version)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise FastStyleError(f"{path}: {key} {value!r} is not a whole number; the file was "
                                 "not written by train.py")
    return str(path), state


def resumed_tensorboard_run(state: dict | None) -> dict:
    """TensorBoardLogger arguments that make a resumed run go on in the interrupted one's run.

    Every checkpoint records its logger version (callbacks.Checkpoint). Writing on in that version
    shows one run in TensorBoard whose curves continue, not a version_N per restart, and
    ``purge_step`` (torch's SummaryWriter) hides what the interrupted run logged after the
    checkpoint's step, which the resumed run logs again. Empty (a new version, Lightning's
    default) for a fresh run or a checkpoint without a version. ``state`` comes from
    read_resume_checkpoint, which checked that both are whole numbers.
    """
    if not state or state.get("log_version") is None:
        return {}
    return {"version": state["log_version"], "purge_step": int(state.get("global_step") or 0)}
