"""The documentation builds in strict mode and the README's quick start runs."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_strict_build(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.fail("mkdocs is not installed in this environment; run `make test` to set it up")
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                       "PATH": str(Path(sys.executable).parent)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_quick_start_coding_part_runs():
    """The first half of the README's Python quick start (no model needed) runs as written."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```python\n(.*?)```", text, re.S).group(1)
    coding_part = block.split("\nmodel = ")[0]
    namespace: dict = {}
    exec(compile(coding_part, "README.md", "exec"), namespace)
    assert namespace["events"].shape[1:] == (4, 3584)


@pytest.mark.parametrize("page", ["neurons.md"])
def test_docs_page_examples_run_as_doctests(page):
    """The ``>>>`` examples of the documentation pages run and print what the page shows."""
    import doctest

    res = doctest.testfile(str(ROOT / "docs" / page), module_relative=False,
                           optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0, res
