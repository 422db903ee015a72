"""Add styles to a trained network: ``python train.py finetune=PATH 'style=[the_scream]'``.

The new network holds the trained one's styles first, then the new ones. Its convolutions and
the old styles' scales and shifts are copied and frozen; only the new styles' rows of every
``style_scale`` / ``style_shift`` train (Dumoulin et al., 2017, section 4: a new style is a few
thousand parameters). The old rows get no gradient at all, and Adam with a zero gradient leaves
a parameter exactly as it is, so the old styles' outputs stay bit-identical.
"""

from __future__ import annotations

import torch
from torch import nn

from fast_style.errors import FastStyleError
from fast_style.transformer_net import ConditionalInstanceNorm2d, InstanceNorm2d, TransformerNet


def _norms(net: TransformerNet) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, InstanceNorm2d)]


def train_only_new_styles(net: TransformerNet, num_frozen: int) -> None:
    """Freeze everything in ``net`` but the scale/shift rows of styles ``num_frozen`` and up."""
    for name, param in net.named_parameters():
        param.requires_grad_(name.endswith(("style_scale", "style_shift")))
    for norm in _norms(net):
        for param in (norm.style_scale, norm.style_shift):
            param.register_hook(lambda grad: torch.cat([torch.zeros_like(grad[:num_frozen]),
                                                        grad[num_frozen:]]))


def trainable_parameters(net: nn.Module) -> list[nn.Parameter]:
    return [p for p in net.parameters() if p.requires_grad]


def finetune_base(path: str | None, new_names: list[str], model: dict
                  ) -> tuple[TransformerNet | None, list[str] | None, dict]:
    """For ``finetune=PATH``: the trained network, its style names (to freeze) and ``model``
    updated with its settings. ``(None, None, model)`` without a path."""
    if not path:
        return None, None, model
    from fast_style.stylize import load_transformer  # here: stylize imports this package

    base, info = load_transformer(path)
    frozen = list(info["style_names"])
    clash = sorted(set(frozen) & set(new_names))
    if clash:
        raise FastStyleError(f"{path} already holds style {clash[0]}; name the new one "
                             "differently (style.name=)")
    settings = {k: v for k, v in info["transformer_hparams"].items() if k != "num_styles"}
    return base, frozen, {**model, **settings}


def copy_trained_network(base: TransformerNet, net: TransformerNet) -> None:
    """Copy ``base`` (1 or more styles) into ``net`` (more styles, same layout): shared weights as
    they are, the base's styles into the first rows, and every new style starting from the mean
    of the base's styles (a trained look, halfway between theirs, instead of the identity)."""
    old = base.num_styles
    if net.num_styles <= old:
        raise FastStyleError(f"the network to fine-tune holds {old} styles: list new ones to add")
    base_state = base.state_dict()
    try:
        with torch.no_grad():
            for name, param in net.state_dict(keep_vars=True).items():
                if name.endswith(("style_scale", "style_shift")):
                    prefix, kind = name.rsplit(".", 1)
                    if old == 1:  # a single-style network keeps its style in weight / bias
                        rows = base_state[f"{prefix}.{'weight' if kind == 'style_scale' else 'bias'}"][None]
                    else:
                        rows = base_state[name]
                    param[:old] = rows
                    param[old:] = rows.mean(dim=0)
                else:
                    param.copy_(base_state[name])
    except (KeyError, RuntimeError) as e:
        raise FastStyleError(f"the network to fine-tune does not fit model settings "
                             f"({str(e).splitlines()[0]}); its own settings are used: leave "
                             "model.* as it was trained") from None
    assert all(isinstance(m, ConditionalInstanceNorm2d) for m in _norms(net))
