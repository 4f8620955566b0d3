"""The README's Python examples run against a live gateway and sandbox."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Live

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def live():
    lv = Live()
    yield lv
    assert lv.stop() == (0, 0)


def test_readme_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(live, code):
    code = code.replace("tcp://127.0.0.1:7400", live.url)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "the example printed nothing"
