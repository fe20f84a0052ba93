"""The pytest plugin: gradcheck's profiles under their own names, loaded only when asked for, and no torch
(nor hypothesis) imported in a project that merely has gradcheck installed.

The subprocess tests run pytest on a throwaway project in ``tmp_path``, with a clean environment, so what
they see is what any project in this environment sees at start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from hypothesis import settings

from _gradcheck_pytestplugin import PROFILE_NAMES, profile_name, register_profiles

ROOT = Path(__file__).resolve().parents[1]

RECORDING_CONFTEST = '''
import json, sys
import pytest

RECORD = {}

def _modules():
    return {name: name in sys.modules for name in ("torch", "gradcheck", "hypothesis")}

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    plugin = config.pluginmanager.get_plugin("gradcheck")  # None would mean nothing was tested
    RECORD["configure"] = _modules() | {"plugin": getattr(plugin, "__name__", None)}

def pytest_sessionfinish(session):
    RECORD["end"] = _modules()
    with open("record.json", "w") as handle:
        json.dump(RECORD, handle)
'''

PROBE = '''
import json
from hypothesis import Phase, example, given, settings, strategies as st

@settings(phases=[Phase.explicit])  # one run is enough to read the profile (thorough's 10,000 took seconds)
@example(0)
@given(st.integers())
def test_probe(x):
    with open("profile.json", "w") as handle:
        json.dump({"name": settings.get_current_profile_name(), "max_examples": settings.default.max_examples,
                   "derandomize": settings.default.derandomize, "database": settings.default.database is not None},
                  handle)
'''

PLAIN = "def test_plain():\n    assert 1 + 1 == 2\n"

requires_entry_point = pytest.mark.skipif(
    not any(ep.value == "_gradcheck_pytestplugin" for ep in entry_points(group="pytest11")),
    reason="the pytest11 entry point is installed by 'pip install -e .', which this environment lacks")


def run_pytest(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """pytest in ``project`` with a clean environment: no CI variables, no PYTEST_* leaking in."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(project)} | env
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(project),
                           *args], capture_output=True, text=True, cwd=project, env=clean, timeout=120)


def throwaway(tmp_path: Path, conftest: str, test: str) -> Path:
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_probe.py").write_text(test)
    return tmp_path


def profile_seen(project: Path, *args: str, **env: str) -> dict:
    done = run_pytest(project, *args, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((project / "profile.json").read_text())


def test_profiles_have_their_own_names_and_leave_hypothesis_profiles_alone():
    builtin = {name: settings.get_profile(name) for name in ("default", "ci")}
    register_profiles()
    assert {name: settings.get_profile(name) for name in ("default", "ci")} == builtin
    dev, ci, thorough = (settings.get_profile(name) for name in PROFILE_NAMES)
    assert PROFILE_NAMES == ("gradcheck-dev", "gradcheck-ci", "gradcheck-thorough")
    assert dev.database is not None and ci.database is None
    assert ci.derandomize and not dev.derandomize and ci.max_examples == 40
    assert thorough.max_examples >= 10_000 and dev.max_examples < ci.max_examples < thorough.max_examples


def test_gradcheck_pytest_plugin_is_the_public_name():
    from gradcheck import pytest_plugin

    assert pytest_plugin.register_profiles is register_profiles and pytest_plugin.PROFILE_NAMES == PROFILE_NAMES


@pytest.mark.parametrize("value, name", [("ci", "gradcheck-ci"), ("dev", "gradcheck-dev"), ("thorough", "gradcheck-thorough"),
                                         ("gradcheck-ci", "gradcheck-ci"), ("mine", "mine")])
def test_short_names_map_to_gradchecks(value, name):
    assert profile_name(value) == name


def test_importing_the_plugin_imports_neither_torch_nor_hypothesis():
    code = ("import sys, _gradcheck_pytestplugin\n"
            "print(sorted(m for m in ('torch', 'hypothesis', 'gradcheck', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


@requires_entry_point
def test_other_projects_keep_hypothesis_ci_profile_and_import_no_torch(tmp_path):
    project = throwaway(tmp_path, RECORDING_CONFTEST, PROBE)
    seen = profile_seen(project, CI="true")
    assert seen == {"name": "ci", "max_examples": 100, "derandomize": True, "database": False}  # hypothesis's own
    record = json.loads((project / "record.json").read_text())
    assert record["configure"] == {"torch": False, "gradcheck": False, "hypothesis": False, "plugin": "_gradcheck_pytestplugin"}
    assert record["end"] == {"torch": False, "gradcheck": False, "hypothesis": True}  # the probe imported hypothesis


@requires_entry_point
def test_plugin_imports_not_even_hypothesis_when_no_test_uses_it(tmp_path):
    project = throwaway(tmp_path, RECORDING_CONFTEST, PLAIN)
    done = run_pytest(project, CI="true")
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((project / "record.json").read_text())
    assert record["configure"] == {"torch": False, "gradcheck": False, "hypothesis": False, "plugin": "_gradcheck_pytestplugin"}
    assert record["end"] == {"torch": False, "gradcheck": False, "hypothesis": False}


@requires_entry_point
@pytest.mark.parametrize("args, env, expected", [
    ([], {"GRADCHECK_PROFILE": "ci"}, ("gradcheck-ci", 40, True)),
    ([], {"GRADCHECK_PROFILE": "ci", "CI": "true"}, ("gradcheck-ci", 40, True)),  # .ci/run in a CI service
    ([], {"GRADCHECK_PROFILE": "gradcheck-ci"}, ("gradcheck-ci", 40, True)),
    ([], {"GRADCHECK_PROFILE": "dev"}, ("gradcheck-dev", 25, False)),
    (["--hypothesis-profile", "gradcheck-thorough"], {}, ("gradcheck-thorough", 10_000, False)),
    (["--hypothesis-profile", "ci"], {"GRADCHECK_PROFILE": "thorough"}, ("ci", 100, True)),  # the option wins
    ([], {}, ("default", 100, False)),
], ids=["env-ci", "env-ci-under-CI", "env-prefixed", "env-dev", "option", "option-wins", "nothing-asked"])
def test_profile_is_chosen_by_option_or_environment(tmp_path, args, env, expected):
    project = throwaway(tmp_path, RECORDING_CONFTEST, PROBE)
    seen = profile_seen(project, *args, **env)
    assert (seen["name"], seen["max_examples"], seen["derandomize"]) == expected
    assert json.loads((project / "record.json").read_text())["end"]["torch"] is False


@requires_entry_point
def test_an_unknown_profile_is_a_usage_error(tmp_path):
    project = throwaway(tmp_path, RECORDING_CONFTEST, PROBE)
    done = run_pytest(project, GRADCHECK_PROFILE="nosuch")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "GRADCHECK_PROFILE='nosuch'" in done.stderr and "gradcheck-ci" in done.stderr


@requires_entry_point
@pytest.mark.parametrize("env, expected", [
    ({}, ("gradcheck-dev", 25)),
    ({"CI": "true"}, ("gradcheck-ci", 40)),  # not hypothesis's ci: this project's own tests only
    ({"CI": "true", "GRADCHECK_PROFILE": "thorough"}, ("gradcheck-thorough", 10_000)),
], ids=["local", "CI", "asked"])
def test_this_projects_conftest_picks_gradchecks_profile(tmp_path, env, expected):
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    seen = profile_seen(tmp_path, **env)
    assert (seen["name"], seen["max_examples"]) == expected
