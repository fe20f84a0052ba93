"""README's Python examples run as written, in order, in one namespace (as a reader would paste them)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 4


def test_readme_python_blocks_run_as_written(capsys):
    namespace: dict = {"__name__": "readme"}
    with torch.random.fork_rng(devices=[]):  # the examples draw with torch.randn: seeded here, the global state restored after
        torch.manual_seed(0)
        for number, block in enumerate(python_blocks()):
            try:
                exec(compile(block, f"README.md python block {number}", "exec"), namespace)  # noqa: S102
            except Exception as exc:  # name the block that broke
                raise AssertionError(f"README python block {number} failed: {type(exc).__name__}: {exc}\n{block}") from exc
    assert "ok on float32" in capsys.readouterr().out  # the first example prints its report
