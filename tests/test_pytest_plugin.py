"""The hypothesis profiles: dev keeps an example database so failures replay, ci neither reads a stale
one nor writes one and is derandomized, thorough runs 10⁴ examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import settings

import gradcheck.pytest_plugin  # noqa: F401 - registers the profiles

ROOT = Path(__file__).resolve().parents[1]


def test_profiles():
    dev, ci, thorough = (settings.get_profile(name) for name in ("dev", "ci", "thorough"))
    assert dev.database is not None and ci.database is None
    assert ci.derandomize and not dev.derandomize
    assert thorough.max_examples >= 10_000 and dev.max_examples < ci.max_examples < thorough.max_examples


def test_profile_is_chosen_by_option_or_environment(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("from hypothesis import settings\n"
                     "def test_profile():\n    print('PROFILE', settings().max_examples)\n")
    base = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(probe)]

    def max_examples(extra, env_profile=None):
        env = {"PATH": "", "PYTHONPATH": str(ROOT)} | ({"GRADCHECK_PROFILE": env_profile} if env_profile else {})
        out = subprocess.run(base + extra, capture_output=True, text=True, cwd=tmp_path, env=env).stdout
        return int(out.split("PROFILE ")[1].split()[0])

    assert max_examples(["--hypothesis-profile", "thorough"]) == 10_000
    assert max_examples([], env_profile="ci") == settings.get_profile("ci").max_examples
