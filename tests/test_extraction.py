"""Archive extraction (data/download.py) called directly on archives built here: the unpack cap,
each member refusal with its reason, the extended-header cap at its boundary, the folder the
members go to, an archive without the expected folder, a second run, and the count returned.
Fast: with test_security_download.py (the same refusals through the command and a server on
127.0.0.1) these are the tests `make mutation` runs on extraction."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile

import pytest

from xrayqwen2vl.data.download import (
    MAX_HEADER,
    MAX_MEMBERS,
    MAX_RATIO,
    MAX_UNPACKED,
    MIN_CAP,
    _member_path,
    _mib,
    extract,
    unpack_cap,
)
from xrayqwen2vl.data.records import InputFileError

MIB = 1 << 20


def _tar(*members, fmt=tarfile.GNU_FORMAT) -> bytes:
    """A gzip'd tar; each member (name, data) is a file, (name, None) a folder, or a TarInfo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
                continue
            name, data = m
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _archive(tmp_path, *members, fmt=tarfile.GNU_FORMAT):
    path = tmp_path / "a.tgz"
    path.write_bytes(_tar(*members, fmt=fmt))
    out = tmp_path / "out"
    out.mkdir()
    return path, out


def _info(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def test_the_unpack_cap_grows_with_the_archive_between_its_bounds():
    assert (MAX_RATIO, MIN_CAP, MAX_UNPACKED, MAX_MEMBERS) == (100, 64 * MIB, 8 << 30, 100_000)
    assert unpack_cap(0) == MIN_CAP
    assert unpack_cap(MIN_CAP // 100) == MIN_CAP
    assert unpack_cap(MIN_CAP // 100 + 1) == MIN_CAP + 100 - MIN_CAP % 100
    assert unpack_cap(MIB) == 100 * MIB
    assert unpack_cap((8 << 30) // 100) == (8 << 30) // 100 * 100
    assert unpack_cap(1 << 30) == MAX_UNPACKED


def test_mib():
    assert _mib(MIB) == "1.0 MiB"
    assert _mib(1536 * MIB + MIB // 4) == "1,536.2 MiB"
    assert _mib(0) == "0.0 MiB"


def test_each_refused_member_says_why(tmp_path):
    a = tmp_path / "a.tgz"
    cases = [
        (
            _info("r/l", tarfile.SYMTYPE, "x"),
            f"{a}: member 'r/l' is a symbolic link (to 'x'); links are refused, "
            "the Open-i archives hold files and folders only",
        ),
        (
            _info("r/h", tarfile.LNKTYPE, "r/x"),
            f"{a}: member 'r/h' is a hard link (to 'r/x'); links are refused, "
            "the Open-i archives hold files and folders only",
        ),
        (
            _info("r/f", tarfile.FIFOTYPE),
            f"{a}: member 'r/f' is a device, FIFO or other special file; refused",
        ),
        (
            _info("r/c", tarfile.CHRTYPE),
            f"{a}: member 'r/c' is a device, FIFO or other special file; refused",
        ),
    ]
    outside = "would be written outside the folder it is unpacked to; refused"
    for name in ("/etc/x", "..", "../x", "r/../../x", "//x"):
        cases.append((tarfile.TarInfo(name), f"{a}: member {name!r} {outside}"))
    cases.append((tarfile.TarInfo("."), f"{a}: member '.': a file without a name; refused"))
    cases.append((tarfile.TarInfo("r/.."), f"{a}: member 'r/..': a file without a name; refused"))
    for member, message in cases:
        with pytest.raises(InputFileError) as err:
            _member_path(a, member)
        assert str(err.value) == message


def test_member_paths_are_normalised(tmp_path):
    a = tmp_path / "a.tgz"
    assert _member_path(a, tarfile.TarInfo("r/./x/../1.xml")) == "r/1.xml"
    assert _member_path(a, tarfile.TarInfo("..x/1.xml")) == "..x/1.xml"  # a name, not a step up
    assert _member_path(a, _info(".", tarfile.DIRTYPE)) == "."
    assert _member_path(a, _info("r/", tarfile.DIRTYPE)) == "r"


def test_files_and_folders_land_in_the_result_folder(tmp_path):
    archive, out = _archive(
        tmp_path,
        (".", None),
        ("r", None),
        ("r/empty", None),
        ("./r/1.xml", b"<a/>"),
        ("r/sub/2.xml", b"<b/>"),
    )
    assert extract(archive, out, "", "r") == 2
    assert (out / "r" / "1.xml").read_bytes() == b"<a/>" and (
        out / "r" / "sub" / "2.xml"
    ).read_bytes() == b"<b/>"
    assert (out / "r" / "empty").is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["r"]  # no unpack folder left
    # a second run finds the folder and counts it, unpacking nothing
    archive.write_bytes(b"not an archive any more")
    assert extract(archive, out, "", "r") == 2


def test_extract_to_puts_the_members_in_a_subfolder(tmp_path):
    archive, out = _archive(tmp_path, ("1.png", b"png"), ("2.png", b"png2"), ("3.png", b""))
    assert extract(archive, out, "images", "images") == 3
    assert sorted(p.name for p in (out / "images").iterdir()) == ["1.png", "2.png", "3.png"]
    assert sorted(p.name for p in out.iterdir()) == ["images"]


def test_an_archive_without_the_expected_folder(tmp_path):
    archive, out = _archive(tmp_path, ("other/1.xml", b"x"), ("b.txt", b"y"))
    with pytest.raises(InputFileError) as err:
        extract(archive, out, "", "r")
    assert str(err.value) == f"{archive}: expected a folder r/ inside, found: 'b.txt', 'other'"
    assert list(out.iterdir()) == []
    (tmp_path / "e").mkdir()
    empty = tmp_path / "e" / "e.tgz"
    empty.write_bytes(_tar())
    with pytest.raises(InputFileError) as err:
        extract(empty, tmp_path / "e", "", "r")
    assert str(err.value) == f"{empty}: expected a folder r/ inside, found: nothing"
    # r as a file is no folder either
    (tmp_path / "f").mkdir()
    archive, out = _archive(tmp_path / "f", ("r", b"x"))
    with pytest.raises(InputFileError, match="expected a folder r/ inside, found: 'r'$"):
        extract(archive, out, "", "r")


def test_a_damaged_archive_is_one_error_naming_it(tmp_path):
    archive = tmp_path / "a.tgz"
    archive.write_bytes(_tar(("r/1.xml", b"x" * 5000))[:-40])
    (tmp_path / "out").mkdir()
    with pytest.raises(InputFileError) as err:
        extract(archive, tmp_path / "out", "", "r")
    assert str(err.value).startswith(f"{archive}: cannot unpack (")
    assert list((tmp_path / "out").iterdir()) == []


def test_the_cap_counts_every_member_and_names_the_one_that_passes_it(tmp_path):
    archive, out = _archive(tmp_path, ("r/1.xml", b"x" * 600), ("r/2.xml", b"y" * 500))
    with pytest.raises(InputFileError) as err:
        extract(archive, out, "", "r", cap=1099)
    assert str(err.value) == (
        f"{archive}: unpacks to more than 0.0 MiB (member 'r/2.xml' declares 0.0 MiB); refused as a "
        "possible archive bomb (cap: 100 times the archive's size, at least 64.0 MiB, at most 8,192.0 MiB)"
    )
    assert extract(archive, out, "", "r", cap=1100) == 2
    (tmp_path / "o2").mkdir()
    with pytest.raises(InputFileError) as err:
        extract(archive, tmp_path / "o2", "", "r", max_members=1)
    assert str(err.value) == f"{archive}: more than 1 members; refused"
    (tmp_path / "o3").mkdir()
    assert extract(archive, tmp_path / "o3", "", "r", max_members=2) == 2


def _pax_archive(tmp_path, header_bytes: int, offset_member: bool = False):
    """A PAX archive whose extended header is exactly ``header_bytes`` long (one comment record)."""
    value_len = header_bytes - len(f"{header_bytes} comment=\n")
    info = tarfile.TarInfo("r/1.xml")
    info.size = 3
    info.pax_headers = {"comment": "c" * value_len}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        if offset_member:
            first = tarfile.TarInfo("r/0.xml")
            first.size = 2
            tar.addfile(first, io.BytesIO(b"ok"))
        tar.addfile(info, io.BytesIO(b"abc"))
    path = tmp_path / f"pax{header_bytes}.tgz"
    path.write_bytes(buf.getvalue())
    out = tmp_path / f"out{header_bytes}"
    out.mkdir()
    return path, out


def test_the_extended_header_cap_at_its_boundary(tmp_path):
    assert MAX_HEADER == 64 << 10
    archive, out = _pax_archive(tmp_path, MAX_HEADER)
    assert extract(archive, out, "", "r") == 1
    archive, out = _pax_archive(tmp_path, MAX_HEADER + 1, offset_member=True)
    with pytest.raises(InputFileError) as err:
        extract(archive, out, "", "r")
    # the second member's header: after one 512-byte header and one block of data
    assert str(err.value) == (
        f"{archive}: a PAX extended header at byte 1024 declares 65,537 bytes, more than 65,536; refused "
        "(a real one holds a path or a few attributes)"
    )
    assert list(out.iterdir()) == []


def test_a_gnu_long_name_header_is_named_as_such(tmp_path):
    archive, out = _archive(tmp_path, ("r/" + "n" * (MAX_HEADER + 10), b"x"))
    with pytest.raises(
        InputFileError, match=r": a GNU long-name extended header at byte 0 declares 65,549 bytes"
    ):
        extract(archive, out, "", "r")


def test_folders_are_made_for_members_whose_parents_are_not_listed(tmp_path):
    """tarfile lists a folder only when the archiver did: a file or folder deep inside comes alone."""
    archive, out = _archive(tmp_path, ("r/a/b/1.xml", b"1"), ("r/c/d", None), ("r/with space.xml", b"2"))
    assert extract(archive, out, "", "r") == 2
    assert (out / "r" / "a" / "b" / "1.xml").read_bytes() == b"1" and (out / "r" / "c" / "d").is_dir()
    assert (out / "r" / "with space.xml").read_bytes() == b"2"
    # and under a nested extract_to
    (tmp_path / "n").mkdir()
    archive, out = _archive(tmp_path / "n", ("1.png", b"p"))
    assert extract(archive, out, "images/all", "images") == 1
    assert (out / "images" / "all" / "1.png").read_bytes() == b"p"


def test_unpacked_files_are_not_executable(tmp_path):
    archive, out = _archive(tmp_path, ("r/1.xml", b"x"))
    extract(archive, out, "", "r")
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "r" / "1.xml").stat().st_mode & 0o777 == 0o644 & ~umask


def test_a_refusal_through_extract_names_the_archive(tmp_path):
    archive, out = _archive(tmp_path, ("r/1.xml", b"x"), _info("r/l", tarfile.SYMTYPE, "1.xml"))
    with pytest.raises(InputFileError) as err:
        extract(archive, out, "", "r")
    assert str(err.value) == (
        f"{archive}: member 'r/l' is a symbolic link (to '1.xml'); links are refused, "
        "the Open-i archives hold files and folders only"
    )
    assert list(out.iterdir()) == []


def test_the_names_found_instead_are_five_and_cut(tmp_path):
    long = "z" * 100
    archive, out = _archive(tmp_path, *[(f"{c}.txt", b"") for c in "abcdef"], (f"{long}/1.xml", b""))
    with pytest.raises(InputFileError) as err:
        extract(archive, out, "", "r")
    assert str(err.value) == (
        f"{archive}: expected a folder r/ inside, found: 'a.txt', 'b.txt', 'c.txt', 'd.txt', 'e.txt'"
    )
    (tmp_path / "l").mkdir()
    archive, out = _archive(tmp_path / "l", (f"{long}/1.xml", b""))
    with pytest.raises(InputFileError) as err:
        extract(archive, out, "", "r")
    assert str(err.value) == f"{archive}: expected a folder r/ inside, found: {'z' * 60!r}… (100 characters)"


def test_the_unpack_folder_is_made_inside_out(tmp_path, monkeypatch):
    """Inside --out (so that the finished folder is moved in place on one file system), not in the
    system's temporary folder: with that one missing, extraction still works."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    archive, out = _archive(tmp_path, ("r/1.xml", b"x"))
    assert extract(archive, out, "", "r") == 1
