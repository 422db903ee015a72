"""Reading a Hydra multirun back: each run's overrides, resolved config and final metrics.

A multirun folder holds one job folder per run (``<num>_<override_dirname>``, nested where an
override's value holds a ``/``), each with ``.hydra/{overrides,config,hydra}.yaml``. Metrics come
from the run's logger: TensorBoard event files or the CSV logger's metrics.csv, found through the
run's own (resolved) ``logger.save_dir`` and ``logger.name``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fast_style.errors import FastStyleError
from fast_style.multistyle.selection import styles_label
from fast_style.runs import register_resolvers

# Final values worth comparing; every val/* metric the run logged is kept as well.
REPORTED_PREFIXES = ("val/", "final/")
TRAIN_METRICS = ("train/loss",)


@dataclass
class Run:
    directory: Path
    num: int
    overrides: dict[str, str]
    config: dict = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    step: int | None = None
    log_dir: Path | None = None
    problem: str | None = None  # why metrics (or the config) could not be read

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.overrides.items()) or "(defaults)"


def find_job_dirs(multirun: str | Path) -> list[Path]:
    root = Path(multirun).expanduser()
    if not root.is_dir():
        raise FastStyleError(f"{root} is not a folder: pass a Hydra multirun folder "
                             "(multirun/<date>_<time>)")
    jobs = sorted(p.parent.parent for p in root.rglob(".hydra/overrides.yaml"))
    if not jobs:
        raise FastStyleError(f"no runs under {root} (no .hydra/overrides.yaml): pass the folder "
                             "that `python train.py -m ...` printed")
    return jobs


def parse_overrides(lines: Sequence[str]) -> dict[str, str]:
    """['loss.style_weight=2', '+x=1', '~y'] -> {'loss.style_weight': '2', 'x': '1',
    'y': '(removed)'}."""
    out = {}
    for line in lines:
        key, _, value = str(line).partition("=")
        # Hydra stores interpolations escaped (\$\{hydra\:...\}): show them as they were typed
        out[key.lstrip("+~")] = re.sub(r"\\(.)", r"\1", value) if _ else "(removed)"
    return out


def resolve_job_config(job_dir: Path) -> tuple[dict, DictConfig]:
    """The run's config with its interpolations resolved as they were inside the run.

    ``${hydra:...}`` reads Hydra's state, which a finished run no longer has: it is answered from
    the run's own hydra.yaml, with ``runtime.output_dir`` being the job folder itself (which stays
    true when a multirun folder is moved or copied elsewhere).
    """
    hydra_node = OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra
    cfg = OmegaConf.load(job_dir / ".hydra" / "config.yaml")

    def hydra_value(key: str):
        if key == "runtime.output_dir":
            return str(job_dir)
        return OmegaConf.select(hydra_node, key)

    def styles(last_name: str, extra_styles=None) -> str:  # a+b+c from the job's own list
        return styles_label(last_name, extra_styles, list(hydra_node.overrides.task))

    OmegaConf.register_new_resolver("hydra", hydra_value, replace=True)
    OmegaConf.register_new_resolver("fast_style.styles", styles, replace=True)
    try:
        return OmegaConf.to_container(cfg, resolve=True), hydra_node
    finally:
        register_resolvers()  # this process's own runs name their styles from its command line


def _absolute(path: str, job_dir: Path, hydra_node: DictConfig) -> Path:
    """A relative path in a run's config is relative to where the run worked."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    base = job_dir if hydra_node.job.get("chdir") else Path(hydra_node.runtime.cwd)
    return base / p


def load_run(job_dir: Path) -> Run:
    overrides = parse_overrides(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))
    run = Run(job_dir, -1, overrides)
    try:
        run.config, hydra_node = resolve_job_config(job_dir)
    except Exception as e:  # noqa: BLE001 - any unreadable or unresolvable config is reported
        run.problem = f"config unreadable: {str(e).splitlines()[0]}"
        return run
    run.num = int(hydra_node.job.get("num", -1))
    ckpt_dirs = set()  # as the run spelled it, and as an absolute path
    for key in ("ckpt_dir", "log_dir"):
        if isinstance(run.config.get(key), str):
            if key == "ckpt_dir":
                ckpt_dirs.add(run.config[key])
            run.config[key] = str(_absolute(run.config[key], job_dir, hydra_node))
            if key == "ckpt_dir":
                ckpt_dirs.add(run.config[key])
    logger = run.config.get("logger") or {}
    if not logger.get("save_dir"):
        run.problem = "the run had no logger (logger=null)"
        return run
    logs = _absolute(str(logger["save_dir"]), job_dir, hydra_node) / str(logger.get("name") or "")
    version = _pick_version(logs, ckpt_dirs)
    if isinstance(version, str):
        run.problem = version
        return run
    run.log_dir = version
    run.metrics, run.step = read_final_metrics(version)
    if not run.metrics:
        run.problem = f"no metrics logged in {version}"
    return run


def _pick_version(logs: Path, ckpt_dirs: set[str]) -> Path | str:
    """The run's version_N folder, or why there is none.

    Sweep runs that share a log folder get version_0, version_1, ... in launch order; the run's
    own one is the folder whose logged hyperparameters name its ckpt_dir (train.py logs its whole
    config at the end of training).
    """
    versions = sorted((p for p in logs.glob("version_*") if p.is_dir()),
                      key=lambda p: int(p.name.removeprefix("version_"))
                      if p.name.removeprefix("version_").isdigit() else -1)
    if not versions:
        return f"no logs in {logs}"
    if len(versions) == 1:
        return versions[0]
    mine = [v for v in versions if _logged_ckpt_dir(v) in ckpt_dirs]
    if mine and len(mine) < len(versions):
        return mine[-1]  # a resumed run adds a version; its last one holds the final metrics
    return (f"{len(versions)} runs share {logs} and their logs cannot be told apart: give each run "
            "its own log_dir (e.g. log_dir='${hydra:runtime.output_dir}/logs')")


def _logged_ckpt_dir(version: Path) -> str | None:
    """The ckpt_dir among a log version's hyperparameters: TensorBoard's HParams record, or the
    CSV logger's hparams.yaml (TensorBoard's hparams.yaml keeps only the start-of-fit ones)."""
    if any(version.glob("events.out.tfevents.*")):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.plugins.hparams import plugin_data_pb2

        acc = EventAccumulator(str(version), size_guidance={"scalars": 1}).Reload()
        content = acc.PluginTagToContent("hparams").get("_hparams_/session_start_info")
        if content is None:
            return None
        session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        value = session.hparams.get("ckpt_dir")
        return None if value is None else value.string_value
    if (version / "hparams.yaml").is_file():
        value = OmegaConf.select(OmegaConf.load(version / "hparams.yaml"), "ckpt_dir")
        return None if value is None else str(value)
    return None


def read_final_metrics(log_dir: Path) -> tuple[dict[str, float], int | None]:
    """The last logged value of every val/*, final/* and train/loss metric, and the last step."""
    events = sorted(log_dir.glob("events.out.tfevents.*"))
    if events:
        return _tensorboard_metrics(log_dir)
    if (log_dir / "metrics.csv").is_file():
        return _csv_metrics(log_dir / "metrics.csv")
    return {}, None


def _wanted(tag: str) -> bool:
    return tag.startswith(REPORTED_PREFIXES) or tag in TRAIN_METRICS


def _tensorboard_metrics(log_dir: Path) -> tuple[dict[str, float], int | None]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}).Reload()
    metrics, last_step = {}, None
    for tag in acc.Tags()["scalars"]:
        if not _wanted(tag):
            continue
        last = max(acc.Scalars(tag), key=lambda e: (e.step, e.wall_time))
        metrics[tag] = float(last.value)
        if tag.startswith("val/"):
            last_step = max(last_step or 0, int(last.step))
    return metrics, last_step


def _csv_metrics(path: Path) -> tuple[dict[str, float], int | None]:
    metrics: dict[str, tuple[int, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                later = key not in metrics or step >= metrics[key][0]
                if key and value not in (None, "") and _wanted(key) and later:
                    metrics[key] = (step, float(value))
    val_steps = [s for k, (s, _) in metrics.items() if k.startswith("val/")]
    return {k: v for k, (_, v) in metrics.items()}, max(val_steps) if val_steps else None


def load_runs(multirun: str | Path) -> list[Run]:
    runs = [load_run(job) for job in find_job_dirs(multirun)]
    return sorted(runs, key=lambda r: (r.num, str(r.directory)))


def varying_overrides(runs: Sequence[Run]) -> list[str]:
    """Override keys whose values differ between runs (or that some runs lack)."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.overrides if k not in keys]
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def sort_runs(runs: Sequence[Run], metric: str, descending: bool = False) -> list[Run]:
    """By ``metric``; runs without it (or with NaN) last, in their launch order."""
    def key(run: Run):
        value = run.metrics.get(metric)
        missing = value is None or math.isnan(value)
        return (missing, 0.0 if missing else (-value if descending else value), run.num)
    return sorted(runs, key=key)


def metric_columns(runs: Sequence[Run], first: str) -> list[str]:
    names = {name for run in runs for name in run.metrics}
    if first not in names:
        available = ", ".join(sorted(names)) or "none"
        raise FastStyleError(f"no run logged {first!r} (available: {available}): "
                             "choose one with --sort")
    # final/* repeat the last val/* values (for TensorBoard's HParams tab): not shown twice
    shown = sorted((n for n in names if not n.startswith("final/") and n != first),
                   key=lambda n: (not n.startswith("judge/"), n))
    return [first, *shown]
