"""Many styles in one network (Dumoulin, Shlens & Kudlur, 2017, "A Learned Representation for
Artistic Style").

The network side is ``transformer_net.ConditionalInstanceNorm2d``; this package holds the rest:
- ``selection``: which styles a run trains (``python train.py 'style=[a,b,c]'``);
- ``weights``: style weights for a batch (training picks) and from ``style=`` / ``mix=`` (inference);
- ``finetune``: add styles to a trained network, training only their scales and shifts;
- ``export``: ONNX / TorchScript graphs that take the style weights as an input.
"""
