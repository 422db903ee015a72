"""Export a trained network for other runtimes, with dynamic height and width, checked for parity.

    python scripts/export.py ckpt=checkpoints/starry_night/starry_night.pth format=onnx
    python scripts/export.py ckpt=... format=torchscript out=starry_night.pt check_size=1080x1920

Writes <ckpt>.onnx (run it with onnxruntime, or `python infer.py ckpt=<file>.onnx ...`) or
<ckpt>.pt (torch.jit.load). Exit status 0 only when the exported file matches PyTorch within
1e-3 (max abs error on [0, 1] pixels) on a random photo-sized image.
"""

import sys

from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.export import CHECK_SIZE, FORMATS, TOLERANCE, export

USAGE = ("usage: python scripts/export.py ckpt=CHECKPOINT [format=onnx|torchscript] [out=FILE] "
         "[check_size=HxW]")


def parse(argv: list[str]) -> dict:
    opts = {"ckpt": None, "format": "onnx", "out": None,
            "check_size": f"{CHECK_SIZE[0]}x{CHECK_SIZE[1]}"}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in opts:
            raise FastStyleError(f"unknown argument {arg!r}; {USAGE}")
        opts[key] = value
    if not opts["ckpt"]:
        raise FastStyleError(USAGE)
    if opts["format"] not in FORMATS:
        raise FastStyleError(f"format={opts['format']}: choose one of {', '.join(FORMATS)}")
    try:
        h, w = (int(v) for v in opts["check_size"].lower().split("x"))
    except ValueError:
        raise FastStyleError(f"check_size={opts['check_size']} must look like 768x1024") from None
    opts["check_size"] = (h, w)
    return opts


def main(argv: list[str]) -> int:
    with exit_on_user_error():
        opts = parse(argv)
        result = export(opts["ckpt"], opts["format"], opts["out"], opts["check_size"])
    h, w = result.check_size
    verdict = "parity OK" if result.ok else "PARITY FAILED"
    print(f"wrote {result.path} ({opts['format']}, dynamic height and width, "
          f"{result.seconds:.1f} s); {verdict}: max abs error vs PyTorch fp32 "
          f"{result.max_abs_error:.2e} (limit {TOLERANCE:g}) on a random {h}x{w} image")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
