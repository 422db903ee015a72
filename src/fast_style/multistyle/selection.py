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


def _entry(node: DictConfig) -> StyleEntry:
    image = resolve_style_image(node.name, node.image, node.file, node.url, node.sha256)
    return StyleEntry(str(node.name), image, node.size)


def style_entries(cfg: DictConfig, overrides: list[str] | None = None) -> list[StyleEntry]:
    """The styles to train, in order: the selected options, then ``extra_styles``."""
    options = selected_options(command_line_overrides() if overrides is None else overrides)
    nodes = []
    for name in (options or [])[:-1]:
        path = STYLE_CONFIGS / f"{name}.yaml"
        if not path.is_file():  # Hydra has checked the names already; a moved file is ours
            raise FastStyleError(f"style {name}: {path} not found")
        nodes.append(OmegaConf.load(path))
    nodes.append(cfg.style)
    entries = [_entry(node) for node in nodes]
    for name, image in (cfg.get("extra_styles") or {}).items():
        entries.append(StyleEntry(str(name), resolve_style_image(str(name), str(image)),
                                  cfg.style.size))
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FastStyleError(f"style {duplicates[0]} is listed twice; every style needs its own "
                             "name (style.name=, extra_styles.<name>=)")
    return entries


def styles_label(last_name: str, extra_styles=None) -> str:
    """The run's name for its styles: ``a+b+c`` for several (resolver ``fast_style.styles``)."""
    options = selected_options(command_line_overrides()) or [last_name]
    return "+".join([*options[:-1], str(last_name), *map(str, extra_styles or {})])
