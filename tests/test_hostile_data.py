"""Hostile inputs, round 2, the data side (issue 20, causes 3, 5-7, 9, 11-14): each test builds
its hostile input and checks the right thing: the exact one-line message and its reason, the
tree of the folder around the output, the peak memory, or a time bound. A run that would hang
on the old code runs as a subprocess under a timeout, so it fails instead of hanging."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from conftest import OFFLINE_ENV, tool
from PIL import Image
from security_support import tree_digest

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data import download
from xrayqwen2vl.data.records import InputFileError

HANG_S = 60  # a run that takes this long is hanging (each of these takes a few seconds)


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory) -> Path:
    from xrayqwen2vl.synthetic.sample import generate_sample

    out = tmp_path_factory.mktemp("small")
    generate_sample(out, reports=8, seed=3, image_size=(64, 64), progress=False)
    return out


def _copy_sample(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest, symlinks=True)
    return dest


def _cli(*args: str, timeout: float = HANG_S) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE_ENV}
    return subprocess.run(
        [tool("xrayqwen2vl"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _one_error_line(capsys, rc: int) -> str:
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------ 3: tar extended headers


def _tar(build) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=build["format"]) as tar:
        info = tarfile.TarInfo(build["name"])
        info.size = 3
        info.pax_headers = build.get("pax", {})
        tar.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


BIG = 1 << 20  # 16 times the cap on an extended header (64 KiB)
EXTENDED = {
    "GNU long name": {"format": tarfile.GNU_FORMAT, "name": "ecgen-radiology/" + "a" * BIG},
    "PAX record": {
        "format": tarfile.PAX_FORMAT,
        "name": "ecgen-radiology/1.xml",
        "pax": {"comment": "x" * BIG},
    },
    "PAX path": {"format": tarfile.PAX_FORMAT, "name": "ecgen-radiology/" + "é" * (BIG // 2)},
}


@pytest.mark.parametrize("kind", list(EXTENDED))
def test_an_oversized_tar_extended_header_is_refused_before_it_is_read(kind, tmp_path):
    archive = tmp_path / "NLMCXR_reports.tgz"
    archive.write_bytes(_tar(EXTENDED[kind]))
    out = tmp_path / "out"
    out.mkdir()
    before = tree_digest(tmp_path, skip=(out,))
    tracemalloc.start()
    try:
        with pytest.raises(InputFileError) as e:
            download.extract(archive, out, "", "ecgen-radiology")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(e.value)
    assert message.startswith(f"{archive}: a ") and "extended header at byte 0 declares" in message
    assert f"more than {download.MAX_HEADER:,}; refused" in message and len(message) < 300
    assert peak < BIG // 2, f"{peak} bytes allocated: the header was read"
    assert tree_digest(tmp_path, skip=(out,)) == before and list(out.iterdir()) == []


def test_names_quoted_in_download_messages_are_cut(tmp_path):
    """A symlink member with a 30,000-character name (under the header cap): refused as a link,
    in one line of bounded length."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("ecgen-radiology/" + "n" * 30_000)
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/" + "p" * 30_000
        tar.addfile(info)
    archive = tmp_path / "a.tgz"
    archive.write_bytes(buf.getvalue())
    (tmp_path / "out").mkdir()
    with pytest.raises(InputFileError, match=r"is a symbolic link .*; links are refused") as e:
        download.extract(archive, tmp_path / "out", "", "ecgen-radiology")
    assert len(str(e.value)) < 600 and "(30,016 characters)" in str(e.value)


# ------------------------------------------------------------------ 12, 13: download inputs


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"NLMCXR_reports.tgz": {"size": 10, "url": "u"}}, "entry 'NLMCXR_reports.tgz': expected an object"),
        ('{"NLMCXR_reports.tgz": {"size": 1', "line 1, column 34: not valid JSON"),
        ("[" * 100_000, "JSON nested too deeply to read; refused"),
    ],
    ids=["entry without sha256", "malformed", "nested 100,000 deep"],
)
def test_a_bad_download_record_is_one_line_naming_it(record, reason, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "download.json").write_text(record if isinstance(record, str) else json.dumps(record))
    before = tree_digest(tmp_path)
    args = ["download", "--out", str(out), "--base-url", "http://127.0.0.1:9/", "--quiet", "--retries", "0"]
    err = _one_error_line(capsys, cli_main(args))
    assert err.startswith(f"xrayqwen2vl download: error: {out / 'download.json'}: ") and reason in err
    assert tree_digest(tmp_path) == before


def test_download_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    err = _one_error_line(capsys, cli_main(["download", "--out", str(tmp_path / "f"), "--quiet"]))
    assert (
        err
        == f"xrayqwen2vl download: error: {tmp_path / 'f'}: exists and is not a folder (--out must be a folder)"
    )


# ------------------------------------------------------------------ 5, 14: translate's cache and answers


@pytest.mark.parametrize(
    "content, line",
    [(b"first line\nlast line", 1), (b'{"a": 1}', 1), (b'{"source": "a", "translation": "b"}\nnot ours', 2)],
    ids=["text file", "one-line JSON", "cache then a foreign last line"],
)
def test_a_cache_that_is_not_ours_is_refused_untouched(content, line, tmp_path):
    from xrayqwen2vl.data.translate import Cache

    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as e:
        Cache(path)
    assert str(e.value).startswith(f"{path}: line {line}: ")
    assert path.read_bytes() == content


def test_only_a_line_of_ours_cut_by_a_kill_is_dropped(tmp_path):
    from xrayqwen2vl.data.translate import Cache

    path = tmp_path / "translations.jsonl"
    whole = json.dumps({"source": "Lungs are clear.", "translation": "双肺清晰。"}, ensure_ascii=False) + "\n"
    path.write_text(whole + '{"source": "The heart', encoding="utf-8")
    assert Cache(path).table == {"Lungs are clear.": "双肺清晰。"}
    assert path.read_text(encoding="utf-8") == whole
    path.write_text(whole.rstrip("\n"), encoding="utf-8")  # a whole record without its newline
    assert Cache(path).table == {"Lungs are clear.": "双肺清晰。"}
    assert path.read_text(encoding="utf-8") == whole


def test_c1_control_characters_are_dropped_from_answers():
    from xrayqwen2vl.data.translate import check_answer

    answer = "双肺\x9b31m清晰\x85。\x1b[0m\x7f"
    assert check_answer("Lungs are clear.", answer) == "双肺31m清晰。[0m"


# ------------------------------------------------------------------ 11: translate's deadline


class _Trickle(BaseHTTPRequestHandler):
    """Answers a chat completion one byte every 0.2 s: the body, or the headers as well."""

    protocol_version = "HTTP/1.1"
    mode = "body"

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"choices": [{"message": {"content": "双肺清晰。"}}]}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        if self.mode == "body":
            self.wfile.write(head)
            self.wfile.flush()
        data = body if self.mode == "body" else head + body
        try:
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_translate_timeout_is_a_deadline_per_request(mode):
    from xrayqwen2vl.data.translate import TranslateError, make_client, translate_one

    handler = type("H", (_Trickle,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = make_client(f"http://127.0.0.1:{server.server_address[1]}/v1", "k", timeout=1.0)
        start = time.monotonic()
        with pytest.raises(TranslateError, match="APITimeoutError"):
            translate_one(client, "m", "Lungs are clear.", retries=0, backoff=0, max_tokens=None)
        elapsed = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    assert elapsed < 3, f"{elapsed:.1f} s under --timeout 1 (the whole answer takes over 10 s)"


# ------------------------------------------------------------------ 6: FIFOs and orphan workers


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def test_prepare_skips_a_fifo_report_and_a_fifo_image(small_sample, tmp_path):
    raw = _copy_sample(small_sample, tmp_path / "raw")
    _fifo(raw / "ecgen-radiology" / "9999.xml")
    image = sorted((raw / "NLMCXR_png").glob("*.png"))[0]
    _fifo(image)
    out = tmp_path / "out"
    proc = _cli(
        "prepare", "--reports-dir", str(raw / "ecgen-radiology"), "--images-dir", str(raw / "NLMCXR_png"),
        "--out", str(out), "--quiet", "--workers", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())["openi"]
    reasons = {s["id"]: s["reason"] for s in manifest["skipped"]}
    assert reasons["9999"] == "not a regular file (a FIFO, socket or device); give a report file"
    unused = {u["image"]: u["reason"] for u in manifest["images_not_used"]}
    assert unused[image.stem] == "image not a regular file (a FIFO, socket or device)"


def test_prepare_skips_a_fifo_mimic_report(small_sample, tmp_path):
    from xrayqwen2vl.synthetic.formats import write_format

    root = tmp_path / "mimic"
    write_format("mimic", small_sample, root)
    report = sorted(root.rglob("s*.txt"))[0]
    _fifo(report)
    jpg = next(p for p in root.rglob("*") if p.is_dir() and p.name.startswith("mimic-cxr-jpg"))
    reports = next(p for p in root.rglob("*") if p.is_dir() and p.name.startswith("mimic-cxr-reports"))
    proc = _cli(
        "prepare", "--format", "mimic", "--images-dir", str(jpg), "--reports-dir", str(reports),
        "--out", str(tmp_path / "out"), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["mimic"]
    assert any("FIFO" in s["reason"] for s in manifest["skipped"]), manifest["skipped"]


def _dataset(folder: Path, images: list[str]) -> Path:
    samples = [
        {"id": str(i), "messages": [{"role": "user", "content": "<image>W"}, {"role": "assistant", "content": "No effusion."}], "images": [p]}
        for i, p in enumerate(images)
    ]  # fmt: skip
    (folder / "t.json").write_text(json.dumps(samples))
    (folder / "dataset_info.json").write_text(
        json.dumps({"t": {"file_name": "t.json", "formatting": "sharegpt"}})
    )
    return folder / "t.json"


def _predictions(path: Path, n: int) -> Path:
    line = json.dumps({"prompt": "W", "predict": "No effusion.", "label": "No effusion."})
    path.write_text((line + "\n") * n)
    return path


def test_evaluate_and_counterfactual_refuse_a_fifo_image(small_sample, tmp_path):
    png = sorted((small_sample / "NLMCXR_png").glob("*.png"))[0]
    (tmp_path / "a.png").write_bytes(png.read_bytes())
    _fifo(tmp_path / "f.png")
    dataset = _dataset(tmp_path, ["a.png", "f.png"])
    preds = _predictions(tmp_path / "p.jsonl", 2)
    proc = _cli("evaluate", "--predictions", str(preds), "--images-from", str(dataset), "--out", str(tmp_path / "ev"), "--bootstrap", "0")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        f"{tmp_path / 'f.png'}: not a regular file (a FIFO, socket or device); give an image file"
    )
    proc = _cli("counterfactual", "--dataset-dir", str(tmp_path), "--split", "t", "--kinds", "blank")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        f"{dataset}: entry 1: cannot read image {tmp_path / 'f.png'} (not a regular file (a FIFO, socket or device); give an image file)"
    )


def test_web_examples_leave_out_a_fifo(tmp_path):
    from xrayqwen2vl.serve.web import folder_examples

    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    _fifo(tmp_path / "b.png")
    assert folder_examples(tmp_path) == [[str(tmp_path / "a.png")]]


def test_workers_do_not_outlive_a_killed_run(small_sample, tmp_path):
    """prepare --workers 2 --verify-images full, stopped (SIGSTOP) as soon as its two worker
    processes are there and then killed (SIGKILL: no time to shut anything down): the workers
    are gone within a few seconds instead of waiting on their task queue for ever."""
    raw = _copy_sample(small_sample, tmp_path / "raw")
    for png in sorted((raw / "NLMCXR_png").glob("*.png")):  # a few ms of decoding each
        Image.open(png).resize((1536, 1536)).save(png)
    env = {**os.environ, **OFFLINE_ENV}
    args = [tool("xrayqwen2vl"), "prepare", "--reports-dir", str(raw / "ecgen-radiology"), "--images-dir",
            str(raw / "NLMCXR_png"), "--out", str(tmp_path / "out"), "--quiet", "--workers", "2",
            "--verify-images", "full"]  # fmt: skip
    run = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + HANG_S
    workers = []
    while time.monotonic() < deadline and run.poll() is None:
        try:
            workers = [p for p in parent.children() if "resource_tracker" not in " ".join(p.cmdline())]
        except psutil.Error:
            workers = []
        if len(workers) >= 2:
            os.kill(run.pid, signal.SIGSTOP)
            break
        time.sleep(0.005)
    assert len(workers) >= 2, "no worker processes seen"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    gone, alive = psutil.wait_procs(workers, timeout=5)
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} worker processes outlived the run"


# ------------------------------------------------------------------ 7: undecodable images


def _png_with_bad_data(image: Image.Image) -> bytes:
    """A PNG whose chunk structure is whole (the fast check passes) and whose image data is
    not a zlib stream (no decoder can read it)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            body = bytes(b ^ 0x5A for b in data[pos + 8 : pos + 8 + length])
            data[pos + 8 : pos + 8 + length] = body
            data[pos + 8 + length : pos + 12 + length] = struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + length
    return bytes(data)


@pytest.fixture(scope="module")
def kaggle(small_sample, tmp_path_factory) -> Path:
    """The sample in the Kaggle form, whose projections CSV states every view (so the fast check
    has no view to guess and decodes nothing of its own accord)."""
    from xrayqwen2vl.synthetic.formats import write_format

    root = tmp_path_factory.mktemp("kaggle")
    write_format("kaggle", small_sample, root)
    return root


@pytest.mark.parametrize(
    "mode, extra",
    [("P", []), ("I;16", []), ("LA", []), ("L", ["--max-pixels", "1024"])],
    ids=["palette", "16-bit", "alpha", "under --max-pixels"],
)
def test_an_undecodable_image_is_one_skipped_image(mode, extra, kaggle, tmp_path, capsys):
    raw = _copy_sample(kaggle, tmp_path / "raw")
    victim = sorted((raw / "images_normalized").glob("*.png"))[0]
    victim.write_bytes(_png_with_bad_data(Image.new(mode, (64, 64))))
    out = tmp_path / "out"
    args = ["prepare", "--format", "kaggle", "--reports-csv", str(raw / "indiana_reports.csv")]
    args += [
        "--projections-csv",
        str(raw / "indiana_projections.csv"),
        "--images-dir",
        str(raw / "images_normalized"),
    ]
    rc = cli_main([*args, "--out", str(out), "--quiet", "--workers", "1", *extra])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())["kaggle"]
    reasons = [u["reason"] for u in manifest["images_not_used"] if u["image"] == victim.name]
    reasons += [s["reason"] for s in manifest["skipped"] if victim.name in s["reason"]]
    assert len(reasons) == 1 and "image unreadable" in reasons[0], manifest
    used = set()
    for split in ("train", "val", "test"):
        for s in json.loads((out / f"kaggle_{split}.json").read_text()):
            used.update(s["images"])
    written = (out / "images").rglob("*") if (out / "images").exists() else []
    assert {p.relative_to(out).as_posix() for p in written if p.is_file()} <= used


def test_a_copy_that_fails_stops_the_run_and_leaves_no_copy(small_sample, tmp_path):
    from xrayqwen2vl.data.images import ImagesFolder
    from xrayqwen2vl.data.writers import ImageCopies

    images = _copy_sample(small_sample, tmp_path / "raw") / "NLMCXR_png"
    good, bad = sorted(images.glob("*.png"))[:2]
    bad.write_bytes(_png_with_bad_data(Image.new("P", (64, 64))))
    out = tmp_path / "out"
    out.mkdir()
    copies = ImageCopies(out, "openi", ImagesFolder(images), set())
    copies.add(good.resolve())
    copies.add(bad.resolve())
    with pytest.raises(InputFileError, match=rf"^{bad.resolve()}: cannot write its RGB copy \(") as e:
        copies.write(None, 1, False)
    assert "\n" not in str(e.value)
    copies.discard()
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ 9: counterfactual split names


@pytest.mark.parametrize("split", ["../victim/evil", "/tmp/evil", ".hidden", "a" * 300])
def test_counterfactual_split_names_stay_inside_the_dataset_folder(split, small_sample, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "victim").mkdir()
    png = sorted((small_sample / "NLMCXR_png").glob("*.png"))[:2]
    for p in png:
        (data / p.name).write_bytes(p.read_bytes())
    _dataset(data, [p.name for p in png])
    info = json.loads((data / "dataset_info.json").read_text())
    (data / "dataset_info.json").write_text(json.dumps({split: info["t"]}))
    before = tree_digest(tmp_path)
    err = _one_error_line(capsys, cli_main(["counterfactual", "--dataset-dir", str(data), "--split", split]))
    assert err.startswith("xrayqwen2vl counterfactual: error: --split (a dataset of ")
    assert "use letters, digits" in err or "longer than 100 characters" in err
    assert len(err) < 400 and tree_digest(tmp_path) == before


# ------------------------------------------------------------------ 12, 13: one line, naming the file


def test_prepare_name_and_out_are_checked_in_one_line(small_sample, tmp_path, capsys):
    args = ["prepare", "--reports-dir", str(small_sample / "ecgen-radiology"), "--images-dir", str(small_sample / "NLMCXR_png"), "--quiet"]  # fmt: skip
    before = tree_digest(tmp_path)
    err = _one_error_line(capsys, cli_main([*args, "--out", str(tmp_path / "o"), "--name", "n" * 300]))
    assert err.endswith("(300 characters): longer than 100 characters")
    err = _one_error_line(capsys, cli_main([*args, "--out", str(tmp_path / "o" / ("d" * 300))]))
    assert err.endswith("cannot create the output folder (File name too long)")
    assert tree_digest(tmp_path) == before
    (tmp_path / "file").write_text("x")
    err = _one_error_line(capsys, cli_main([*args, "--out", str(tmp_path / "file")]))
    assert err.endswith("'file': exists and is not a folder (--out must be a folder)") or err.endswith(
        f"{str(tmp_path / 'file')!r}: exists and is not a folder (--out must be a folder)"
    )


DEEP = "[" * 100_000 + "]" * 100_000


def test_json_nested_100000_deep_is_one_line_naming_the_file(small_sample, tmp_path, capsys):
    ann = tmp_path / "annotation.json"
    ann.write_text(DEEP)
    prepare = ["prepare", "--format", "r2gen", "--annotation", str(ann), "--images-dir", str(tmp_path)]
    err = _one_error_line(capsys, cli_main([*prepare, "--out", str(tmp_path / "o"), "--quiet"]))
    assert err == f"xrayqwen2vl prepare: error: {ann}: JSON nested too deeply to read; refused"
    reports = tmp_path / "r.jsonl"
    reports.write_text('{"id": "1", "text": "ok"}\n' + DEEP + "\n")
    err = _one_error_line(capsys, cli_main(["label", str(reports), "--out", str(tmp_path / "l.csv")]))
    assert err == f"xrayqwen2vl label: error: {reports}:2: JSON nested too deeply to read; refused"
    dataset = tmp_path / "d_train.json"
    dataset.write_text(DEEP)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)  # an endpoint that answers
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    translate = ["translate", "--input", str(dataset), "--out", str(tmp_path / "zh"), "--model", "m"]
    try:
        err = _one_error_line(capsys, cli_main([*translate, "--base-url", url, "--quiet"]))
    finally:
        server.shutdown()
        server.server_close()
    assert err == f"xrayqwen2vl translate: error: {dataset}: JSON nested too deeply to read; refused"


class _Models(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b'{"object": "list", "data": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_an_r2gen_integer_over_4300_digits_names_the_file(tmp_path, capsys):
    ann = tmp_path / "annotation.json"
    ann.write_text('{"train": [{"id": ' + "9" * 5000 + "}]}")
    args = ["prepare", "--format", "r2gen", "--annotation", str(ann), "--images-dir", str(tmp_path)]
    err = _one_error_line(capsys, cli_main([*args, "--out", str(tmp_path / "o"), "--quiet"]))
    assert err == (
        f"xrayqwen2vl prepare: error: {ann}: a JSON number with more than {sys.get_int_max_str_digits()} "
        "digits; refused"
    )


def _bomb_png(path: Path, side: int = 20_000) -> Path:
    """A 20,000 x 20,000 greyscale PNG of a few hundred bytes (400 megapixels)."""
    raw = zlib.compress(b"\x00" * (side + 1) * 64)  # 64 rows; the rest is missing (never decoded)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_image_is_one_line_in_evaluate_and_counterfactual(
    small_sample, tmp_path, capsys
):
    png = sorted((small_sample / "NLMCXR_png").glob("*.png"))[0]
    (tmp_path / "a.png").write_bytes(png.read_bytes())
    bomb = _bomb_png(tmp_path / "bomb.png")
    dataset = _dataset(tmp_path, ["a.png", "bomb.png"])
    preds = _predictions(tmp_path / "p.jsonl", 2)
    args = [
        "evaluate",
        "--predictions",
        str(preds),
        "--images-from",
        str(dataset),
        "--out",
        str(tmp_path / "ev"),
    ]
    err = _one_error_line(capsys, cli_main([*args, "--bootstrap", "0"]))
    assert err == f"xrayqwen2vl evaluate: error: {bomb}: cannot read image (DecompressionBombError)"
    err = _one_error_line(
        capsys, cli_main(["counterfactual", "--dataset-dir", str(tmp_path), "--split", "t"])
    )
    assert (
        err
        == f"xrayqwen2vl counterfactual: error: {dataset}: entry 1: cannot read image {bomb} (DecompressionBombError)"
    )


def test_a_lone_surrogate_in_predictions_is_reported_at_once(tmp_path, capsys):
    preds = _predictions(tmp_path / "p.jsonl", 3)
    lines = preds.read_text().splitlines()
    lines[1] = json.dumps({"prompt": "W", "predict": "No \ud800effusion.", "label": "No effusion."})
    preds.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    args = ["evaluate", "--predictions", str(preds), "--out", str(tmp_path / "ev"), "--bootstrap", "0"]
    err = _one_error_line(capsys, cli_main(args))
    assert time.monotonic() - start < 2  # before any metric is computed
    assert err == (
        f'xrayqwen2vl evaluate: error: {preds}:2: "predict" holds a lone surrogate (\\ud800 at character 4), '
        "which is not text; fix the escape"
    )
    assert not (tmp_path / "ev").exists()
