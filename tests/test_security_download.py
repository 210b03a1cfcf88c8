"""`xrayqwen2vl download` against hostile archives and servers (issue 15, items 1 and 7), all
served from http.server on 127.0.0.1: an archive built like CVE-2025-4517 (nested symlinks that
overflow PATH_MAX in the realpath check of tarfile's "data" filter), other links, members leaving
the folder, a 1 MB archive declaring 1 GiB, too many members, and a server answering a Range
request from the wrong offset. Nothing outside --out may change in any of them."""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
from pathlib import Path

import pytest
from security_support import Server, tgz, tree_digest

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data.download import MIN_CAP, extract
from xrayqwen2vl.data.records import InputFileError

REPORT = b"<eCitation><MedlineCitation/></eCitation>"


def _args(url, out, *extra):
    return ["download", "--out", str(out), "--base-url", url, "--quiet", "--backoff", "0.01", *extra]


def _blocks(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def _member(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    info.size = len(data) if info.isreg() else 0
    return info.tobuf(tarfile.GNU_FORMAT) + _blocks(data)


def _file(name: str, data: bytes) -> bytes:
    return _member(tarfile.TarInfo(name), data)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return _member(info)


def _dir(name: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return _member(info)


def _sparse(name: str, real_size: int, data: bytes) -> bytes:
    """An old-GNU sparse member: ``data`` at offset 0, then a hole up to ``real_size`` bytes.
    tarfile reports ``real_size`` as its size and would write a file that long."""
    head = bytearray(tarfile.TarInfo(name).tobuf(tarfile.GNU_FORMAT))
    head[124:136] = b"%011o\0" % len(data)  # stored bytes
    head[156:157] = tarfile.GNUTYPE_SPARSE
    head[386:410] = b"%011o\0%011o\0" % (0, len(data))  # one (offset, length) pair
    head[482] = 0  # no extension blocks
    head[483:495] = b"%011o\0" % real_size
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    return bytes(head) + _blocks(data)


def _targz(*members: bytes) -> bytes:
    return gzip.compress(b"".join(members) + b"\0" * (2 * tarfile.BLOCKSIZE), mtime=0)


def _cve_2025_4517() -> bytes:
    """Sixteen levels of 247-character folders reached through one-letter symlinks, so that the
    resolved path of the last link passes PATH_MAX and os.path.realpath stops resolving: the
    "data" filter of Python < 3.11.13 then takes ``escape`` for a link inside the folder. It
    points two levels above the unpack folder, at ``outside/``: a file written through it
    replaces outside/victim.txt and another creates outside/new.txt."""
    comp, steps, path, parts = "d" * 247, "abcdefghijklmnop", "", []
    for step in steps:
        parts += [_dir(os.path.join(path, comp)), _link(os.path.join(path, step), comp)]
        path = os.path.join(path, comp)
    deep = os.path.join(*steps, "l" * 254)
    parts.append(_link(deep, "../" * len(steps)))
    parts.append(_link("escape", deep + "/../" * 2 + "outside"))
    parts += [_file("escape/victim.txt", b"overwritten\n"), _file("escape/new.txt", b"created\n")]
    parts.append(_file("ecgen-radiology/1.xml", REPORT))
    return _targz(*parts)


@pytest.fixture
def around(tmp_path):
    """``tmp_path/o`` is --out; ``tmp_path/outside`` holds a file an attacker would like to
    replace. Yields (out, check): check() asserts that nothing outside ``out`` changed."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("original\n")
    out = tmp_path / "o"
    before = tree_digest(tmp_path, skip=(out,))

    def check():
        assert tree_digest(tmp_path, skip=(out,)) == before, "something outside --out changed"

    yield out, check


def _refused(archive: bytes, out: Path, capsys) -> str:
    with Server({"NLMCXR_reports.tgz": archive}) as srv:
        rc = cli_main(_args(srv.url, out, "--only", "reports", "--retries", "0"))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (out / "ecgen-radiology").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".extract")], "unpack folder left behind"
    return err


def test_cve_2025_4517_nested_symlink_archive_writes_nothing_outside(around, capsys):
    out, check = around
    err = _refused(_cve_2025_4517(), out, capsys)
    assert "is a symbolic link" in err and "links are refused" in err
    check()


@pytest.mark.parametrize(
    "members, message",
    [
        ((_link("ecgen-radiology/2.xml", "1.xml"),), "is a symbolic link"),  # even one pointing inside
        ((_link("ecgen-radiology/2.xml", "ecgen-radiology/1.xml", tarfile.LNKTYPE),), "is a hard link"),
        ((_link("ecgen-radiology/2.xml", "../outside/victim.txt", tarfile.LNKTYPE),), "is a hard link"),
        ((_file("ecgen-radiology/a/../../../outside/victim.txt", b"x"),), "would be written outside"),
        ((_file("/abs/victim.txt", b"x"),), "would be written outside"),
        ((_link("ecgen-radiology/fifo", "", tarfile.FIFOTYPE),), "device, FIFO or other special file"),
        ((_file("ecgen-radiology/1.xml", b"again"),), "File exists"),  # no member written over another
    ],
    ids=["symlink-inside", "hardlink-inside", "hardlink-out", "dotdot", "absolute", "fifo", "duplicate"],
)
def test_links_special_files_and_escaping_names_are_refused(around, capsys, members, message):
    out, check = around
    err = _refused(_targz(_file("ecgen-radiology/1.xml", REPORT), *members), out, capsys)
    assert message in err, err
    check()


def test_archive_bomb_is_refused_before_it_is_written(around, capsys):
    """A 1 MB archive whose sparse member declares 1 GiB (stored: a few bytes)."""
    out, check = around
    bomb = _targz(
        _file("ecgen-radiology/1.xml", REPORT),
        _file("ecgen-radiology/padding.bin", os.urandom(1 << 20)),  # incompressible: a 1 MB archive
        _sparse("ecgen-radiology/2.xml", 1 << 30, b"<eCitation>"),
    )
    assert (1 << 20) < len(bomb) < (1 << 20) + 10_000
    err = _refused(bomb, out, capsys)
    assert re.search(
        r"unpacks to more than 100\.\d MiB \(member 'ecgen-radiology/2.xml' declares 1,024.0 MiB", err
    )
    assert "archive bomb" in err
    check()


def test_size_and_member_caps_at_their_boundary(tmp_path):
    archive = tmp_path / "a.tgz"
    archive.write_bytes(tgz({f"ecgen-radiology/{i}.xml": b"x" * 100 for i in range(10)}))
    for n, (cap, members) in enumerate([(1000, 10), (999, 10), (1000, 9)]):
        out = tmp_path / f"out{n}"
        out.mkdir()
        if n == 0:
            assert extract(archive, out, "", "ecgen-radiology", cap=cap, max_members=members) == 10
            continue
        reason = "unpacks to more than" if cap < 1000 else "more than 9 members"  # each cap its own
        with pytest.raises(InputFileError, match=reason):
            extract(archive, out, "", "ecgen-radiology", cap=cap, max_members=members)
        assert list(out.iterdir()) == []
    # the caps grow with the archive: Open-i's real archives stay far below them
    assert MIN_CAP >= 64 << 20


@pytest.mark.parametrize("shift", [100, 10**9], ids=["206-from-100-bytes-early", "206-from-byte-0"])
def test_range_reply_at_the_wrong_offset_restarts_from_zero(tmp_path, shift, capsys):
    data = os.urandom(300_000)
    files = {"NLMCXR_png.tgz": data}
    out = tmp_path / "o"
    before = tree_digest(tmp_path, skip=(out,))
    with Server(files, drop={"NLMCXR_png.tgz"}, shift=shift) as srv:
        args = _args(srv.url, out, "--only", "images", "--no-extract")
        assert cli_main([*args, "--retries", "0"]) == 2
        part = out / "NLMCXR_png.tgz.part"
        assert 0 < part.stat().st_size < len(data)
        assert cli_main([*args, "--retries", "0"]) == 0, capsys.readouterr().err
        ranges = [rng for _, rng, _ in srv.log]
        assert ranges[1].startswith("bytes=") and ranges[2] is None  # asked for the rest, then restarted
    assert (out / "NLMCXR_png.tgz").read_bytes() == data
    assert not part.exists()
    assert tree_digest(tmp_path, skip=(out,)) == before


def test_part_longer_than_the_file_restarts_from_zero(tmp_path, capsys):
    data = os.urandom(50_000)
    out = tmp_path / "o"
    out.mkdir()
    (out / "NLMCXR_png.tgz.part").write_bytes(os.urandom(60_000))  # e.g. a failed earlier resume
    with Server({"NLMCXR_png.tgz": data}) as srv:
        rc = cli_main(_args(srv.url, out, "--only", "images", "--no-extract", "--retries", "0"))
        assert rc == 0, capsys.readouterr().err
        assert [code for _, _, code in srv.log] == [0, len(data)]  # 416, then the whole file
    assert (out / "NLMCXR_png.tgz").read_bytes() == data


def test_sparse_helper_builds_what_tarfile_reads():
    """The bomb above is what it claims: tarfile sees a 1 GiB member backed by 11 bytes."""
    raw = gzip.decompress(_targz(_sparse("x.xml", 1 << 30, b"<eCitation>")))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        (member,) = tar.getmembers()
        assert member.issparse() and member.size == 1 << 30
        assert tar.extractfile(member).read(11) == b"<eCitation>"
