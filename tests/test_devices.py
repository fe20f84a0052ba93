from __future__ import annotations

import torch

from gradcheck.devices import available_devices, full_precision


def test_full_precision_pins_and_restores_tf32_settings():
    matmul = torch.backends.cuda.matmul
    new_api = hasattr(matmul, "fp32_precision")
    name, loose, strict = ("fp32_precision", "tf32", "ieee") if new_api else ("allow_tf32", True, False)
    before = getattr(matmul, name)
    setattr(matmul, name, loose)
    try:
        with full_precision():
            assert getattr(matmul, name) == strict
            assert matmul.allow_fp16_reduced_precision_reduction is False
        assert getattr(matmul, name) == loose
    finally:
        setattr(matmul, name, before)


def test_cpu_is_always_available_and_cuda_only_with_a_gpu():
    assert available_devices()[0] == "cpu"
    assert ("cuda" in available_devices()) == torch.cuda.is_available()


def test_device_fixture_gives_a_usable_device(device):
    assert torch.zeros(1, device=device).device.type == device
