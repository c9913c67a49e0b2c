"""Issue 13's memory levers: the same function, a third of the memory.

VeerNet's GroupNorm (float32 arithmetic, bf16 in and out, SiLU fused, only its
input kept) and the decoder's split concatenation must compute what torch's
GroupNorm + SiLU and `torch.cat` computed; `LiveBytes` must count what is alive;
and the peak of a real bf16 training step, counted on this CPU, must drop by the
factor bench/activation_memory.py reports.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from veernet_ray.model import VeerNet, VeerNetConfig
from veernet_ray.model.veernet import GroupNorm, _GroupNormAct
from veernet_ray.plan.memory import LiveBytes, cuda_autocast_groupnorm, step_peak_bytes

torch.set_num_threads(1)

SEED = VeerNetConfig(stem_width=16, widths=(24, 32, 64, 96, 128))  # configs/seed.yaml's model, issue 13's


def _reference():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("activation_memory", Path(__file__).parents[1] / "bench" / "activation_memory.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.reference


@pytest.mark.parametrize("channels,groups", [(8, 4), (16, 8), (24, 12), (40, 8), (128, 16)])
@pytest.mark.parametrize("act", [True, False])
def test_groupnorm_act_is_torch_groupnorm_then_silu(channels, groups, act):
    torch.manual_seed(channels)
    x, w, b = torch.randn(2, channels, 9, 14) * 3 + 1, torch.randn(channels), torch.randn(channels)
    ours = [t.clone().requires_grad_() for t in (x, w, b)]
    ref = [t.clone().requires_grad_() for t in (x, w, b)]
    y = _GroupNormAct.apply(*ours, groups, 1e-5, act)
    y_ref = F.group_norm(ref[0], groups, ref[1], ref[2], 1e-5)
    y_ref = F.silu(y_ref) if act else y_ref
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(y)
    for g, g_ref in zip(torch.autograd.grad(y, ours, grad), torch.autograd.grad(y_ref, ref, grad)):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)


def test_groupnorm_keeps_bf16_and_only_its_input():
    norm = GroupNorm(16, act=True)
    x = torch.randn(1, 16, 32, 64, dtype=torch.bfloat16, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = norm(x)
    assert y.dtype == torch.bfloat16
    big = [t for t in saved if t.numel() == x.numel()]
    assert len(big) == 1 and big[0].dtype == torch.bfloat16  # the input, nothing else full size


def test_model_is_the_reference_function_in_float32_and_close_in_bf16():
    torch.manual_seed(0)
    ours = VeerNet(VeerNetConfig(stem_width=8, widths=(8, 12, 16, 16, 32))).train()
    ref = VeerNet(ours.cfg).train()
    ref.load_state_dict(ours.state_dict())
    ref = _reference()(ref)  # torch GroupNorm + SiLU modules sharing those parameters, concatenation
    x = torch.rand(2, 1, 64, 128)
    out, out_ref = ours(x), ref(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-4, atol=1e-4)
    out.square().mean().backward()
    out_ref.square().mean().backward()
    for (name, p), p_ref in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-3, atol=1e-5, msg=name)
    with torch.autocast("cpu", dtype=torch.bfloat16), cuda_autocast_groupnorm():
        low, low_ref = ours(x).float(), ref(x).float()
    assert (low - low_ref).abs().max() < 0.05 * out_ref.abs().max()


def test_fused_norm_traces_under_compile():
    model = VeerNet(VeerNetConfig(stem_width=8, widths=(8, 16), attn_layers=1, attn_heads=2)).train()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = compiled(torch.rand(1, 1, 16, 32))
    out.float().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_live_bytes_counts_what_is_alive():
    with LiveBytes() as live:
        a = torch.empty(1000, dtype=torch.uint8)
        b = torch.empty(3000, dtype=torch.uint8)
        del a
        c = torch.empty(500, dtype=torch.uint8)
    assert live.peak == 4000 and live.live == 3500
    del b, c


def _bytes_per_pixel(model) -> float:
    with cuda_autocast_groupnorm():
        p1 = step_peak_bytes(model, 1, 32, 128, num_classes=3)
        p2 = step_peak_bytes(model, 1, 64, 256, num_classes=3)
    return (p2 - p1) / (64 * 256 - 32 * 128)


def test_training_peak_per_pixel_drops_3x():
    """bf16 step at the seed model: before ~1,570 B/px (12 GiB at 640 x 12,800, the H200's figure), after < 1/2.5
    of it, after with checkpointing < 1/3 of it."""
    torch.manual_seed(0)
    before = _bytes_per_pixel(_reference()(VeerNet(SEED).train()))
    after = _bytes_per_pixel(VeerNet(SEED).train())
    checkpointed = _bytes_per_pixel(VeerNet(VeerNetConfig(**{**SEED.__dict__, "checkpointing": True})).train())
    assert 1400 < before < 1700, before
    assert before / after > 2.5, (before, after)
    assert before / checkpointed > 3.0, (before, checkpointed)
