"""The device paths (issue #14): conversion, verification, the three methods, memory-budget batching and
onnxruntime's providers on every device torch sees (``device`` fixture: the CPU always, CUDA when present).

On CUDA each method's result is compared with the CPU's; on the CPU the same tests compare two different
ways of computing it (LAM batched vs batch 1, L2X float32 vs float64, masking in onnxruntime vs torch), so the
logic runs here too. DAT-light (a transformer) runs on CUDA only: on the shared 2-core CPU it takes minutes.
"""

from __future__ import annotations

import inspect
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import onnxattr
from devices import cuda_param
from onnxattr.arrays import to_numpy
from onnxattr.device import ORT_CUDA_OPTIONS, full_float32, ort_providers, pick_device
from onnxattr.metrics import masking_curves
from onnxattr.metrics.masking import forward as ort_forward
from onnxattr.intake.verify import VERIFY_TOLERANCE
from onnxattr.windows.geometry import Window

ROOT = Path(__file__).resolve().parents[1]
SAMPLES, IMAGES = ROOT / "samples", ROOT / "samples" / "images"
CNN = "waifu2x-upconv7-x2.ts17.onnx"  # real trained CNN, out = 2 * in - 28
DAT = "dat-light-x2.dynamo.onnx"  # real trained transformer, out = 2 * in
MODELS = [CNN, cuda_param(DAT, id=DAT)]
# LR crop (rows, columns) and an SR window (x, y, size) inside its output, per sample.
CASES = {CNN: ((slice(16, 40), slice(20, 44)), (2, 2, 16)), DAT: ((slice(16, 40), slice(20, 44)), (16, 16, 16))}
# Windows here are in SR output pixels: say so where the methods take a frame (their default is then HR).
SR = {"frame": "sr"} if "frame" in inspect.signature(onnxattr.lam).parameters else {}
NO_ORT_CUDA = (
    "this onnxruntime build has no CUDAExecutionProvider (only "
    f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu for the ORT-on-CUDA checks"
)


@cache
def load(name: str, device: str) -> onnxattr.SRModel:
    if not (SAMPLES / name).is_file():
        pytest.skip(f"{name} not built (samples/make_samples.py)")
    return onnxattr.load_model(SAMPLES / name, device=device)


def case(name: str) -> tuple[torch.Tensor, tuple[int, int, int]]:
    (rows, cols), window = CASES[name]
    return onnxattr.read_image(IMAGES / "chelsea-64.png")[:, :, rows, cols], window


def relative(got, ref) -> float:
    got, ref = (to_numpy(a, np.float64) for a in (got, ref))
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def check(ds, name: str) -> float:
    """A method's check of the (first) window: a per-window variable, or an attr without a window dimension."""
    return float(ds[name].values.ravel()[0]) if name in ds.data_vars else float(ds.attrs[name])


def needs_ort_cuda(device: torch.device) -> None:
    if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(NO_ORT_CUDA)


# ------------------------------------------------------------------ pure device logic (runs everywhere)
def test_ort_providers_ask_for_cuda_without_tf32(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: None, raising=False)
    assert ort_providers(torch.device("cuda:1")) == [
        ("CUDAExecutionProvider", {**ORT_CUDA_OPTIONS, "device_id": "1"}),
        "CPUExecutionProvider",
    ]
    assert ort_providers(torch.device("cuda"))[0][1]["device_id"] == "0"
    assert ort_providers(torch.device("cpu")) == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert ort_providers(torch.device("cuda")) == ["CPUExecutionProvider"]


def test_full_float32_turns_tf32_off_on_cuda_only():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        full_float32(torch.device("cpu"))
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        full_float32(torch.device("cuda"))
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU")
    with pytest.raises(onnxattr.OnnxAttrError, match="use --device cpu"):
        pick_device("cuda")


# ------------------------------------------------------------------ on every device
@pytest.mark.parametrize("name", MODELS)
def test_conversion_verified_on_device(name, device):
    model = load(name, str(device))
    assert model.device.type == device.type
    assert model.conversion_error is not None and model.conversion_error <= VERIFY_TOLERANCE
    x, _ = case(name)
    with torch.no_grad():
        out = model(x)
    assert out.device.type == device.type
    assert relative(out, model.run_ort(x.numpy())) <= VERIFY_TOLERANCE
    if device.type == "cuda":
        assert not torch.backends.cudnn.allow_tf32, "a CUDA model must run its convolutions in float32, not TF32"


def test_ort_providers_in_use_follow_the_device(device):
    model = load(CNN, str(device))
    providers = model.session.get_providers()
    needs_ort_cuda(device)
    if device.type == "cuda":
        assert providers[0] == "CUDAExecutionProvider", (
            f"onnxruntime fell back to {providers}: its CUDA/cuDNN libraries did not load"
        )
        assert model.session.get_provider_options()["CUDAExecutionProvider"]["use_tf32"] == "0"
    else:
        assert providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize("name", MODELS)
def test_lam_on_device_equals_cpu_at_batch_one(name, device):
    """Default batching (memory budget) on ``device`` against one point per pass on the CPU."""
    x, window = case(name)
    got = onnxattr.lam(load(name, str(device)), x, window, steps=8, **SR)
    ref = onnxattr.lam(load(name, "cpu"), x, window, steps=8, batch_size=1, **SR)
    assert got.attrs["device"].startswith(device.type) and ref.attrs["batch_size"] == 1
    assert got.attrs["batch_size"] > 1
    assert relative(got["attribution"], ref["attribution"]) <= 1e-4
    assert relative(got["path_objective"], ref["path_objective"]) <= 1e-5
    assert abs(check(got, "completeness_error") - check(ref, "completeness_error")) <= 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_l2x_on_device_equals_cpu(name, device):
    """float64 on ``device`` against float64 on the CPU (tight), float32 on ``device`` against it (float32)."""
    x, window = case(name)
    ref = onnxattr.l2x(load(name, "cpu"), x, window, **SR)
    model = load(name, str(device))
    got64 = ref if device.type == "cpu" else onnxattr.l2x(model, x, window, **SR)
    got32 = onnxattr.l2x(model, x, window, dtype=torch.float32, **SR)
    assert relative(got64["attribution"], ref["attribution"]) <= 1e-8
    assert check(got64, "completeness_error") <= 1e-6
    assert relative(got32["attribution"], ref["attribution"]) <= 1e-4  # measured 4.3e-6 on the CPU
    assert check(got32, "completeness_error") <= 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_glam_on_device_equals_cpu(name, device):
    """Maps in [0, 1] equal to float32 tolerance, except where GL-AM itself is ill-conditioned: the last
    layer's local map is d D / d output, whose direction flips at near-flat output pixels (sqrt(dh + dw)
    near 0). Measured on the CPU (upconv7, this crop): a 1e-6 relative input perturbation moves that map by
    up to 0.75 and the combined local map by 0.19 (correlation 0.97), every other local layer by <= 7e-5 and
    the global maps by <= 9e-5; so those two are compared by correlation."""
    x, window = case(name)
    got = onnxattr.glam(load(name, str(device)), x, window, **SR)
    ref = got if device.type == "cpu" else onnxattr.glam(load(name, "cpu"), x, window, **SR)
    for var in ("local", "global", "local_layers", "global_layers"):
        values = got[var].values
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1 + 1e-6
    for var in ("global", "global_layers"):
        assert np.abs(got[var].values - ref[var].values).max() <= 5e-4, var
    but_last, last = {"layer": slice(0, -1)}, {"layer": -1}
    assert np.abs(got["local_layers"].isel(but_last).values - ref["local_layers"].isel(but_last).values).max() <= 5e-4
    for a, b in ((got["local"], ref["local"]), (got["local_layers"].isel(last), ref["local_layers"].isel(last))):
        assert np.corrcoef(a.values.ravel(), b.values.ravel())[0, 1] >= 0.9


def test_masking_forward_in_onnxruntime_equals_torch(device):
    """Masking curves run their forwards in onnxruntime (CUDA provider on a CUDA model); they must equal
    the torch graph's outputs, and on CUDA the curves must equal the CPU model's."""
    needs_ort_cuda(device)
    model = load(CNN, str(device))
    x, window = case(CNN)
    batch = np.stack([x[0].numpy(), 0.25 + 0.5 * x[0].numpy()[:, :, ::-1]])
    with torch.no_grad():
        want = model(torch.from_numpy(batch.copy()))
    assert relative(ort_forward(model, batch), want) <= VERIFY_TOLERANCE
    attribution = torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(0))
    win = Window(*window)
    curves = masking_curves(model, x, attribution, ratios=(0.05, 0.2), seeds=2, window=win)
    ref = masking_curves(load(CNN, "cpu"), x, attribution, ratios=(0.05, 0.2), seeds=2, window=win)
    np.testing.assert_allclose(curves["psnr"].values, ref["psnr"].values, atol=1e-3)


# ------------------------------------------------------------------ CUDA only
@pytest.mark.cuda
@pytest.mark.parametrize("name, side", [(CNN, 64), (DAT, 128)])
def test_memory_budget_batching_on_cuda(name, side):
    """LAM at its defaults: the batch from the measured per-point peak fits the budget, no OOM."""
    model = load(name, "cuda")
    x = onnxattr.read_image(IMAGES / "chelsea-128.png")[:, :, :side, :side]
    oh, ow = model.output_size(side, side)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    free, base = torch.cuda.mem_get_info()[0], torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    ds = onnxattr.lam(model, x, (ow // 2 - 8, oh // 2 - 8, 16), **SR)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    batch, need = ds.attrs["batch_size"], ds.attrs["memory_estimate_bytes"]
    assert 1 < batch <= 50
    assert peak <= ds.attrs["memory_fraction"] * free, (peak, free)
    assert peak <= 1.25 * need, (peak, batch, need)
    assert np.isfinite(ds["attribution"].values).all() and check(ds, "completeness_error") < 0.05
