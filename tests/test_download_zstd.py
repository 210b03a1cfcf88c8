"""`download --zstd-parts`: ReXGradient-160K's split zstd tar (deid_png.part*), unpacked under the
same rules as any archive (links and escapes refused), then prepared."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data.download import split_parts


def _split_zstd_tar(tar_bytes: bytes, out: Path, pieces: int = 3, frames: int = 1) -> list[Path]:
    step = -(-len(tar_bytes) // frames)
    data = b"".join(
        zstandard.ZstdCompressor().compress(tar_bytes[i : i + step]) for i in range(0, len(tar_bytes), step)
    )
    size = -(-len(data) // pieces)
    paths = []
    for k in range(pieces):
        p = out / f"deid_png.part{k:02d}"
        p.write_bytes(data[k * size : (k + 1) * size])
        paths.append(p)
    return paths


def _tar_of(folder: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=arcname)
    return buf.getvalue()


@pytest.fixture(scope="module")
def rexgradient(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rg")
    assert (
        cli_main(["sample", "--out", str(out), "--reports", "12", "--format", "rexgradient", "--quiet"]) == 0
    )
    return out / "rexgradient"


@pytest.mark.parametrize("frames", [1, 3])
def test_split_zstd_tar_unpacks_and_prepares(rexgradient, tmp_path, frames, capsys):
    parts = _split_zstd_tar(_tar_of(rexgradient / "deid_png", "deid_png"), tmp_path, frames=frames)
    root = tmp_path / "root"
    assert cli_main(["download", "--zstd-parts", str(parts[1]), "--out", str(root), "--quiet"]) == 0
    assert "3 parts" in capsys.readouterr().out
    want = sorted(p.relative_to(rexgradient).as_posix() for p in (rexgradient / "deid_png").rglob("*.png"))
    got = sorted(p.relative_to(root).as_posix() for p in (root / "deid_png").rglob("*.png"))
    assert got == want
    assert not list(root.glob(".*.tar*"))  # the temporary tar is gone
    args = ["prepare", "--format", "rexgradient", "--metadata-dir", str(rexgradient / "metadata")]
    assert cli_main([*args, "--images-dir", str(root), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())["rexgradient"]
    assert manifest["counts"]["kept"] > 0


def test_split_parts_missing_truncated_and_links(rexgradient, tmp_path, capsys):
    parts = _split_zstd_tar(_tar_of(rexgradient / "deid_png", "deid_png"), tmp_path)
    parts[1].unlink()
    with pytest.raises(ValueError, match="part 1 is missing"):
        split_parts(parts[0])
    parts = _split_zstd_tar(_tar_of(rexgradient / "deid_png", "deid_png"), tmp_path)
    parts[2].write_bytes(parts[2].read_bytes()[:-100])
    assert cli_main(["download", "--zstd-parts", str(parts[0]), "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "deid_png.part02: the zstd stream is cut short" in capsys.readouterr().err
    # a link inside the tar is refused, as for any archive
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("deid_png/x.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    hostile = tmp_path / "h"
    hostile.mkdir()
    parts = _split_zstd_tar(buf.getvalue(), hostile, pieces=2)
    assert cli_main(["download", "--zstd-parts", str(parts[0]), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "links are refused" in capsys.readouterr().err
    assert not (tmp_path / "b" / "deid_png").exists()
    plain = tmp_path / "p"
    plain.mkdir()
    (plain / "deid_png.part00").write_bytes(b"not zstd at all")
    assert (
        cli_main(["download", "--zstd-parts", str(plain / "deid_png.part00"), "--out", str(plain), "--quiet"])
        == 2
    )
    assert "not zstd data" in capsys.readouterr().err
