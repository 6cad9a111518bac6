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


def _readme_shell_block() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"From the shell.*?```bash\n(.*?)```", text, re.S).group(1)


def test_readme_shell_commands_run_verbatim(tmp_path):
    """Every shell command of the README, in order, exactly as written, in a fresh folder
    where `.venv` is this environment (what `make demo` leaves behind)."""
    import os

    block = _readme_shell_block()
    assert block.startswith("source .venv/bin/activate\n") and "spikingbrain simulate" in block
    (tmp_path / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    script = tmp_path / "readme.sh"
    script.write_text("set -euo pipefail\nset -x\n" + block)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for made in ("minilm-w8aspike/spikingbrain_converted.json", "report/index.html",
                 "sweep/sweep.json", "layer0.nir", "bundle.npz", "bundle.results.npz"):
        assert (tmp_path / made).is_file(), made
    assert "EXACT" in proc.stdout + proc.stderr
