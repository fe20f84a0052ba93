"""Test configuration for gradcheck itself: the default hypothesis profile, ``--device`` and the ``device`` fixture.

gradcheck's plugin loads a profile only when one is asked for (``--hypothesis-profile NAME`` or
``GRADCHECK_PROFILE=NAME``). When none is, this project's own tests run under ``gradcheck-dev``, or
under ``gradcheck-ci`` where hypothesis has loaded its own ``ci`` profile because it sees a CI
environment (``CI=...``): hypothesis's ``ci`` keeps 100 examples and the default health checks, too slow
for these tests. Projects that merely have gradcheck installed keep hypothesis's profiles.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from _gradcheck_pytestplugin import register_profiles, requested_profile


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device", action="store", default="all", choices=("all", "cpu", "cuda"),
        help="devices for device-parametrized tests (default all: cpu, and cuda where present, else skipped)",
    )


def pytest_configure(config: pytest.Config) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:  # one xdist worker per core already: torch's own threads on top would oversubscribe them
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    if requested_profile(config) is None:
        register_profiles()
        settings.load_profile("gradcheck-ci" if settings.get_current_profile_name() == "ci" else "gradcheck-dev")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--device")
        names = ["cpu", "cuda"] if choice == "all" else [choice]
        metafunc.parametrize("device", names, indirect=True)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    """A device name; a CUDA case skips with the reason where no GPU is available."""
    from gradcheck.devices import available_devices

    name = getattr(request, "param", "cpu")
    if name not in available_devices():
        pytest.skip(f"{name} is not available here: torch.cuda.is_available() is False")
    return name
