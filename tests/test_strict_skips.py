"""Under ``make test`` (SPIKINGBRAIN_STRICT_SKIPS=1) no test may vanish through a skip: neither
a skip inside a test nor a module skipped while it is collected (module-level importorskip)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

MISSING_IMPORT = '''
import pytest
pytest.importorskip("spikingbrain_no_such_module")

def test_never_runs():
    assert False
'''

SKIP_IN_TEST = '''
import pytest

def test_skips():
    pytest.skip("optional thing missing")
'''


def _run(tmp_path: Path, source: str, strict: bool) -> subprocess.CompletedProcess:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")  # the real hooks, not a copy of them
    (tmp_path / "test_module.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "SPIKINGBRAIN_STRICT_SKIPS"}
    if strict:
        env["SPIKINGBRAIN_STRICT_SKIPS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("source", [MISSING_IMPORT, SKIP_IN_TEST], ids=["collection", "runtest"])
def test_skip_fails_under_strict_mode(tmp_path, source):
    res = _run(tmp_path, source, strict=True)
    assert res.returncode != 0, res.stdout
    assert "must run" in res.stdout


@pytest.mark.parametrize("source", [MISSING_IMPORT, SKIP_IN_TEST], ids=["collection", "runtest"])
def test_skip_is_a_skip_otherwise(tmp_path, source):
    res = _run(tmp_path, source, strict=False)
    assert res.returncode in (0, 5), res.stdout  # 5: no test ran (the module was skipped)
    assert "1 skipped" in res.stdout
