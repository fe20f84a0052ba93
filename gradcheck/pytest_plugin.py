"""pytest integration, installed as a ``pytest11`` entry point so projects that use gradcheck get it.

It registers three hypothesis profiles, all derived from hypothesis's ``default`` profile (so the
``ci`` profile hypothesis itself loads when it sees a CI environment does not leak into ``dev``):
``dev`` (quick; example database on, so failures replay), ``ci`` (derandomized, database off, the
failing example's blob printed; it replaces hypothesis's built-in profile of that name) and
``thorough`` (10⁴ examples per test). Pick one with hypothesis's own ``--hypothesis-profile NAME`` or
with ``GRADCHECK_PROFILE=NAME``; without either, the plugin loads no profile.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import InvalidArgument

PROFILE_ENV = "GRADCHECK_PROFILE"
_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large]
PROFILES = {
    "dev": dict(max_examples=25, deadline=None, derandomize=False, suppress_health_check=_RELAXED,
                database=DirectoryBasedExampleDatabase(".hypothesis/examples")),
    "ci": dict(max_examples=40, deadline=None, derandomize=True, database=None, print_blob=True,
               suppress_health_check=_RELAXED),
    "thorough": dict(max_examples=10_000, deadline=None, suppress_health_check=_RELAXED),
}


def register_profiles() -> None:
    default = settings.get_profile("default")
    for name, options in PROFILES.items():
        settings.register_profile(name, parent=default, **options)


register_profiles()


def requested_profile(config: pytest.Config) -> str | None:
    """The profile asked for: ``--hypothesis-profile`` wins over ``GRADCHECK_PROFILE``."""
    return config.getoption("hypothesis_profile", default=None) or os.environ.get(PROFILE_ENV)


def pytest_configure(config: pytest.Config) -> None:
    name = requested_profile(config)
    if name is not None:
        try:
            settings.load_profile(name)
        except InvalidArgument as exc:
            raise pytest.UsageError(f"hypothesis profile {name!r}: {exc}") from exc
