"""VeerNet: shapes, input errors, GroupNorm rule, AMP, compile, checkpointing, backbone transfer."""

from __future__ import annotations

import pytest
import torch

from veernet_ray.model import VeerNet, VeerNetConfig, build_model, count_parameters
from veernet_ray.model.info import layer_table, main as info_main
from veernet_ray.model.veernet import gn

torch.set_num_threads(1)

TINY = VeerNetConfig(stem_width=8, widths=(8, 8, 16, 16, 32), attn_layers=2, attn_heads=4)


def tiny(**overrides) -> VeerNet:
    torch.manual_seed(0)
    fields = {k: getattr(TINY, k) for k in TINY.__dataclass_fields__}
    return build_model(VeerNetConfig(**{**fields, **overrides}))


@pytest.mark.parametrize("shape", [(1, 1, 64, 256), (2, 1, 32, 96)])
def test_output_shape(shape):
    model = tiny().eval()
    with torch.no_grad():
        out = model(torch.rand(shape))
    assert out.shape == (shape[0], 3, *shape[2:])
    assert torch.isfinite(out).all()


def test_depth_sets_multiple():
    model = tiny(widths=(8, 16, 16))
    assert model.multiple == 8 == model.cfg.multiple
    assert model(torch.rand(1, 1, 24, 40)).shape == (1, 3, 24, 40)
    assert VeerNetConfig().multiple == 32


def test_bad_size_names_padded_shape():
    with pytest.raises(ValueError, match=r"multiples of 32; got \(100, 250\): pad to \(128, 256\).*pad_collate"):
        tiny()(torch.rand(1, 1, 100, 250))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        tiny()(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"widths": ()}, "at least one"),
        ({"widths": (8, 0)}, r"widths\[1\]"),
        ({"widths": (8, 30), "attn_heads": 4}, "divisible by attn_heads"),
        ({"num_classes": 1}, "num_classes"),
        ({"stem_width": -1}, "stem_width"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VeerNetConfig(**kwargs)


def test_no_attention_has_no_unused_parameters():
    model = tiny(attn_layers=0)
    model(torch.rand(1, 1, 32, 64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_config_accepts_list_widths():
    assert VeerNetConfig(widths=[8, 16]).widths == (8, 16)


def test_groupnorm_rule():
    assert gn(8).num_groups == 4
    assert gn(32).num_groups == 16
    assert gn(128).num_groups == 16
    assert gn(24).num_groups == 12
    assert gn(40).num_groups == 10  # min(20, 16) = 16 does not divide 40
    assert all(m.num_groups == min(m.num_channels // 2, 16) for m in build_model().modules() if isinstance(m, torch.nn.GroupNorm))


def test_batch_one_trains():
    model = tiny().train()
    out = model(torch.rand(1, 1, 32, 64))
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bf16_autocast_cpu():
    model = tiny().eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 1, 32, 64))
    assert out.shape == (1, 3, 32, 64)
    assert torch.isfinite(out.float()).all()


def test_channels_last_matches():
    model = tiny().eval()
    x = torch.rand(2, 1, 32, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_no_graph_breaks():
    model = tiny().eval()
    x = torch.rand(1, 1, 32, 64)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    # fullgraph with the eager backend checks tracing without a C++ toolchain.
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


def test_checkpointing_matches():
    x = torch.rand(2, 1, 32, 64)
    outs, grads = [], []
    for flag in (False, True):
        model = tiny(checkpointing=flag).train()
        out = model(x)
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(outs[1], outs[0])
    for g1, g0 in zip(grads[1], grads[0]):
        torch.testing.assert_close(g1, g0)


def test_load_backbone_binary_to_multiclass():
    binary = tiny(num_classes=2)
    multi = tiny(num_classes=3)
    torch.manual_seed(1)
    for p in binary.parameters():  # make sure the copy is visible
        torch.nn.init.normal_(p)
    head_before = multi.head.weight.clone()
    decoder_before = multi.decoder.stages[0].convs[0][0].weight.clone()
    # As saved from a compiled model: prefixes are stripped.
    loaded = multi.load_backbone_from({f"_orig_mod.{k}": v for k, v in binary.state_dict().items()})

    src, dst = binary.state_dict(), multi.state_dict()
    backbone = [k for k in src if k.startswith(("encoder.", "bottleneck."))]
    assert loaded == sorted(backbone)
    for k in backbone:
        assert torch.equal(dst[k], src[k]), k
    assert not any(k.startswith(("head.", "decoder.")) for k in loaded)
    assert torch.equal(multi.head.weight, head_before)
    assert torch.equal(multi.decoder.stages[0].convs[0][0].weight, decoder_before)


def test_load_everything_continues_a_stage_but_skips_a_head_of_another_size():
    src_multi, src_binary = tiny(num_classes=3), tiny(num_classes=2)
    torch.manual_seed(2)
    for p in list(src_multi.parameters()) + list(src_binary.parameters()):
        torch.nn.init.normal_(p)
    same = tiny(num_classes=3)
    loaded = same.load_backbone_from(src_multi.state_dict(), everything=True)
    assert loaded == sorted(src_multi.state_dict())  # every tensor, decoder and head included
    x = torch.rand(1, 1, 64, 96)
    torch.testing.assert_close(same.eval()(x), src_multi.eval()(x))
    other = tiny(num_classes=3)
    head_before = other.head.weight.clone()
    loaded = other.load_backbone_from(src_binary.state_dict(), everything=True)
    assert any(k.startswith("decoder.") for k in loaded) and not any(k.startswith("head.") for k in loaded)
    assert torch.equal(other.head.weight, head_before)


def test_load_backbone_skips_mismatched_shapes():
    src = tiny(widths=(8, 8, 16, 16, 64), attn_heads=4).state_dict()
    loaded = tiny().load_backbone_from(src)
    assert "encoder.stem.0.weight" in loaded
    assert "encoder.blocks.4.conv1.0.weight" not in loaded  # 64 vs 32 channels


def test_default_size():
    n = count_parameters(build_model())
    assert 1_000_000 <= n <= 2_500_000
    assert n * 4 < 10 * 2**20


def test_model_info_meta_shapes(capsys):
    rows, activations = layer_table(build_model(), 640, 12800)
    assert rows[-1] == ("head", "Conv2d", (1, 3, 640, 12800), 16 * 3 + 3)
    assert ("bottleneck", "Bottleneck", (1, 128, 20, 400), 266_496) in rows  # 640/32 x 12800/32 tokens
    assert activations > 0
    assert info_main(["--classes", "2", "--widths", "8,16", "--height", "64", "--width", "128"]) == 0
    out = capsys.readouterr().out
    assert "parameters:" in out and "(1, 2, 64, 128)" in out
    assert info_main(["--height", "100"]) == 2
    assert "pad to (128, 12800)" in capsys.readouterr().err


@pytest.mark.parametrize("channels_last", [False, True])
def test_upsample_broadcast_path_matches_interpolate(channels_last):
    """The broadcast form taken past 2**31 output elements (a batch of 16 widest logs on a GPU)
    computes F.interpolate's nearest x2 and its gradient, in the same memory format."""
    import torch.nn.functional as F

    from veernet_ray.model.veernet import upsample2x

    torch.manual_seed(1)
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = F.interpolate(a, scale_factor=2.0, mode="nearest"), upsample2x(b, broadcast=True)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    assert torch.equal(ya, yb)
    assert torch.allclose(a.grad, b.grad, rtol=0, atol=1e-12)
    assert yb.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert upsample2x(x).shape == ya.shape  # small: the interpolate path


def test_bf16_inference_runs_the_native_groupnorm_in_channels_last():
    """A GPU actor's path on the CPU: inference mode, bf16 autocast, channels_last. The bf16
    GroupNorm (torch's native kernels, no autograd graph) keeps the layout and stays near float32."""
    m = tiny().eval().to(memory_format=torch.channels_last)
    x = torch.rand(2, 1, 64, 256).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
    assert y.dtype == torch.bfloat16 and y.shape == ref.shape
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert ((y.float() - ref).norm() / ref.norm()).item() < 0.05


def test_masked_groupnorm_equals_groupnorm_of_the_crop():
    from veernet_ray.model.veernet import _masked_group_norm

    torch.manual_seed(0)
    norm = gn(16, act=True)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 16, 24, 40) * 3 + 1
    valid = torch.tensor([[24, 40], [13, 21]])
    y = _masked_group_norm(x, valid, norm.num_groups, norm.weight, norm.bias, norm.eps, True)
    for b, (h, w) in enumerate(valid.tolist()):
        torch.testing.assert_close(y[b:b + 1, :, :h, :w], norm(x[b:b + 1, :, :h, :w]), rtol=1e-4, atol=1e-5)
        assert not y[b, :, h:].any() and not y[b, :, :, w:].any()  # 0 outside: what zero padding reads


def test_attention_reads_only_the_valid_tokens():
    from veernet_ray.model.veernet import TransformerLayer

    torch.manual_seed(0)
    layer = TransformerLayer(16, 2, 2.0, 0.0).eval()
    x = torch.randn(1, 30, 16)
    keys = torch.zeros(1, 30, dtype=torch.bool)
    keys[:, :18] = True
    with torch.no_grad():
        torch.testing.assert_close(layer(x, keys)[:, :18], layer(x[:, :18]), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(layer(x)[:, :18], layer(x[:, :18]), atol=1e-3)  # unmasked, padding leaks in


def test_valid_region_makes_output_independent_of_batch_padding():
    """The same image alone and padded into a cell 1.5x taller and 2x wider: GroupNorm statistics and
    attention over the whole tensor change the image's output; with `valid` the output inside the
    region is the image's output alone (features are 0 outside the region, as beyond an image's edge).
    A region that fills the input is the plain network."""
    torch.manual_seed(0)
    model = tiny().eval()
    alone = torch.rand(2, 1, 64, 128) * 0.2
    big = torch.zeros(2, 1, 96, 256)
    big[..., :64, :128] = alone
    big[1, :, :96, :256] = torch.rand(1, 96, 256) * 0.2  # a bigger image beside it
    with torch.no_grad():
        ref = model(alone[:1])
        plain = model(big)[:1, :, :64, :128]
        masked = model(big, valid=torch.tensor([[64, 128], [96, 256]]))
        same = model(alone[:1], valid=torch.tensor([[64, 128]]))
        torch.testing.assert_close(masked[:1, :, :64, :128], ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(masked[1:], model(big[1:]), rtol=1e-4, atol=1e-4)
    assert (plain - ref).abs().max() > 0.1  # without it, the padding changes the image's output
    assert torch.equal(same, ref)


def test_valid_region_trains():
    """The region path has a backward (for a training loop that passes each image's region)."""
    model = tiny().train()
    x = torch.rand(2, 1, 64, 128)
    out = model(x, valid=torch.tensor([[64, 96], [32, 128]]))
    out.float().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
