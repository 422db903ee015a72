import pytest
import torch

from fast_style.losses import content_loss, gram_matrix, style_loss, total_variation_loss


def test_gram_matches_hand_computation():
    # Two channels of one row, two pixels: rows [1, 2] and [3, 4].
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[1 + 4, 3 + 8], [3 + 8, 9 + 16]]]) / (2 * 1 * 2)
    assert torch.allclose(gram_matrix(features), expected)


def test_gram_summed_in_chunks_of_positions_is_the_same_gram():
    """The GPU's chunked sum (losses.GRAM_CHUNK_POSITIONS) changes the order of the fp32 sum
    only: same Grams, same gradients. It chunks channels_last features (a view) whose positions
    the chunks divide, and sums the rest whole; a CPU's default is one sum."""
    torch.manual_seed(0)
    features = torch.randn(3, 8, 16, 12).contiguous(memory_format=torch.channels_last)
    whole_in = features.clone().requires_grad_()
    chunked_in = features.clone().requires_grad_()
    whole, chunked = gram_matrix(whole_in, 0), gram_matrix(chunked_in, 48)  # 4 chunks of 48
    assert torch.allclose(chunked, whole, rtol=1e-5, atol=1e-7)
    weights = torch.arange(64.0).view(8, 8)
    (whole * weights).sum().backward()
    (chunked * weights).sum().backward()
    assert torch.allclose(chunked_in.grad, whole_in.grad, rtol=1e-5, atol=1e-6)

    # Summed in another order, the chunks round differently: so equality below means one sum.
    large = torch.randn(2, 16, 64, 128).contiguous(memory_format=torch.channels_last)
    assert not torch.equal(gram_matrix(large, 4096), gram_matrix(large, 0))
    assert torch.equal(gram_matrix(large), gram_matrix(large, 0))  # the CPU's default
    nchw = large.contiguous()
    assert torch.equal(gram_matrix(nchw, 4096), gram_matrix(nchw, 0))  # NCHW: one sum
    odd = torch.randn(2, 4, 5, 7).contiguous(memory_format=torch.channels_last)
    assert torch.equal(gram_matrix(odd, 10), gram_matrix(odd, 0))  # 3 chunks do not divide 35


def test_gram_is_fp32_under_bf16_autocast():
    features = torch.randn(2, 8, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features.bfloat16())
    assert gram.dtype == torch.float32
    assert torch.allclose(gram, gram_matrix(features.bfloat16().float()))


def test_content_loss_is_mse_and_zero_for_identity():
    a = torch.randn(2, 4, 3, 3)
    assert content_loss(a, a) == 0
    assert content_loss(a, a + 2) == pytest.approx(4.0)


def test_style_loss_weights_layers_and_is_zero_at_target():
    feats = {"relu1_2": torch.randn(1, 3, 4, 4), "relu2_2": torch.randn(1, 5, 2, 2)}
    targets = {k: gram_matrix(v) for k, v in feats.items()}
    weights = {"relu1_2": 1.0, "relu2_2": 2.0}
    assert style_loss(feats, targets, weights) == 0
    shifted = {k: v + 1 for k, v in targets.items()}  # every Gram entry off by 1 -> MSE 1
    assert style_loss(feats, shifted, weights).item() == pytest.approx(3.0)
    # One target broadcasts over a batch.
    batch = {k: v.expand(3, -1, -1, -1) for k, v in feats.items()}
    assert style_loss(batch, targets, weights) == pytest.approx(0.0, abs=1e-6)


def test_total_variation_hand_example():
    img = torch.zeros(1, 1, 2, 2)
    img[0, 0, 0, 1] = 1.0  # one bright pixel, top right, in [0, 1]
    # Only the top-left pixel has both a right and a lower neighbour in the (H-1, W-1) window:
    # dx = 255 - 0, dy = 0 - 0 -> 0.5 * 255^2
    assert total_variation_loss(img).item() == pytest.approx(0.5 * 255**2)
    assert total_variation_loss(torch.full((2, 3, 5, 5), 0.3)) == 0
