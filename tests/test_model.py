"""Tests of the partial convolution, the U-Net and the weights' loading."""

import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nemesis_bkg.model.unet as unet_module
from nemesis_bkg.model import (
    DEFAULT_WEIGHTS,
    MODEL_CARD,
    PartialConv2d,
    PartialConvBlock,
    PConvUNet,
    load_model,
    read_card_sha256,
    resolve_device,
    save_model,
)

torch.set_num_threads(1)


def _random_mask(shape, seed=0, valid_fraction=0.7):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < valid_fraction).float()


@pytest.mark.parametrize("stride, kernel, padding", [(1, 3, 1), (2, 4, 1), (1, 5, 2)])
def test_output_ignores_invalid_pixel_values(stride, kernel, padding):
    torch.manual_seed(0)
    conv = PartialConv2d(2, 3, kernel, stride=stride, padding=padding)
    mask = _random_mask((1, 1, 16, 16))
    image = torch.randn(1, 2, 16, 16)
    altered = torch.where(mask > 0, image, 1e6 * torch.randn(1, 2, 16, 16))
    first, first_mask = conv(image, mask)
    second, second_mask = conv(altered, mask)
    assert torch.equal(first_mask, second_mask)
    assert torch.allclose(first, second)


def test_fully_valid_window_equals_plain_convolution():
    torch.manual_seed(1)
    conv = PartialConv2d(2, 4, 3, padding=1, bias=True)
    image = torch.randn(1, 2, 12, 12)
    output, new_mask = conv(image, torch.ones(1, 1, 12, 12))
    expected = F.conv2d(image, conv.weight, conv.bias, padding=1)
    # Interior pixels: every window fully valid; the border is renormalised (zero padding).
    assert torch.allclose(output[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-6)
    assert not torch.allclose(output[..., 0, :], expected[..., 0, :])
    assert torch.all(new_mask == 1)


def test_renormalisation_and_mask_update():
    conv = PartialConv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    mask = torch.zeros(1, 1, 7, 7)
    mask[..., 3, 3] = 1.0
    output, new_mask = conv(torch.full((1, 1, 7, 7), 2.0), mask)
    # A single valid pixel seen through a 3x3 window of ones: 2 * 9 / 1.
    expected_mask = torch.zeros(1, 1, 7, 7)
    expected_mask[..., 2:5, 2:5] = 1.0
    assert torch.equal(new_mask, expected_mask)
    assert torch.allclose(output[new_mask > 0], torch.tensor(18.0))
    assert torch.all(output[new_mask == 0] == 0)


def test_per_channel_mask_and_wrong_mask_channels():
    conv = PartialConv2d(3, 2, 3, padding=1)
    image = torch.randn(1, 3, 8, 8)
    mask = torch.ones(1, 3, 8, 8)
    mask[:, 1] = 0
    altered = image.clone()
    altered[:, 1] = 100.0
    assert torch.allclose(conv(image, mask)[0], conv(altered, mask)[0])
    with pytest.raises(ValueError, match="channels"):
        conv(image, torch.ones(1, 2, 8, 8))


def test_partial_conv_refuses_what_its_renormalisation_cannot_count():
    # Padding other than zeros was silently ignored; a grouped convolution counted the
    # valid pixels of every channel in each group's window.
    with pytest.raises(ValueError, match="padding_mode"):
        PartialConv2d(1, 1, 3, padding=1, padding_mode="reflect")
    grouped = PartialConv2d(4, 4, 3, padding=1, groups=2)
    with pytest.raises(ValueError, match="one-channel mask"):
        grouped(torch.randn(1, 4, 8, 8), torch.ones(1, 4, 8, 8))
    assert grouped(torch.randn(1, 4, 8, 8), torch.ones(1, 1, 8, 8))[0].shape == (1, 4, 8, 8)


@pytest.mark.parametrize(("kernel_size", "stride"), [(4, 1), (3, 2), (1, 2)])
def test_block_refuses_kernels_that_do_not_divide_the_tile(kernel_size, stride):
    # An even kernel at stride 1 gave an output one pixel larger than its input.
    with pytest.raises(ValueError, match="kernel_size"):
        PartialConvBlock(1, 2, kernel_size=kernel_size, stride=stride)


def test_unet_checks_the_coverage_shape():
    net = PConvUNet(channels=(4, 8))
    with pytest.raises(ValueError, match="coverage of shape"):
        net(torch.randn(2, 4, 16, 16), torch.ones(2, 1, 8, 8))
    with pytest.raises(ValueError, match="coverage of shape"):
        net(torch.randn(2, 4, 16, 16), torch.ones(1, 1, 16, 16))


@pytest.mark.parametrize("shape", [(16, 16), (32, 48), (80, 16)])
def test_unet_accepts_any_multiple_of_its_factor(shape):
    net = PConvUNet(channels=(4, 8, 8, 16, 16)).eval()
    assert net.downsampling_factor == 16
    inputs = torch.randn(2, 4, *shape)
    with torch.no_grad():
        assert net(inputs, torch.ones(2, 1, *shape)).shape == (2, 2, *shape)


def test_unet_rejects_other_tile_sizes():
    net = PConvUNet(channels=(4, 8, 8))
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(1, 4, 18, 16), torch.ones(1, 1, 18, 16))
    with pytest.raises(ValueError, match="input channels"):
        net(torch.randn(1, 3, 16, 16), torch.ones(1, 1, 16, 16))


def test_unet_ignores_values_without_coverage():
    torch.manual_seed(2)
    net = PConvUNet(channels=(4, 8, 16))
    for parameter in net.head.parameters():  # the head starts at zero
        torch.nn.init.normal_(parameter)
    net.eval()
    coverage = torch.ones(1, 1, 32, 32)
    coverage[..., :, :10] = 0
    inputs = torch.randn(1, 4, 32, 32)
    altered = torch.where(coverage > 0, inputs, torch.full_like(inputs, 1e5))
    with torch.no_grad():
        first, second = net(inputs, coverage), net(altered, coverage)
    assert first.abs().max() > 0
    assert torch.allclose(first, second, atol=1e-5)



def _randomised_unet(channels=(4, 8, 8, 16)):
    """An eval-mode U-Net whose every weight and batch-norm statistic is random."""
    torch.manual_seed(5)
    net = PConvUNet(channels=channels)
    for parameter in net.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("region", [
    (slice(0, 32), slice(0, 48)),      # everything
    (slice(None), slice(None)),
    (slice(0, 1), slice(0, 1)),        # corners: the decoder windows meet the tile's border
    (slice(31, 32), slice(47, 48)),
    (slice(9, 23), slice(13, 40)),     # a hole-sized box
    (slice(15, 17), slice(23, 25)),    # across the middle of the deepest level
    (slice(7, 8), slice(0, 48)),       # one full row
])
def test_unet_region_equals_the_whole_output_cut(region):
    net = _randomised_unet()
    inputs = torch.randn(3, 4, 32, 48)
    coverage = _random_mask((3, 1, 32, 48), seed=4, valid_fraction=0.8)
    with torch.no_grad():
        whole = net(inputs, coverage)
        part = net(inputs, coverage, region=region)
    expected = whole[..., region[0], region[1]]
    assert part.shape == expected.shape
    assert whole.abs().max() > 0.1
    torch.testing.assert_close(part, expected, rtol=1e-5, atol=1e-5 * float(whole.abs().max()))


def test_unet_region_is_refused_when_it_cannot_be_honoured():
    net = _randomised_unet()
    inputs, coverage = torch.randn(1, 4, 16, 16), torch.ones(1, 1, 16, 16)
    for region in [(slice(4, 4), slice(0, 16)), (slice(0, 17), slice(0, 16)),
                   (slice(-3, None), slice(0, 16)), (slice(0, 16, 2), slice(0, 16)),
                   (slice(0, 8),), (0, slice(0, 8))]:
        with pytest.raises(ValueError, match="region"):
            net(inputs, coverage, region=region)
    net.train()
    with pytest.raises(ValueError, match="eval"):
        net(inputs, coverage, region=(slice(0, 8), slice(0, 8)))


def test_decoder_one_channel_mask_equals_the_per_channel_masks(monkeypatch):
    # With full coverage the decoder passes one mask channel for the upsampled features and
    # the skip together; the per-channel masks it stands for must give the same output.
    net = _randomised_unet()
    inputs, coverage = torch.randn(2, 4, 32, 32), torch.ones(2, 1, 32, 32)
    with torch.no_grad():
        shortcut = net(inputs, coverage)
        monkeypatch.setattr(unet_module, "all_valid", lambda mask: False)
        per_channel = net(inputs, coverage)
    assert torch.equal(shortcut, per_channel)

@pytest.fixture
def saved_model(tmp_path):
    torch.manual_seed(3)
    net = PConvUNet(channels=(4, 8))
    path = tmp_path / "net.safetensors"
    digest = save_model(net, path, metadata={"tile_size": "32"})
    (tmp_path / "MODEL_CARD.md").write_text(f"# card\n\nsha256: {digest}\n")
    return net, path, digest


def test_save_and_load_round_trip(saved_model):
    net, path, digest = saved_model
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_model(path, device="cpu")
    assert not loaded.training
    assert loaded.metadata["tile_size"] == "32"
    inputs, coverage = torch.randn(1, 4, 8, 8), torch.ones(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(inputs, coverage), net.eval()(inputs, coverage))


def test_saved_bytes_do_not_depend_on_the_process(tmp_path):
    # safetensors writes its metadata in hash-map order, which changes per process: the
    # model card's sha256 must not. Sorted keys in the header are what makes it stable.
    torch.manual_seed(3)
    net = PConvUNet(channels=(4, 8))
    metadata = {key: str(index) for index, key in enumerate("zyxwvutsrq")} | {"é": "ü"}
    path = tmp_path / "net.safetensors"
    save_model(net, path, metadata=metadata)
    content = path.read_bytes()
    length = int.from_bytes(content[:8], "little")
    keys = list(json.loads(content[8 : 8 + length])["__metadata__"])
    assert keys == sorted(keys)
    assert load_model(path, sha256=hashlib.sha256(content).hexdigest(),
                      device="cpu").metadata["é"] == "ü"
    assert not list(tmp_path.glob("*.partial"))


def test_altered_file_fails_its_checksum(saved_model):
    _, path, _ = saved_model
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_model(path, device="cpu")


def test_truncated_file_fails_clearly(saved_model, tmp_path):
    _, path, _ = saved_model
    truncated = tmp_path / "other" / "net.safetensors"
    truncated.parent.mkdir()
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_model(truncated, device="cpu")
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_model(truncated, sha256="0" * 64, device="cpu")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")


def test_card_without_checksum_line(tmp_path):
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# no checksum here\n")
    with pytest.raises(ValueError, match="sha256"):
        read_card_sha256(card)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError):
        resolve_device("not-a-device")


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="no bundled weights yet")
def test_bundled_weights_match_their_card():
    assert hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest() == read_card_sha256(MODEL_CARD)
    model = load_model(device="cpu")
    assert not model.training
    assert DEFAULT_WEIGHTS.stat().st_size < 25e6
    low, high = (float(value) for value in model.metadata["fwhm_pixels_range"].split(","))
    assert low <= 1.7 and high >= 4.3
    assert np.isfinite(float(model.metadata["sigma_calibration"]))
