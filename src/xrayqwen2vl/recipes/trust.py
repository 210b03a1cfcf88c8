"""Checks of what a config would let run: ``trust_remote_code``, and the model and adapter
folders scanned for fields that make the loaders fetch or run code and for pickled weights
(``model_scan``, the one scan ``report`` and ``web`` use too)."""

from __future__ import annotations

import os
from pathlib import Path

from ..model_scan import remote_code_allowed, remote_code_problem, scan_model_folder
from .config import names
from .report import Report


def check_trust(r: Report, env: dict) -> None:
    """One line per problem; remote code (``trust_remote_code``, ``auto_map``) passes only with
    XRAYQWEN2VL_ALLOW_REMOTE_CODE=1 (``check --allow-remote-code`` sets it)."""
    r.checked.append("code")
    allowed = remote_code_allowed(env=env)
    line = remote_code_problem(r.recipe.values, allowed)
    if line:
        r.fail(line)
    folders = [("model_name_or_path", str(r.recipe.get("model_name_or_path") or ""))]
    folders += [("adapter_name_or_path", a) for a in names(r.recipe.get("adapter_name_or_path"))]
    for key, folder in folders:
        path = Path(os.path.expanduser(folder)) if folder else None
        if path is None or not path.is_dir():
            continue  # missing folders are recipes.models' to word
        for problem in scan_model_folder(path, allow_remote_code=allowed):
            r.fail(f"{key}: {folder}: {problem}")
