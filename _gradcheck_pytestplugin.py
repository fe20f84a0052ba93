"""gradcheck's pytest plugin: hypothesis profiles under gradcheck's own names, loaded only when asked for.

pytest loads this module (entry point ``pytest11: gradcheck``) in every run of every environment where
gradcheck is installed, so it does nothing there unless asked: it lives outside the ``gradcheck``
package (importing ``gradcheck.anything`` runs ``gradcheck/__init__``, which imports torch), and it
imports hypothesis only when a profile is requested. Hypothesis's own profiles (``default``, and the
``ci`` profile hypothesis loads by itself in a CI environment) are never replaced.

The profiles, all derived from hypothesis's ``default`` profile (so hypothesis's ``ci`` profile does
not leak into them):

``gradcheck-dev``
    quick; example database on, so a failure replays on the next run; operands up to side 4.
``gradcheck-ci``
    40 examples, derandomized, no database (neither a stale one read nor one written), the failing
    example's blob printed; some operands up to side 64.
``gradcheck-thorough``
    10⁴ examples per test; some operands up to side 256.

Hypothesis settings cannot carry the sizes: gradcheck's strategies read the loaded profile's name
when they draw (``gradcheck.strategies.default_max_side``, table ``PROFILE_MAX_SIDE``), and
``GRADCHECK_MAX_SIDE=N`` overrides it for every profile.

Ask with hypothesis's ``--hypothesis-profile gradcheck-ci`` or with ``GRADCHECK_PROFILE=ci`` (the short
names ``dev``, ``ci`` and ``thorough`` are accepted there, as are the full ones); the option wins over
the variable. With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, ``-p gradcheck`` loads the plugin. Outside
pytest, ``register_profiles()`` registers them for ``settings.load_profile``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

PROFILE_ENV = "GRADCHECK_PROFILE"
PREFIX = "gradcheck-"
SHORT_NAMES = ("dev", "ci", "thorough")
PROFILE_NAMES = tuple(PREFIX + name for name in SHORT_NAMES)


def profile_options() -> dict[str, dict[str, Any]]:
    """Each profile's settings (imports hypothesis)."""
    from hypothesis import HealthCheck
    from hypothesis.database import DirectoryBasedExampleDatabase

    relaxed = [HealthCheck.too_slow, HealthCheck.data_too_large]
    return {
        "gradcheck-dev": dict(max_examples=25, deadline=None, derandomize=False, suppress_health_check=relaxed,
                              database=DirectoryBasedExampleDatabase(".hypothesis/examples")),
        "gradcheck-ci": dict(max_examples=40, deadline=None, derandomize=True, database=None, print_blob=True,
                             suppress_health_check=relaxed),
        "gradcheck-thorough": dict(max_examples=10_000, deadline=None, suppress_health_check=relaxed),
    }


def register_profiles() -> None:
    """Register ``gradcheck-dev``, ``gradcheck-ci`` and ``gradcheck-thorough`` with hypothesis; load none."""
    from hypothesis import settings

    default = settings.get_profile("default")
    for name, options in profile_options().items():
        settings.register_profile(name, parent=default, **options)


def profile_name(name: str) -> str:
    """A ``GRADCHECK_PROFILE`` value as a hypothesis profile name: ``ci`` means ``gradcheck-ci``."""
    return PREFIX + name if name in SHORT_NAMES else name


def requested_profile(config: pytest.Config) -> str | None:
    """The profile asked for: ``--hypothesis-profile`` as given, else ``GRADCHECK_PROFILE`` mapped; or None."""
    option: str | None = config.getoption("hypothesis_profile", default=None)
    if option:
        return option
    variable = os.environ.get(PROFILE_ENV, "").strip()
    return profile_name(variable) if variable else None


@pytest.hookimpl(tryfirst=True)  # before hypothesis's plugin loads --hypothesis-profile's profile
def pytest_configure(config: pytest.Config) -> None:
    # gradcheck.testing.gradient_test marks its CUDA cases; registered so --strict-markers accepts them
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped with a reason when none is available")
    name = requested_profile(config)
    if name is None or (name not in PROFILE_NAMES and config.getoption("hypothesis_profile", default=None)):
        return  # nothing asked, or one of hypothesis's (or the user's) profiles: hypothesis loads it itself
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    register_profiles()
    try:
        settings.load_profile(name)
    except InvalidArgument as exc:
        raise pytest.UsageError(f"{PROFILE_ENV}={os.environ.get(PROFILE_ENV)!r}: {exc}; gradcheck's profiles are "
                                f"{', '.join(PROFILE_NAMES)} (or {', '.join(SHORT_NAMES)})") from None
