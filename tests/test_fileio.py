"""Atomic writes give their files the mode a plain ``open(path, "w")`` would: 0o666 less the umask
(``tempfile.mkstemp`` makes them 0o600, which the rename used to keep)."""

from __future__ import annotations

import os
import stat

import pytest

from xrayqwen2vl.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_json(tmp_path / "b.json", {"a": 1})
        atomic_write_bytes(tmp_path / "sub" / "c.bin", b"\x00")
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert os.umask(old) == old  # the umask is left as it was
    for name in ("a.txt", "b.json", "sub/c.bin", "plain"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert (tmp_path / "b.json").read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "plain", "sub"]  # no temp files


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "x", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
