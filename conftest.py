"""Test configuration for gradcheck itself: ``--device`` and the ``device`` fixture.

Hypothesis profiles come from ``gradcheck.pytest_plugin`` (a pytest entry point); this project's
own tests default to the quick ``dev`` profile when none is named.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from gradcheck.devices import available_devices
from gradcheck.pytest_plugin import requested_profile


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device", action="store", default="all", choices=("all", "cpu", "cuda"),
        help="devices for device-parametrized tests (default all: cpu, and cuda where present, else skipped)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if requested_profile(config) is None:
        settings.load_profile("dev")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--device")
        names = ["cpu", "cuda"] if choice == "all" else [choice]
        metafunc.parametrize("device", names, indirect=True)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    """A device name; a CUDA case skips with the reason where no GPU is available."""
    name = getattr(request, "param", "cpu")
    if name not in available_devices():
        pytest.skip(f"{name} is not available here: torch.cuda.is_available() is False")
    return name
