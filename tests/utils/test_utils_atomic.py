"""atomic_path / atomic_write: synced, normal permissions, umask untouched, nothing half-written."""

import os

import pytest

from spikingbrain.utils import atomic
from spikingbrain.utils.atomic import atomic_path, atomic_write


def test_umask_is_read_without_being_changed(tmp_path, monkeypatch):
    calls = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real(m))
    old = real(0o027)
    real(old)
    try:
        real(0o027)
        with atomic_path(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"x")
        assert calls == []  # never os.umask: it is process-wide and not thread-safe
        assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640
    finally:
        real(old)


def test_content_and_folder_are_synced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
                        or real(fd))
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"y")
    assert any(p.startswith(str(tmp_path / ".b.bin.")) for p in synced)  # the data
    assert str(tmp_path) in synced  # the folder entry of the rename


def test_failure_keeps_previous_content(tmp_path):
    (tmp_path / "c.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "c.txt", "w") as f:
        f.write("new, half")
        raise RuntimeError("writer failed")
    assert (tmp_path / "c.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["c.txt"]
    assert atomic._umask() == atomic._umask()
