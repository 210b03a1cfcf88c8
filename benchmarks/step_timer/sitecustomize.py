"""Per-step timestamps from inside a real ``llamafactory-cli train`` run, for
benchmarks/train_throughput.py. Put this folder first on PYTHONPATH and set
XRAYQWEN2VL_STEP_LOG=FILE: when (and only when) ``transformers.trainer_callback`` is imported, its
``CallbackHandler.on_step_end`` is wrapped to append one JSON line per optimizer step on the main
process: global step, wall clock (after a CUDA synchronize), tokens seen so far, the process's peak
CUDA memory allocated and peak resident memory. Without the variable it does nothing. Nothing in
LLaMA-Factory or transformers is changed on disk, and the trainer's own behaviour is unchanged.
"""

import os
import sys

_LOG = os.environ.get("XRAYQWEN2VL_STEP_LOG")


def _patch(module) -> None:
    import json
    import resource
    import time

    handler = module.CallbackHandler
    original = handler.on_step_end

    def on_step_end(self, args, state, control):
        result = original(self, args, state, control)
        if state.is_world_process_zero:
            import torch

            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.synchronize()
            record = {
                "step": state.global_step,
                "t": time.time(),
                "tokens_seen": state.num_input_tokens_seen,
                "cuda_max_allocated": torch.cuda.max_memory_allocated() if cuda else None,
                "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
            with open(_LOG, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        return result

    handler.on_step_end = on_step_end


if _LOG:
    import importlib.abc
    import importlib.util

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "transformers.trainer_callback":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                _patch(module)

            spec.loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, _Finder())
