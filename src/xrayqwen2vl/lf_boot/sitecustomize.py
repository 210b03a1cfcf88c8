"""Put on PYTHONPATH by the wrappers (scripts/lf_env.sh) so that every process LLaMA-Factory starts,
``llamafactory-cli`` and each torchrun rank alike, installs the inference shim (xrayqwen2vl/lf_shim.py)
before it imports LLaMA-Factory. Not a package module: Python runs it at start-up.

Python runs only the first ``sitecustomize`` on sys.path, so this one then runs the next one it
would have run (a site-wide one, or another put on PYTHONPATH after this folder)."""

import importlib.machinery
import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))

try:
    from xrayqwen2vl import lf_shim

    lf_shim.install()
except ImportError as e:  # the package is not importable in this interpreter: say so, don't fail
    print(f"xrayqwen2vl inference shim not installed: {e}", file=sys.stderr)


def _chain() -> None:
    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_chain()
