#!/usr/bin/env python3
"""On the GPU machine, after install.sh: is everything the SGLang backend imports there, at the pins?

Prints the versions that matter, imports SGLang's scheduler chain and Quote's backend, and says
what is missing. A missing module is a line to add to deploy/gpu/requirements.txt (then resolve,
pack and transfer again). Exit status 0 only when the backend can start.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import traceback

PINS = {"torch": "2.11.0", "sglang": "0.5.17", "sglang-kernel": "0.4.5", "flashinfer-python": "0.6.15.post1"}
MODULES = [
    "sgl_kernel",
    "flashinfer",
    "sglang",
    "sglang.srt.server_args",
    "sglang.srt.managers.scheduler",
    "sglang.srt.model_executor.model_runner",
    "sglang.srt.models.llama",
    "sglang.srt.layers.attention.triton_backend",
    "sglang.srt.mem_cache.common",
    "quote_serving.engine.sglang.launcher",
]


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def main() -> int:
    ok = True
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    for name, pin in PINS.items():
        have = version(name)
        good = have is not None and have.split("+")[0] == pin
        ok &= good
        print(f"  {name:18} {have or 'missing':22} {'ok' if good else f'want {pin}'}")
    missing: set[str] = set()
    for module in MODULES:
        try:
            importlib.import_module(module)
            print(f"  import {module:48} ok")
        except ModuleNotFoundError as exc:
            ok = False
            missing.add(str(exc.name).split(".")[0])
            print(f"  import {module:48} MISSING {exc.name}")
        except Exception as exc:  # a broken import is reported, not fatal: the next ones may say more
            ok = False
            print(f"  import {module:48} FAILED {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=3)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"  cuda {torch.version.cuda}, device: {device}")
    try:
        from quote_serving.engine.sglang.compat import unavailable_reason

        reason = unavailable_reason()
        print(f"  quote backend: {'ready' if reason is None else reason}")
        ok &= reason is None
    except Exception as exc:
        ok = False
        print(f"  quote backend: cannot import ({exc})")
    if missing:
        print(f"add to deploy/gpu/requirements.txt (distribution names may differ): {' '.join(sorted(missing))}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
