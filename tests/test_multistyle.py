"""Many styles in one network: style selection, weights, fine-tuning, inference files, export."""

import pytest
import torch
from conftest import REPO, train_config
from test_multistyle_net import random_multi_style_net

from fast_style.errors import FastStyleError
from fast_style.multistyle.finetune import (
    copy_trained_network,
    train_only_new_styles,
    trainable_parameters,
)
from fast_style.multistyle.selection import (
    recorded_style_settings,
    selected_options,
    style_entries,
    style_nodes,
)
from fast_style.multistyle.weights import (
    infer_arguments,
    inference_weights,
    parse_mix,
    training_style_ids,
)
from fast_style.stylize import (
    INFERENCE_FORMAT_MULTI,
    StyleOptions,
    load_model,
    load_transformer,
    stylize_photo,
)
from fast_style.transformer_net import TransformerNet

NAMES = ["starry_night", "mosaic", "candy"]


def save_multi(path, net, names=NAMES):
    torch.save({"format": INFERENCE_FORMAT_MULTI, "style_name": "+".join(names),
                "style_names": names, "global_step": 3, "state_dict": net.state_dict(),
                "transformer_hparams": {"width": 8, "num_residual_blocks": 2,
                                        "num_styles": len(names)}}, path)
    return path


def test_a_list_of_styles_selects_each_with_its_own_image(tmp_path):
    painting = tmp_path / "mine.jpg"
    painting.write_bytes((REPO.parent / "shared/data/styles/candy.jpg").read_bytes()
                         if (REPO.parent / "shared/data/styles/candy.jpg").exists() else b"")
    overrides = ["style=[starry_night,mosaic,custom]", f"style.image={painting}",
                 "style.name=mine", f"+extra_styles={{other: {painting}}}"]
    cfg = train_config(overrides)
    entries = style_entries(cfg, overrides)
    assert [e.name for e in entries] == ["starry_night", "mosaic", "mine", "other"]
    assert entries[0].image.name == "starry_night.jpg" and entries[2].image == painting
    assert selected_options(["style=mosaic"]) is None
    cfg = train_config(["style=[mosaic,mosaic]"])
    with pytest.raises(FastStyleError, match="listed twice"):
        style_entries(cfg, ["style=[mosaic,mosaic]"])


def test_each_style_keeps_its_painting_size_and_the_command_line_sets_all(tmp_path):
    from fast_style.image_io import save_image
    from fast_style.module import StyleTransferSystem

    painting = save_image(torch.rand(3, 40, 60), tmp_path / "mine.png")
    overrides = ["style=[starry_night,custom]", f"style.image={painting}", "style.name=mine"]

    def sizes(*extra):
        cfg = train_config([*overrides, *extra])
        return [n.size for n in style_nodes(cfg, [*overrides, *extra])]

    assert sizes() == [256, 256]  # each its own config's size
    assert sizes("style.size=48") == [48, 48]  # set for the run: every style
    assert sizes("debug=tiny") == [64, 64]  # (debug=tiny's own style.size)
    cfg = train_config(["style=[mosaic,candy]"])
    assert recorded_style_settings(style_nodes(cfg, ["style=[mosaic,candy]"])) == {
        "style_name": ["mosaic", "candy"], "style_size": [256, 256]}

    # The system computes each style's Grams at that style's own size.
    common = {"width": 4, "num_residual_blocks": 0, "vgg_weights": "random"}
    torch.manual_seed(0)
    both = StyleTransferSystem([str(painting), str(painting)], ["a", "b"], [32, 60], **common)
    for index, size in enumerate((32, 60)):
        torch.manual_seed(0)
        alone = StyleTransferSystem(str(painting), "a", size, **common)
        for layer, gram in both.style_grams.items():
            torch.testing.assert_close(gram[index], alone.style_grams[layer][0])
    assert not torch.equal(both.style_grams["relu1_2"][0], both.style_grams["relu1_2"][1])


def test_every_batch_mixes_styles_evenly_and_repeatably():
    ids = torch.cat([training_style_ids(k, 4, 3) for k in range(6)])
    assert torch.bincount(ids).tolist() == [8, 8, 8]
    assert training_style_ids(0, 4, 3).tolist() == [0, 1, 2, 0]
    assert training_style_ids(1, 4, 3).tolist() == [1, 2, 0, 1]
    # Two DDP ranks continue one stream: rank 1's batch follows rank 0's.
    assert training_style_ids(0, 2, 3, rank=1, world_size=2).tolist() == [2, 0]


def test_mix_weights_are_normalised_and_unknown_names_list_the_known():
    assert parse_mix("starry_night:0.7,mosaic:0.3", NAMES) == pytest.approx(
        {"starry_night": 0.7, "mosaic": 0.3})
    assert parse_mix("mosaic:2, candy:2", NAMES) == {"mosaic": 0.5, "candy": 0.5}
    weights, label = inference_weights(NAMES, mix="candy:3,starry_night:1")
    assert weights.tolist() == [[0.25, 0.0, 0.75]] and "candy" in label
    assert inference_weights(NAMES, style="mosaic")[0].tolist() == [[0.0, 1.0, 0.0]]
    with pytest.raises(FastStyleError, match="it knows starry_night, mosaic, candy") as e:
        inference_weights(NAMES, style="wave")
    assert "\n" not in str(e.value)
    for bad in ("mosaic:-1", "mosaic:x", "mosaic:0", ":1"):
        with pytest.raises(FastStyleError, match="mix="):
            parse_mix(bad, NAMES)
    with pytest.raises(FastStyleError, match="pick one with style=NAME"):
        inference_weights(NAMES)
    assert inference_weights(["starry_night"])[0] is None  # one style: nothing to pick
    assert infer_arguments(["infer.py", "mix=a:0.7,b:0.3", "style=x", "ckpt=c"]) == [
        "infer.py", "mix='a:0.7,b:0.3'", "style_name='x'", "ckpt=c"]


@pytest.mark.parametrize("old_styles", [1, 2])
def test_finetuning_leaves_the_old_styles_bit_identical(old_styles):
    if old_styles == 1:
        torch.manual_seed(0)
        base = TransformerNet(width=8, num_residual_blocks=2)
    else:
        base = random_multi_style_net(old_styles)
    net = TransformerNet(width=8, num_residual_blocks=2, num_styles=old_styles + 1)
    copy_trained_network(base, net)
    train_only_new_styles(net, old_styles)
    trainable = trainable_parameters(net)
    assert all(name.endswith(("style_scale", "style_shift"))
               for name, p in net.named_parameters() if p.requires_grad)
    photos = torch.rand(2, 3, 32, 32)
    new = torch.zeros(2, old_styles + 1)
    new[:, -1] = 1
    before = net(photos, new).detach()
    optimiser = torch.optim.Adam(trainable, lr=1e-2, fused=True)
    for _ in range(3):  # pull the new style's output towards grey
        optimiser.zero_grad()
        (net(photos, new) - 0.5).pow(2).mean().backward()
        optimiser.step()
    net.eval()
    base.eval()
    with torch.no_grad():
        for style in range(old_styles):
            old_weights = torch.eye(old_styles)[style:style + 1] if old_styles > 1 else None
            expected = base(photos, old_weights)
            assert torch.equal(net(photos, torch.eye(old_styles + 1)[style:style + 1]), expected)
        assert not torch.allclose(net.train()(photos, new), before)


def test_multi_style_file_loads_and_tiles_with_whole_image_statistics(tmp_path):
    path = save_multi(tmp_path / "three.pth", random_multi_style_net(3).eval())
    net, info = load_transformer(path)
    assert info["style_names"] == NAMES and net.num_styles == 3
    with pytest.raises(FastStyleError, match="pick one with style=NAME"):
        load_model(path, "cpu", "fp32")
    image = (torch.rand(3, 150, 210) * 255).to(torch.uint8)
    model = load_model(path, "cpu", "fp32", mix="starry_night:0.6,candy:0.4")
    whole = stylize_photo(model, image, StyleOptions(tile=0))
    tiled = stylize_photo(model, image, StyleOptions(tile=96, tile_overlap=24))
    difference = (whole.int() - tiled.int()).abs()
    assert difference.float().mean() < 0.05 and difference.max() <= 2, difference.max()
    pure = load_model(path, "cpu", "fp32", style="candy")
    assert (stylize_photo(pure, image, StyleOptions(tile=0)).int() - whole.int()).abs().max() > 5


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exports_take_the_style_weights_and_match_pytorch(tmp_path, fmt):
    from fast_style.export import export, run_exported

    path = save_multi(tmp_path / "three.pth", random_multi_style_net(3).eval())
    result = export(path, fmt, check_size=(64, 96))
    assert result.ok, result.max_abs_error
    net, _ = load_transformer(path)
    image = torch.rand(1, 3, 45, 70)
    for weights in (torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.2, 0.5, 0.3]])):
        with torch.no_grad():
            expected = net(image, weights)
        assert (run_exported(result.path, fmt, image, weights) - expected).abs().max() < 1e-4
    if fmt == "onnx":  # infer.py's path: the ONNX model blends by name as the .pth does
        onnx_model = load_model(result.path, "cpu", mix="mosaic:1,candy:1")
        torch_model = load_model(path, "cpu", "fp32", mix="mosaic:1,candy:1")
        assert onnx_model.style_names == NAMES
        assert (onnx_model(image) - torch_model(image)).abs().max() < 1e-4


def test_resume_compares_the_runs_list_of_styles_and_their_sizes():
    from fast_style.resume import changed_settings

    cfg = train_config(["style=[mosaic,candy]"])
    # Older multi-style checkpoints recorded one size for all styles.
    checkpoint = {"hyper_parameters": {"style_name": ["mosaic", "candy"], "style_size": 256}}
    same = {"style_name": ["mosaic", "candy"], "style_size": [256, 256]}
    assert changed_settings(checkpoint, cfg, same) == []
    other = {"style_name": ["mosaic", "wave"], "style_size": [256, 512]}
    assert changed_settings(checkpoint, cfg, other) == [
        "style.name=['mosaic', 'candy']->['mosaic', 'wave']",
        "style.size=[256, 256]->[256, 512]"]
