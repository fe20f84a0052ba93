"""How many examples a test spends, by profile."""

from __future__ import annotations

from hypothesis import settings


def examples(count: int) -> int | None:
    """``count`` examples for a test that runs one ``verify`` per (rule, dtype) — the CI budget spread
    over many parametrizations — except under ``gradcheck-thorough``, whose own count (``None``: the
    profile's) is the point of that profile."""
    return None if settings.get_current_profile_name() == "gradcheck-thorough" else count
