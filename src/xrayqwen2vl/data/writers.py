"""What ``prepare`` writes: the ShareGPT split files (``SampleWriter``, the last stage), the RGB or
resized image copies (``ImageCopies``), and the ``dataset_info.json`` and ``manifest.json``
entries (``write_outputs``). Nothing is in place until the run has judged the whole collection:
the split files are committed, or discarded with every copy the run made."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from ..fileio import AtomicJsonList, atomic_write_json, loads_json
from .images import PASS_THROUGH_MODES, ImagesFolder, write_copy
from .records import InputFileError
from .splits import SPLITS, hash_unit
from .stages import Study
from .verify import worker_pool

if TYPE_CHECKING:
    from .prepare import PrepareOptions


def dataset_info_entry(file_name: str) -> dict:
    """LLaMA-Factory ``dataset_info.json`` entry for one of our ShareGPT files."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }


class ImageCopies:
    """RGB / resized copies of the used images that need one, under OUT/images/NAME/, named by
    the image's resolved path inside the images folder: a copy can never land outside --out,
    inside the images folder, or on an input file."""

    def __init__(self, out_dir: Path, name: str, folder: ImagesFolder, inputs: set[Path]):
        self.out_dir = out_dir
        self.prefix = f"images/{name}"
        self.folder = folder
        self.inputs = inputs  # resolved input files no copy may be written to
        self.copy_of: dict[Path, str] = {}  # source -> copy, relative to out_dir
        self.source_of: dict[str, Path] = {}  # copy -> source
        self.created: list[Path] = []  # copies this run wrote where there was none: undone on failure
        self.dest_of: dict[str, Path] = {}  # copy -> its resolved destination, written there

    def refuse_linked_folders(self) -> None:
        """OUT/images or OUT/images/NAME a link (to anywhere): refused before the first copy."""
        for folder in (self.out_dir / "images", self.out_dir / self.prefix):
            if folder.is_symlink():
                raise InputFileError(f"{folder}: a link; the image copies stay inside --out, remove it")

    def add(self, src: Path) -> str:
        if src in self.copy_of:
            return self.copy_of[src]
        if not self.copy_of:
            self.refuse_linked_folders()
        inside = self.folder.relative(src)
        copy = f"{self.prefix}/{Path(inside).with_suffix('.png').as_posix()}"
        if copy in self.source_of:  # a.png and a.jpg: both kept, the second with a tag
            copy = f"{copy[:-4]}-{hashlib.sha256(inside.encode()).hexdigest()[:8]}.png"
        dest = (self.out_dir / copy).resolve()
        if self.out_dir.resolve() not in dest.parents:
            raise InputFileError(f"{self.out_dir / copy}: a link leads this copy outside --out; remove it")
        if dest in self.inputs or self.folder.real in dest.parents:
            raise InputFileError(
                f"{dest}: the copy of {src} would be written into the inputs; choose an --out outside them"
            )
        self.copy_of[src] = copy
        self.source_of[copy] = src
        self.dest_of[copy] = dest
        return copy

    def write(self, max_pixels: int | None, workers: int, progress: bool) -> int:
        """Write the copies, each to the resolved destination ``add`` checked. Their images were
        decoded by the check stage, so a copy failing here is rare (memory, a file changed
        meanwhile); it stops the run with one line naming the image, and ``discard`` then removes
        every copy this run made."""
        jobs = [(src, self.dest_of[copy], max_pixels) for copy, src in sorted(self.source_of.items())]
        bar = tqdm(total=len(jobs), desc="copies", unit="img", disable=not progress or not jobs)
        failed = None
        try:
            if workers <= 1 or len(jobs) < 64:
                results = map(_copy_job, jobs)
            else:
                pool = worker_pool(workers)
                results = pool.map(_copy_job, jobs, chunksize=16)
            for (src, dest, _), (created, error) in zip(jobs, results, strict=False):
                if created:
                    self.created.append(dest)
                if error and failed is None:
                    failed = f"{src}: cannot write its RGB copy ({error}); the run is stopped"
                bar.update()
        finally:
            if workers > 1 and len(jobs) >= 64:
                pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        if failed:
            raise InputFileError(failed)
        return len(jobs)

    def discard(self) -> None:
        """Remove the copies this run created, and the folders left empty by that."""
        for dest in self.created:
            dest.unlink(missing_ok=True)
        top = self.out_dir / "images"
        for dest in self.created:
            folder = dest.parent
            while folder != top and top in folder.parents:
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent
        with contextlib.suppress(OSError):
            top.rmdir()


def _copy_job(args: tuple[Path, Path, int | None]) -> tuple[bool, str | None]:
    """(whether the copy is new, None) or (whether written, the reason it failed)."""
    src, dest, max_pixels = args
    new = not dest.exists()
    try:
        write_copy(src, dest, max_pixels)
    except Exception as e:  # Pillow raises many types for data it cannot decode
        return False, f"{type(e).__name__}: {str(e)[:200]}"
    return new, None


class SampleWriter:
    """Stage 8: the ShareGPT samples of each study, appended to its split's file as the study
    comes (in reading order); image paths relative to --out. Nothing is in place until
    ``commit``."""

    def __init__(
        self, out_dir: Path, options: PrepareOptions, prompts: list[str], folder: ImagesFolder, copies
    ):
        self.options, self.prompts, self.folder, self.copies = options, prompts, folder, copies
        self.out_abs = os.path.abspath(out_dir)
        self.files: dict[str, AtomicJsonList] = {}
        for s in SPLITS:
            self.files[s] = AtomicJsonList(out_dir / f"{options.name}_{s}.json")
        self.reports = dict.fromkeys(SPLITS, 0)
        self.samples = dict.fromkeys(SPLITS, 0)
        self.images = dict.fromkeys(SPLITS, 0)

    def add(self, s: Study) -> None:
        options, prompts = self.options, self.prompts
        key = s.rec.study_key
        prompt = prompts[0] if len(prompts) == 1 else prompts[_pick(key, options.seed, len(prompts))]
        if s.rec.context:
            prompt = f"{s.rec.context}\n{prompt}"
        self.reports[s.split] += 1
        for group in s.samples:
            rel = []
            for x in group:
                if options.max_pixels or x.check.mode not in PASS_THROUGH_MODES:
                    rel.append(self.copies.add(x.path))
                else:
                    path = self.folder.abs / self.folder.relative(x.path)
                    rel.append(os.path.relpath(path, self.out_abs).replace(os.sep, "/"))
            self.files[s.split].append(
                {
                    "id": s.rec.id if options.views != "each" else f"{s.rec.id}/{group[0].ref.id}",
                    "messages": [
                        {"role": "user", "content": "<image>" * len(group) + prompt},
                        {"role": "assistant", "content": s.target},
                    ],
                    "images": rel,
                }
            )
            self.samples[s.split] += 1
            self.images[s.split] += len(rel)

    def commit(self) -> None:
        for f in self.files.values():
            f.commit()

    def discard(self) -> None:
        for f in self.files.values():
            f.discard()


def _pick(key: str, seed: int, n: int) -> int:
    return min(n - 1, int(hash_unit(f"prompt:{key}", seed) * n))


def input_files(inputs: dict) -> set[Path]:
    found = set()
    for value in inputs.values():
        try:
            p = Path(value).resolve()
        except (OSError, RuntimeError, TypeError, ValueError):
            continue
        if p.is_file():
            found.add(p)
    return found


def output_paths(out_dir: Path, name: str) -> tuple[dict[str, Path], dict[str, Path]]:
    """What a prepare run writes, for the output guard: its files, and the folder of its image
    copies."""
    files = {f"OUT/{name}_{s}.json": out_dir / f"{name}_{s}.json" for s in SPLITS}
    files["OUT/dataset_info.json"] = out_dir / "dataset_info.json"
    files["OUT/manifest.json"] = out_dir / "manifest.json"
    return files, {f"OUT/images/{name}": out_dir / "images" / name}


def write_outputs(out_dir: Path, name: str, manifest: dict) -> None:
    """After the split files: their dataset_info.json entries and the manifest entry (one
    manifest.json per folder, one entry per dataset name, like dataset_info.json)."""
    info_path = out_dir / "dataset_info.json"
    info = read_json_object(info_path)
    for split in SPLITS:
        info[f"{name}_{split}"] = dataset_info_entry(f"{name}_{split}.json")
    atomic_write_json(info_path, dict(sorted(info.items())))
    manifests = read_json_object(out_dir / "manifest.json")
    manifests[name] = manifest
    atomic_write_json(out_dir / "manifest.json", dict(sorted(manifests.items())))


def read_json_object(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        obj = loads_json(path.read_text(encoding="utf-8"), str(path))
    except json.JSONDecodeError as e:
        raise InputFileError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise InputFileError(f"{path}: expected a JSON object")
    return obj
