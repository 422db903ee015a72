"""Style weights: which style each training photo gets, and ``style=`` / ``mix=`` at inference.

A network of N styles is conditioned by a (B, N) matrix of style weights (see
transformer_net.ConditionalInstanceNorm2d): one-hot rows pick a style, other rows blend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fast_style.errors import FastStyleError


def training_style_ids(batch_number: int, batch_size: int, num_styles: int, rank: int = 0,
                       world_size: int = 1) -> torch.Tensor:
    """The style of every photo of one batch: styles in turn over the run's photo stream.

    Photo j of batch k on rank r is the ``((k * world_size + r) * batch_size + j)``-th photo the
    run trains on, and gets that number modulo ``num_styles``. So every batch mixes styles,
    every style gets the same share of photos and steps, the photos a style sees are drawn
    afresh each epoch (EpochSampler's shuffle), and the assignment is a function of the batch
    number alone: a resumed run gives the same photo the same style.
    """
    first = (batch_number * world_size + rank) * batch_size
    return torch.arange(first, first + batch_size) % num_styles


def one_hot(ids: torch.Tensor, num_styles: int) -> torch.Tensor:
    return F.one_hot(ids, num_styles).float()


def unknown_style(name: str, known: list[str]) -> FastStyleError:
    return FastStyleError(f"style {name!r} is not in this network; it knows "
                          f"{', '.join(known)}")


def parse_mix(text: str, known: list[str]) -> dict[str, float]:
    """``starry_night:0.7,mosaic:0.3`` -> {name: weight}, normalised to sum to 1.

    A name without a weight counts 1 (``mix=a,b`` is half and half).
    """
    weights: dict[str, float] = {}
    for part in str(text).split(","):
        name, _, value = part.strip().partition(":")
        name = name.strip()
        if not name:
            raise FastStyleError(f"mix={text}: write it as name:weight,name:weight "
                                 "(e.g. mix=starry_night:0.7,mosaic:0.3)")
        if name not in known:
            raise unknown_style(name, known)
        try:
            weight = float(value) if value.strip() else 1.0
        except ValueError:
            raise FastStyleError(f"mix={text}: weight {value!r} of {name} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise FastStyleError(f"mix={text}: weight {value} of {name} must be a finite number "
                                 ">= 0")
        weights[name] = weights.get(name, 0.0) + weight
    total = sum(weights.values())
    if total <= 0:
        raise FastStyleError(f"mix={text}: the weights add up to 0; give at least one a weight > 0")
    return {name: w / total for name, w in weights.items()}


def inference_weights(known: list[str], style: str | None = None,
                      mix: str | None = None) -> tuple[torch.Tensor | None, str]:
    """The (1, N) style weights for ``style=`` or ``mix=`` and a label for them.

    A one-style network takes neither (None); a multi-style one needs exactly one of them.
    """
    if style and mix:
        raise FastStyleError("pass style=NAME or mix=NAME:WEIGHT,..., not both")
    if len(known) <= 1:
        if mix or (style and style not in known):
            name = style or next(iter(parse_mix(mix, known)), "")
            if name not in known:
                raise unknown_style(name, known)
        return None, known[0] if known else "style"
    if not style and not mix:
        raise FastStyleError(f"this network holds {len(known)} styles: pick one with style=NAME "
                             f"or blend with mix=NAME:WEIGHT,... ({', '.join(known)})")
    chosen = {style: 1.0} if style else parse_mix(mix, known)
    if style and style not in known:
        raise unknown_style(style, known)
    weights = torch.tensor([[chosen.get(name, 0.0) for name in known]])
    label = style or ",".join(f"{n}:{w:.2g}" for n, w in chosen.items())
    return weights, label


def infer_arguments(argv: list[str]) -> list[str]:
    """infer.py's ``style=NAME`` and ``mix=a:0.7,b:0.3`` rewritten into Hydra's syntax.

    Hydra would read ``style=`` as a choice of the ``style`` config group (configs/style/, shared
    with train.py) and a comma as a list, so these two become quoted plain values:
    ``style_name='NAME'`` and ``mix='a:0.7,b:0.3'`` (the keys of configs/infer.yaml).
    """
    rewritten = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in ("style", "mix") and not value.startswith(("'", '"')):
            quoted = value.replace("\\", "\\\\").replace("'", "\\'")
            arg = f"{'style_name' if key == 'style' else key}='{quoted}'"
        rewritten.append(arg)
    return rewritten
