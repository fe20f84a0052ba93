"""python -m gradcheck: the report, its exit status, its errors, the formula table and README's copy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gradcheck.cli import formula_table, main
from gradcheck.rules import RULES, mm_vjp, rule_named

ROOT = Path(__file__).resolve().parents[1]


def test_report_passes_and_writes_json(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["--rules", "mm,dot", "--dtype", "float64,float32", "--examples", "5", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^mm\s+cpu\s+float64\s+\d+\s+\S+\s+\S+\s+pass\s+ok$", out, re.M), out
    document = json.loads(path.read_text())
    assert document["ok"] is True
    assert {(r["rule"], r["dtype"]) for r in document["rows"]} == {
        ("mm", "float64"), ("mm", "float32"), ("dot", "float64"), ("dot", "float32")}
    assert all(r["worst_autograd"] <= 1 and r["examples"] >= 5 for r in document["rows"])


def test_a_wrong_rule_makes_the_report_fail(capsys):
    wrong = replace(rule_named("mm"), name="mm_wrong", vjp=lambda A, B, G: (mm_vjp(A, B, G)[0], -mm_vjp(A, B, G)[1]))
    assert main(["--rules", "mm_wrong", "--dtype", "float32", "--examples", "20"], rules=(*RULES, wrong)) == 1
    out = capsys.readouterr().out
    assert re.search(r"^mm_wrong\s+cpu\s+float32.*FAIL$", out, re.M)
    assert "input 1 (B)" in out


@pytest.mark.parametrize("argv", [["--rules", "nosuch"], ["--dtype", "float8"], ["--examples", "0"],
                                  ["--examples", "many"], ["--device", "tpu"], ["linreg", "--lr", "-1"],
                                  ["linreg", "--steps", "x"], ["formulas", "--bogus"]])
def test_bad_input_gets_one_line_and_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err


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
