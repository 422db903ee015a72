"""Which styles a run trains.

``python train.py 'style=[starry_night,mosaic,candy]'`` selects several options of the ``style``
config group. Hydra merges a list's options into the one ``style`` node (the last option wins),
and does not record list selections in ``hydra.runtime.choices``, so the list is read back from
the command line's overrides with Hydra's own parser. Every option but the last is then loaded
from its file in configs/style/; the last one is ``cfg.style`` itself, with the command line's
``style.*`` overrides applied: ``'style=[mosaic,custom]' style.image=PATH style.name=mine``.
Further images of one's own come in through ``extra_styles`` (name: image path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fast_style.errors import FastStyleError
from fast_style.styles import resolve_style_image

STYLE_CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "style"


@dataclass(frozen=True)
class StyleEntry:
    name: str
    image: Path
    size: int | None


def selected_options(overrides: list[str]) -> list[str] | None:
    """The option names of a ``style=[a,b,...]`` override (the last one given), else None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    chosen = None
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.key_or_group == "style" and not override.is_delete():
            value = override.value()
            chosen = [str(v) for v in value] if isinstance(value, list) else None
    return chosen


def command_line_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def style_nodes(cfg: DictConfig, overrides: list[str] | None = None) -> list[DictConfig]:
    """The style configs to train, in order (no file is read but configs/style/*.yaml): the
    selected options, then ``extra_styles``. Each style's painting size is its own config's
    ``size``; a ``style.size`` set elsewhere (``style.size=N`` on the command line, debug=tiny,
    an experiment) sets it for every style."""
    overrides = command_line_overrides() if overrides is None else overrides
    options = selected_options(overrides)
    nodes = []
    for name in (options or [])[:-1]:
        path = STYLE_CONFIGS / f"{name}.yaml"
        if not path.is_file():  # Hydra has checked the names already; a moved file is ours
            raise FastStyleError(f"style {name}: {path} not found")
        nodes.append(OmegaConf.load(path))
    nodes.append(cfg.style)
    for name, image in (cfg.get("extra_styles") or {}).items():
        nodes.append(OmegaConf.create({"name": str(name), "image": str(image), "file": None,
                                       "url": None, "sha256": None, "size": cfg.style.size}))
    # A size set anywhere but the last style's own file (the command line, debug=tiny, an
    # experiment) is meant for the run: every style gets it.
    last_file = STYLE_CONFIGS / f"{options[-1]}.yaml" if options else None
    own_size = OmegaConf.load(last_file).get("size") if last_file and last_file.is_file() else None
    if options and cfg.style.size != own_size:
        for node in nodes:
            node.size = cfg.style.size
    names = [str(n.name) for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FastStyleError(f"style {duplicates[0]} is listed twice; every style needs its own "
                             "name (style.name=, extra_styles.<name>=)")
    return nodes


def style_entries(cfg: DictConfig, overrides: list[str] | None = None) -> list[StyleEntry]:
    """The styles to train, in order, with their paintings found (or downloaded)."""
    return [StyleEntry(str(n.name), resolve_style_image(n.name, n.image, n.file, n.url, n.sha256),
                       n.size) for n in style_nodes(cfg, overrides)]


def recorded_style_settings(nodes: list[DictConfig]) -> dict:
    """``style_name`` and ``style_size`` as the training system records them: plain values for
    one style (today's checkpoints), lists in style order for several."""
    names, sizes = [str(n.name) for n in nodes], [n.size for n in nodes]
    if len(nodes) == 1:
        return {"style_name": names[0], "style_size": sizes[0]}
    return {"style_name": names, "style_size": sizes}


def styles_label(last_name: str, extra_styles=None, overrides: list[str] | None = None) -> str:
    """The run's name for its styles: ``a+b+c`` for several (resolver ``fast_style.styles``).
    ``overrides``: a finished run's command line (default: this run's)."""
    options = selected_options(command_line_overrides() if overrides is None else overrides)
    options = options or [last_name]
    return "+".join([*options[:-1], str(last_name), *map(str, extra_styles or {})])
