"""The README's Python API example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers import REPO


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs_as_written(tmp_path):
    code = readme_example()
    assert all(f"zoo.{f}(" in code for f in ("list_models", "bench", "create_model", "load", "create_metric"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "ZOO_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "['edsr', 'edsr_dqe']" and "edsr 2" in lines
    assert re.search(r"^\S+ dB True Y BT\.601, shave=2, uint8$", proc.stdout, re.M)
    assert (tmp_path / "runs" / "api" / "results.csv").is_file()
