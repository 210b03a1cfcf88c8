"""`xrayqwen2vl download`: fetch and unpack the public Open-i archives, with resume."""

from __future__ import annotations


def run_download(args) -> int:
    from ..data.download import DownloadError, download

    if args.zstd_parts:
        return _unpack_parts(args)
    which = ("reports", "images") if args.only is None else (args.only,)
    try:
        record = download(
            args.out,
            base_url=args.base_url,
            which=which,
            retries=args.retries,
            backoff=args.backoff,
            do_extract=not args.no_extract,
            progress=not args.quiet,
            timeout=args.timeout,
        )
    except DownloadError as e:
        raise ValueError(str(e)) from None
    for name, entry in record.items():
        extra = f", {entry['files']} files in {args.out}/{entry['folder']}/" if "files" in entry else ""
        print(f"{name}: {entry['size']} bytes, sha256 {entry['sha256']}{extra}")
    print(
        f"next: xrayqwen2vl prepare --format openi --reports-dir {args.out}/ecgen-radiology "
        f"--images-dir {args.out}/NLMCXR_png --out data"
    )
    return 0


def _unpack_parts(args) -> int:
    from ..data.download import extract_zstd_parts

    done = extract_zstd_parts(args.zstd_parts, args.out, args.zstd_folder, progress=not args.quiet)
    print(
        f"{len(done['parts'])} parts ({', '.join(done['parts'][:3])}{', …' if len(done['parts']) > 3 else ''}): "
        f"{done['tar_bytes']} bytes of tar, {done['files']} files in {args.out}/{done['folder']}/"
    )
    return 0


def register(sub) -> None:
    from ..data.download import DEFAULT_BASE_URL

    p = sub.add_parser(
        "download",
        help="fetch the public Open-i report and PNG archives (resumable) and unpack them",
        description=(
            "Download NLMCXR_reports.tgz and NLMCXR_png.tgz from Open-i into OUT, resuming a partial "
            "download with an HTTP Range request, check the size against the server's headers, record "
            "size and SHA-256 in OUT/download.json, and unpack to OUT/ecgen-radiology/ and OUT/NLMCXR_png/ "
            "(links, special files, members leaving the folder and archive bombs are refused: doc/security.md). "
            "The collection is CC BY-NC-ND 4.0: research use, no redistribution of modified copies."
        ),
    )
    p.add_argument("--out", required=True, help="folder for the archives and the unpacked data")
    p.add_argument(
        "--base-url", default=DEFAULT_BASE_URL, help=f"where the archives are (default {DEFAULT_BASE_URL})"
    )
    p.add_argument("--only", choices=["reports", "images"], help="fetch one archive only")
    p.add_argument(
        "--retries", type=int, default=3, help="retries after a dropped connection, each resuming (default 3)"
    )
    p.add_argument(
        "--backoff", type=float, default=2.0, help="seconds before the first retry, doubling (default 2)"
    )
    p.add_argument("--timeout", type=float, default=60, help="socket timeout in seconds (default 60)")
    p.add_argument("--no-extract", action="store_true", help="download and verify only")
    p.add_argument(
        "--zstd-parts",
        metavar="FIRST_PART",
        help="instead of fetching Open-i: unpack a split zstd-compressed tar already downloaded (ReXGradient-160K's "
        "deid_png.part00, deid_png.part01, …; give one part) into OUT, under the same safety rules",
    )
    p.add_argument(
        "--zstd-folder", default="deid_png", help="the folder the split archive holds (default deid_png)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_download)
