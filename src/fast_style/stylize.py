"""Inference: load a trained transform network from any checkpoint kind and stylise images."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from fast_style.callbacks import INFERENCE_FORMAT
from fast_style.errors import FastStyleError
from fast_style.transformer_net import TransformerNet

TRANSFORMER_KEYS = ("width", "num_residual_blocks", "norm", "upsample", "output_activation")


def _read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise FastStyleError(f"checkpoint {path} not found")
    try:
        # A checkpoint is untrusted input: never unpickle arbitrary objects from it.
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise FastStyleError(f"{path} holds pickled objects that weights_only loading refuses; "
                             f"only fast-style .ckpt/.pth files are accepted ({str(e).splitlines()[0]})"
                             ) from None
    except Exception as e:  # noqa: BLE001 - truncated zip, not a torch file at all, ...
        raise FastStyleError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); "
                             "pass a .ckpt or .pth written by train.py") from None
    if not isinstance(payload, dict):
        raise FastStyleError(f"{path} is not a fast-style checkpoint")
    return payload


def load_transformer(path: str | Path) -> tuple[TransformerNet, dict]:
    """Rebuild the transform net from a Lightning .ckpt or the small inference .pth.

    Returns the network (eval mode, CPU) and a small dict of facts (style name, step).
    """
    path = Path(path)
    payload = _read_checkpoint(path)
    if payload.get("format") == INFERENCE_FORMAT:
        hparams, state = payload["transformer_hparams"], payload["state_dict"]
        info = {"style_name": payload.get("style_name"), "global_step": payload.get("global_step")}
    elif "hyper_parameters" in payload and "state_dict" in payload:
        all_hparams = payload["hyper_parameters"]
        if not all(k in all_hparams for k in ("style_name", "width")):
            raise FastStyleError(f"{path} is a Lightning checkpoint of something other than "
                                 "fast-style's StyleTransferSystem")
        hparams = {k: all_hparams[k] for k in TRANSFORMER_KEYS if k in all_hparams}
        state = {k.removeprefix("transformer."): v for k, v in payload["state_dict"].items()
                 if k.startswith("transformer.")}
        info = {"style_name": all_hparams.get("style_name"), "global_step": payload.get("global_step")}
    else:
        raise FastStyleError(f"{path} is not a fast-style checkpoint (no transform-net weights)")
    net = TransformerNet(**hparams)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise FastStyleError(f"{path}: weights do not fit the network they describe "
                             f"({str(e).splitlines()[0]})") from None
    return net.eval(), info


@torch.inference_mode()
def stylize(net: TransformerNet, image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) or (B, 3, H, W) in [0, 1] -> the same shape, stylised, in [0, 1]."""
    batched = image.dim() == 4
    param = next(net.parameters())
    out = net(image.to(param.device, param.dtype) if batched else image.unsqueeze(0).to(param))
    out = out.float().clamp(0, 1)
    return out if batched else out[0]
