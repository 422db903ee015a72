"""What several styles cost: parameters per style, and training step time for 1 vs N styles.

    python scripts/benchmark_multistyle.py --styles starry_night,mosaic,candy,udnie \
        --image-size 128 --steps 6 --rounds 2 --json [trainer.precision=32-true ...]

The N-style network is trained on the same in-memory photos as the one-style network, the two
alternating (ABAB) in one process so that machine noise hits both alike; each step is timed
from batch start to batch end (forward, losses, backward, optimizer). The last line of stdout is
one JSON object. Figures: benchmarks/multistyle.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import compose_train_config, machine, step_timer

from fast_style.hardware import training_precision
from fast_style.transformer_net import ConditionalInstanceNorm2d, TransformerNet


def parameters_per_style(overrides: list[str]) -> dict:
    cfg = compose_train_config(overrides)
    settings = {k: cfg.model[k] for k in ("width", "num_residual_blocks", "norm", "upsample",
                                          "output_activation")}
    one = TransformerNet(**settings)
    two = TransformerNet(**settings, num_styles=2)
    per_style = sum(m.style_scale.shape[1] * 2 for m in two.modules()
                    if isinstance(m, ConditionalInstanceNorm2d))
    total = sum(p.numel() for p in one.parameters())
    return {"network_parameters": total, "parameters_per_style": per_style,
            "per_style_share": round(per_style / total, 5)}


def time_steps(overrides: list[str], styles: list[str], batch_size: int, image_size: int,
               steps: int, warmup: int) -> list[float]:
    import lightning as L
    from omegaconf import OmegaConf
    from torch.utils.data import DataLoader

    from fast_style.module import StyleTransferSystem
    from fast_style.styles import resolve_style_image

    cfg = compose_train_config(overrides)
    images = []
    for name in styles:
        node = OmegaConf.load(Path(__file__).resolve().parents[1] / "configs/style" / f"{name}.yaml")
        images.append(str(resolve_style_image(node.name, node.image, node.file, node.url,
                                              node.sha256)))
    one = len(styles) == 1
    system = StyleTransferSystem(style_image=images[0] if one else images,
                                 style_name=styles[0] if one else styles,
                                 style_size=cfg.style.size,
                                 **OmegaConf.to_container(cfg.model, resolve=True),
                                 **OmegaConf.to_container(cfg.loss, resolve=True), lr=cfg.lr)
    photos = torch.rand(batch_size * (warmup + steps), 3, image_size, image_size,
                        generator=torch.Generator().manual_seed(0))

    timer = step_timer()
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1,
                        precision=training_precision(cfg.trainer.precision,
                                                     cfg.trainer.accelerator),
                        max_steps=warmup + steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], limit_val_batches=0)
    trainer.fit(system, train_dataloaders=DataLoader(photos, batch_size=batch_size))
    return timer.times[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default="starry_night,mosaic,candy,udnie")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args, overrides = parser.parse_known_args()
    styles = args.styles.split(",")
    runs: dict[str, list[float]] = {"1": [], str(len(styles)): []}
    for _ in range(args.rounds):  # ABAB
        for key in runs:
            runs[key] += time_steps(overrides, styles[: int(key)], args.batch_size,
                                    args.image_size, args.steps, args.warmup)
    medians = {k: statistics.median(v) for k, v in runs.items()}
    n = str(len(styles))
    result = {"benchmark": "multistyle_step", "styles": styles, "batch_size": args.batch_size,
              "image_size": args.image_size, "rounds": args.rounds, "steps_per_round": args.steps,
              "median_step_s": {k: round(v, 4) for k, v in medians.items()},
              "ratio_n_vs_1": round(medians[n] / medians["1"], 3),
              "step_s": {k: [round(t, 3) for t in v] for k, v in runs.items()},
              **parameters_per_style(overrides), "overrides": overrides, **machine()}
    if not args.json:
        print(f"median step: 1 style {medians['1']:.3f} s, {n} styles {medians[n]:.3f} s "
              f"(x{result['ratio_n_vs_1']}); a style adds {result['parameters_per_style']} "
              f"parameters ({100 * result['per_style_share']:.2f}% of the network)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
