#!/usr/bin/env python3
"""Download the wheels the GPU machine lacks for the SGLang backend, and lock them.

Runs on a machine that reaches PyPI (not the GPU machine). Reads `requirements.txt` (the top-level
wheels) and `image-provided.txt` (what the GPU image already has: never downloaded, never
replaced), then walks the requirements breadth-first with `pip download --no-deps` for the GPU
machine's platform (CPython 3.12, manylinux x86_64), reading each wheel's `Requires-Dist` to find
the next ones. A requirement line ending in `# no-deps` is downloaded but not expanded: sglang's
own list names every optional kernel and multimodal package, so the lines below it name what the
in-process scheduler imports instead. Writes `wheels.lock.json` (name, version, file, sha256,
size, who needed it) and reports requirements the image satisfies with another version.

Rerunnable: wheels already in --out are reused; the lock is rewritten from scratch.

    python3 deploy/gpu/resolve.py --out .gpu-wheels
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

HERE = Path(__file__).resolve().parent
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (39, 35, 34, 31, 28, 27, 24, 17)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
TARGET_ENV = {
    **default_environment(),
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


@dataclass
class Locked:
    name: str
    version: str
    file: str
    sha256: str
    size: int
    required_by: list[str] = field(default_factory=list)


@dataclass
class Resolution:
    wheels: dict[str, Locked] = field(default_factory=dict)
    provided_mismatch: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def read_provided(path: Path) -> dict[str, str | None]:
    """name → version (None: present, version unknown) from `name==version` or bare `name` lines."""
    provided: dict[str, str | None] = {}
    for line in read_lines(path):
        name, _, version = line.split("#")[0].strip().partition("==")
        provided[canonicalize_name(name)] = version.strip() or None
    return provided


def wheel_requirements(wheel: Path, extras: set[str]) -> list[Requirement]:
    """The wheel's Requires-Dist that apply on the GPU machine (base, plus the requested extras)."""
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(metadata).decode()
    found = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.partition(":")[2].strip())
        if req.marker is None or any(req.marker.evaluate({**TARGET_ENV, "extra": e}) for e in extras | {""}):
            found.append(req)
    return found


def download(req: Requirement, out: Path, pip: list[str]) -> Path:
    """`pip download --no-deps` of one requirement for the GPU platform; returns the wheel."""
    spec = f"{req.name}{req.specifier}"
    cached = _already_downloaded(req, out)
    if cached is not None:
        return cached
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    subprocess.run([*cmd, *platforms, "-d", str(out), spec], check=True, stdout=subprocess.DEVNULL)
    found = _already_downloaded(req, out)
    if found is None:
        raise RuntimeError(f"pip downloaded nothing matching {spec}")
    return found


def _already_downloaded(req: Requirement, out: Path) -> Path | None:
    best: tuple[Version, Path] | None = None
    for wheel in out.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        if name == canonicalize_name(req.name) and req.specifier.contains(version, prereleases=True):
            best = max(best, (version, wheel)) if best else (version, wheel)
    return best[1] if best else None


def resolve(requirements: list[str], provided: dict[str, str | None], out: Path, pip: list[str]) -> Resolution:
    result = Resolution()
    queue: deque[tuple[Requirement, bool, str]] = deque()
    for line in requirements:
        text, _, comment = line.partition("#")
        queue.append((Requirement(text.strip()), "no-deps" not in comment, "requirements.txt"))
    while queue:
        req, expand, parent = queue.popleft()
        name = canonicalize_name(req.name)
        if name in provided:
            have = provided[name]
            if have is not None and not req.specifier.contains(Version(have).public, prereleases=True):
                result.provided_mismatch.append(f"{parent} wants {req}, the image has {have} (kept)")
            continue
        if name in result.wheels:
            locked = result.wheels[name]
            locked.required_by.append(parent)
            if not req.specifier.contains(locked.version, prereleases=True):
                first = locked.required_by[0]
                result.conflicts.append(f"{parent} wants {req}, {locked.version} was locked for {first}")
            continue
        wheel = download(req, out, pip)
        _, version, _, _ = parse_wheel_filename(wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        result.wheels[name] = Locked(name, str(version), wheel.name, digest, wheel.stat().st_size, [parent])
        if expand:
            for dep in wheel_requirements(wheel, set(req.extras)):
                queue.append((dep, True, f"{name}=={version}"))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for the wheels and wheels.lock.json")
    parser.add_argument("--requirements", type=Path, default=HERE / "requirements.txt")
    parser.add_argument("--provided", type=Path, default=HERE / "image-provided.txt")
    parser.add_argument("--pip", default=f"{sys.executable} -m pip", help="the pip command to download with")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result = resolve(read_lines(args.requirements), read_provided(args.provided), args.out, args.pip.split())
    wanted = {w.file for w in result.wheels.values()}
    for stale in args.out.glob("*.whl"):
        if stale.name not in wanted:
            stale.unlink()  # an earlier run's choice; keep exactly one version of each
    lock = {
        "platform": PLATFORMS,
        "python": "cp312",
        "wheels": [asdict(w) for w in sorted(result.wheels.values(), key=lambda w: w.name)],
        "provided_mismatch": result.provided_mismatch,
        "conflicts": result.conflicts,
    }
    (args.out / "wheels.lock.json").write_text(json.dumps(lock, indent=2) + "\n")
    total = sum(w.size for w in result.wheels.values())
    for w in sorted(result.wheels.values(), key=lambda w: -w.size):
        print(f"{w.size / 2**20:9.1f} MiB  {w.file}")
    print(f"{total / 2**20:9.1f} MiB  in {len(result.wheels)} wheels -> {args.out}/wheels.lock.json")
    for line in result.provided_mismatch:
        print(f"note: {line}")
    for line in result.conflicts:
        print(f"CONFLICT: {line}")
    return 1 if result.conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
