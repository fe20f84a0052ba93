"""python -m gradcheck: the report, its exit status, its errors, the formula table and README's copy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gradcheck import strategies as S
from gradcheck.cli import formula_table, main
from gradcheck.rules import RULES, dot_vjp, mm_vjp, rule_named
from gradcheck.survey import survey

ROOT = Path(__file__).resolve().parents[1]


def test_report_passes_and_writes_json(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["--rules", "mm,dot", "--dtype", "float64,float32", "--examples", "5", "--jobs", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^mm\s+cpu\s+float64\s+\d+\s+\S+\s+\S+\s+pass\s+ok$", out, re.M), out
    document = json.loads(path.read_text())
    assert document["ok"] is True
    assert {(r["rule"], r["dtype"]) for r in document["rows"]} == {
        ("mm", "float64"), ("mm", "float32"), ("dot", "float64"), ("dot", "float32")}
    assert all(r["worst_autograd"] <= 1 and r["examples"] >= 5 for r in document["rows"])


def test_a_wrong_rule_makes_the_report_fail(capsys):
    wrong = replace(rule_named("mm"), name="mm_wrong", vjp=lambda A, B, G: (mm_vjp(A, B, G)[0], -mm_vjp(A, B, G)[1]))
    assert main(["--rules", "mm_wrong", "--dtype", "float32", "--examples", "5", "--max-side", "3"], rules=(*RULES, wrong)) == 1
    out = capsys.readouterr().out
    assert re.search(r"^mm_wrong\s+cpu\s+float32.*FAIL$", out, re.M)
    assert "input 1 (B)" in out


@pytest.mark.parametrize("argv", [["--rules", "nosuch"], ["--dtype", "float8"], ["--examples", "0"],
                                  ["--examples", "many"], ["--device", "tpu"], ["linreg", "--lr", "-1"],
                                  ["linreg", "--steps", "x"], ["formulas", "--bogus"], ["--max-side", "-1"],
                                  ["--max-side", "big"], ["--jobs", "0"], ["--jobs", "x"]])
def test_bad_input_gets_one_line_and_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err


SEEN_SIDES: list[int] = []


def recording_mm_vjp(A, B, G):
    SEEN_SIDES.extend((*A.shape, B.shape[1]))
    return mm_vjp(A, B, G)


def negated_dot_vjp(a, b, G):
    da, db = dot_vjp(a, b, G)
    return da, -db


# Module-level, so that worker processes can import them by name.
RECORDING_MM = replace(rule_named("mm"), name="mm_recording", vjp=recording_mm_vjp)
WRONG_DOT = replace(rule_named("dot"), name="dot_negated_db", vjp=negated_dot_vjp)


@pytest.mark.parametrize("argv, largest", [([], 4), (["--max-side", "40"], 40)])
def test_max_side_bounds_the_drawn_sizes(argv, largest, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(S.MAX_SIDE_ENV, raising=False)
    SEEN_SIDES.clear()
    path = tmp_path / "report.json"
    assert main(["--rules", "mm_recording", "--dtype", "float32", "--examples", "40", "--derandomize", "--jobs", "1",
                 "--json", str(path), *argv], rules=(RECORDING_MM,)) == 0
    assert json.loads(path.read_text())["max_side"] == largest
    assert max(SEEN_SIDES) <= largest
    assert largest == 4 or max(SEEN_SIDES) > 16  # some examples past a tile of 16


def test_max_side_defaults_to_the_variable(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(S.MAX_SIDE_ENV, "7")
    path = tmp_path / "report.json"
    assert main(["--rules", "dot", "--dtype", "float32", "--examples", "2", "--jobs", "1", "--json", str(path)]) == 0
    assert json.loads(path.read_text())["max_side"] == 7


def _content(row):
    """What a row says, less the numbers that depend on hypothesis's draws. (Derandomized draws also
    depend on constants hypothesis collects from the loaded modules, which differ between this test
    process and its workers; ``python -m gradcheck --derandomize`` gives the same numbers for any --jobs.)"""
    return (row.rule, row.device, row.dtype, row.exact, row.status, row.failure and row.failure.splitlines()[:2])


def test_jobs_give_the_serial_rows():
    """Two worker processes: the same rows in the same order, failures included; the progress callback is
    told the total and sees every row arrive."""
    rules = (rule_named("dot"), WRONG_DOT)
    seen = []

    def progress(items):
        seen.append(len(items))
        for item in items:
            seen.append(item)
            yield item

    serial = survey(rules, ["cpu"], [torch.float32], 5, max_side=8, derandomize=True)
    parallel = survey(rules, ["cpu"], [torch.float32], 5, progress=progress, max_side=8, jobs=2, derandomize=True)
    assert [_content(r) for r in parallel] == [_content(r) for r in serial]
    assert [(r.rule, r.status) for r in serial] == [("dot", "ok"), ("dot_negated_db", "FAIL")]
    assert "input 1 (b)" in parallel[1].failure
    assert seen[0] == 2 and len(seen) == 3


def test_jobs_refuse_a_rule_that_cannot_travel(capsys):
    local = replace(rule_named("mm"), name="mm_local", vjp=lambda A, B, G: mm_vjp(A, B, G))
    with pytest.raises(SystemExit) as exit_:
        main(["--rules", "mm_local", "--jobs", "2"], rules=(local,))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--jobs 2: rule mm_local cannot be sent to a worker process" in err


def test_bad_input_from_the_shell_has_no_traceback():
    done = subprocess.run([sys.executable, "-m", "gradcheck", "--rules", "mm,nosuch"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip() == ("gradcheck: error: argument --rules: unknown rule nosuch; expected a comma-separated "
                                   "list of " + ", ".join(r.name for r in RULES))


def test_formulas_lists_every_rule(capsys):
    assert main(["formulas"]) == 0
    out = capsys.readouterr().out
    for rule in RULES:
        assert rule.formula in out and rule.shapes in out


def test_readme_formula_table_is_the_rule_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- formulas:start -->\n(.*?)\n<!-- formulas:end -->", readme, re.S)
    assert block, "README.md lacks the formulas block"
    assert block.group(1) == formula_table(markdown=True), "regenerate with: python -m gradcheck formulas --markdown"


def test_console_script_is_installed_with_the_package():
    import shutil

    script = shutil.which("gradcheck") or str(Path(sys.executable).parent / "gradcheck")
    if not Path(script).exists():
        pytest.skip("the gradcheck console script is installed by 'pip install -e .', which this environment lacks")
    done = subprocess.run([script, "formulas"], capture_output=True, text=True)
    assert done.returncode == 0 and all(rule.formula in done.stdout for rule in RULES)


def test_linreg_out_without_matplotlib_says_how_to_get_it(tmp_path):
    """matplotlib is the optional extra gradcheck[plot]: one line naming it, status 2, before any work."""
    out = tmp_path / "figures"
    code = ("import sys\nsys.modules['matplotlib'] = None  # as if not installed\n"
            "from gradcheck.cli import main\n"
            f"sys.exit(main(['linreg', '--out', {str(out)!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1
    assert "pip install 'gradcheck[plot]'" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_plot_module_without_matplotlib_names_the_extra():
    code = "import sys\nsys.modules['matplotlib'] = None\nimport gradcheck.plot\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("ModuleNotFoundError: the figures need matplotlib, which is not installed: "
                                            "pip install 'gradcheck[plot]'")
