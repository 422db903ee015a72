"""Stylise a photo with a trained network: python infer.py ckpt=PATH input=photo.jpg output=out.jpg"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.image_io import load_image, save_image, to_tensor
from fast_style.stylize import load_transformer, stylize


def infer(cfg: DictConfig) -> None:
    if not cfg.ckpt or not cfg.input:
        raise FastStyleError("usage: python infer.py ckpt=CHECKPOINT input=PHOTO [output=OUT]")
    source = Path(cfg.input)
    output = Path(cfg.output) if cfg.output else source.with_name(f"{source.stem}_stylised.jpg")
    if output.resolve() == source.resolve():
        raise FastStyleError(f"output {output} would overwrite the input: choose another output=")
    net, info = load_transformer(cfg.ckpt)
    image = to_tensor(load_image(source))
    save_image(stylize(net, image), output)
    print(f"wrote {output} ({info['style_name']}, step {info['global_step']})")


@hydra.main(version_base="1.3", config_path="configs", config_name="infer")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        infer(cfg)


if __name__ == "__main__":
    main()
