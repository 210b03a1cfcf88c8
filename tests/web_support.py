"""Helpers for the tests of the web demo, DICOM input and the OpenAI-compatible API: test files
(DICOM with identifying tags, a PNG too large to accept), a real server started as a subprocess,
and headless Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from conftest import BIN, OFFLINE_ENV, REPO

# Identifying values put into test DICOM files; none may ever come out of the app.
PHI = {
    "PatientName": "Quixote^Zebulon^Amadeus",
    "PatientID": "PHI-7731-XQ",
    "PatientBirthDate": "19230517",
    "StudyDate": "20250102",
    "SeriesDate": "20250103",
    "AcquisitionDate": "20250104",
    "InstitutionName": "Saint Elsewhere Radiology Clinic",
    "AccessionNumber": "ACC99887766",
    "ReferringPhysicianName": "Housemartin^Gregoria",
    "StudyDescription": "CHEST PA Zebulon follow-up",
}


def phi_strings() -> list[str]:
    """Each identifying value and its parts as they could appear in text (names without ^)."""
    out = set()
    for value in PHI.values():
        out.add(value)
        out.update(part for part in value.replace("^", " ").split() if len(part) >= 6)
    return sorted(out)


def write_dicom(
    path: Path,
    stored: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    phi: bool = True,
    frames: int = 1,
) -> Path:
    """A DX DICOM Part 10 file (explicit VR little endian) with the given stored pixel values."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dx = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dx
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = dx
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    if phi:
        for key, value in PHI.items():
            setattr(ds, key, value)
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if frames != 1:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_from_png(png: Path, out: Path, phi: bool = True) -> Path:
    """A 12-bit MONOCHROME1 DICOM of a greyscale PNG whose window maps back to that PNG exactly."""
    from PIL import Image

    grey = np.asarray(Image.open(png).convert("L"), dtype=np.uint16)
    stored = (255 - grey) * 16  # MONOCHROME1: high values are dark; 0..4080
    return write_dicom(out, stored, "MONOCHROME1", window=(2040.5, 4081.0), phi=phi)


def huge_png(path: Path, width: int = 8000, height: int = 8000) -> Path:
    """A valid all-black greyscale PNG of width x height pixels (64 Mpx; a few tens of kB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\x00" * ((width + 1) * height), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(f"server at {url} did not start:\n" + log.read_text()[-4000:])
        time.sleep(1)


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs on which the processes of the process group ``pid`` listen for
    TCP connections, as the kernel reports them (/proc/PID/fd and /proc/PID/net/tcp, tcp6)."""
    sockets = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(int(proc.name)) != pid:
                continue
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        sockets.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        for line in path.read_text().splitlines()[1:] if path.exists() else []:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in sockets:  # 0A: LISTEN
                continue
            hex_ip, hex_port = local.split(":")
            raw = bytes.fromhex(hex_ip)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((str(ipaddress.ip_address(raw)), int(hex_port, 16)))
    return found


@contextlib.contextmanager
def server(
    args: list[str], log: Path, url: str, env: dict | None = None, ready_path: str = "/", cwd: Path = REPO
):
    """Run a server command (its output to ``log``) until the block ends; yields the process.
    ``env`` adds variables to the test's environment; a value None removes one."""
    full_env = {**os.environ, **OFFLINE_ENV, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            args, cwd=cwd, env=full_env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(url + ready_path, proc, log)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# Without these Chromium looks up the network (updates, sync, QUIC probes) and can hang offline.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise AssertionError(
            "Debian's chromium is not installed: make test installs it or says how (scripts/system-deps.sh)"
        )
    return found


@contextlib.contextmanager
def browser_context():
    """A Playwright context in headless Debian Chromium with a fresh profile folder."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="xrayqwen2vl-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
            )
            ctx.set_default_timeout(60_000)
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_app(ctx, url: str):
    page = ctx.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(url)
    page.wait_for_selector("#generate")
    return page


def upload(page, paths: list[Path]) -> None:
    """Put files into the upload box and wait until the page lists them."""
    page.set_input_files("#views input[type=file]", [str(p) for p in paths])
    for p in paths:
        page.locator(f'#views td.filename[aria-label="{p.name}"]').first.wait_for()


def clear(page) -> None:
    """Empty the upload box (its Clear button shows only while it holds files)."""
    button = page.locator("#views button[aria-label='Clear']")
    if button.count():
        button.click()
        page.locator("#views td.filename").first.wait_for(state="detached")


def generate(page, timeout_s: float = 240) -> tuple[str, str]:
    """Press Generate report; wait for the finished status; return (status text, report text).

    A MutationObserver records every text the status shows, so a fast run whose final status
    reads the same as the previous one ("Done in 0.3 s") is still seen to finish: comparing
    snapshots could miss the short "Writing the report…" in between and wait forever.
    """
    page.evaluate(
        """() => { const el = document.querySelector('#status');
                   if (window.__statusObserver) window.__statusObserver.disconnect();
                   window.__statusLog = [];
                   window.__statusObserver = new MutationObserver(
                       () => window.__statusLog.push(el.innerText));
                   window.__statusObserver.observe(
                       el, {subtree: true, childList: true, characterData: true}); }"""
    )
    page.click("#generate")
    page.wait_for_function(
        """() => (window.__statusLog || []).some(s => s.startsWith('Done') || s.includes('⚠'))""",
        timeout=timeout_s * 1000,
    )
    return page.inner_text("#status").strip(), page.input_value("#report textarea")


def deflated_dicom(path: Path, private_bytes: int, pixels: np.ndarray | None = None) -> Path:
    """A Deflated Explicit VR Little Endian DICOM whose dataset holds a private element of
    ``private_bytes`` zero bytes: it deflates about 1000:1, so a 300 MiB element makes a 300 KB
    file (the deflate bomb of issue 20, cause 1)."""
    from pydicom import dcmread
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    plain = write_dicom(path, np.arange(64, dtype=np.uint16).reshape(8, 8) if pixels is None else pixels)
    ds = dcmread(plain)
    if private_bytes:
        ds.add_new(0x00091010, "OB", bytes(private_bytes))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)  # pydicom deflates the dataset as it writes
    return path
