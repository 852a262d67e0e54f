#!/usr/bin/env python3
"""Pack the locked wheels into numbered chunks small enough for one transfer each, with checksums.

Input: the directory `resolve.py` filled (wheels + wheels.lock.json). Output: `bundle.tar.000`,
`bundle.tar.001`, … (each at most --chunk-mib) and `MANIFEST.json` (sha256 and size of every chunk
and of the whole bundle). The tar is deterministic (sorted names, zero mtimes and owners), so packing
the same wheels again gives byte-identical chunks: a transfer interrupted half-way resumes with the
chunks the GPU machine already holds.

--slim-kernel drops `sgl_kernel/flash_ops.abi3.so` (FlashAttention 3, 1.1 GB unpacked, ~340 MiB of
the ~365 MiB wheel) from the sglang-kernel wheel and its RECORD line: SGLang then runs with the
`triton` or `flashinfer` attention backend only (`attention_backend` must be set; FA3 is SGLang's
default on Hopper). The lock entry is updated with the new digest and marked `slimmed`.

    python3 deploy/gpu/pack.py .gpu-wheels --out .gpu-transfer --chunk-mib 56 --slim-kernel
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

SLIM_DROP = ("sgl_kernel/flash_ops.abi3.so",)
MIB = 1 << 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slim_wheel(data: bytes) -> bytes:
    """The sglang-kernel wheel without FlashAttention 3's library (and without its RECORD line)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename in SLIM_DROP:
                continue
            payload = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = payload.decode().splitlines(keepends=True)
                payload = "".join(line for line in lines if line.split(",")[0] not in SLIM_DROP).encode()
            dst.writestr(info, payload, compress_type=info.compress_type)
    return out.getvalue()


def load_wheels(source: Path, slim: bool) -> tuple[dict[str, bytes], dict]:
    """Read and verify every locked wheel; slim the kernel if asked. Returns (file → bytes, lock)."""
    lock = json.loads((source / "wheels.lock.json").read_text())
    wheels: dict[str, bytes] = {}
    for entry in lock["wheels"]:
        data = (source / entry["file"]).read_bytes()
        if sha256(data) != entry["sha256"]:
            raise SystemExit(f"{entry['file']}: checksum differs from wheels.lock.json; run resolve.py again")
        if slim and entry["name"] == "sglang-kernel":
            data = slim_wheel(data)
            entry.update(sha256=sha256(data), size=len(data), slimmed=True)
        wheels[entry["file"]] = data
    return wheels, lock


def bundle(wheels: dict[str, bytes], lock: dict) -> bytes:
    """A deterministic tar of the wheels and their (updated) lock."""
    out = io.BytesIO()
    members = {**wheels, "wheels.lock.json": (json.dumps(lock, indent=2) + "\n").encode()}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(f"wheels/{name}")
            info.size, info.mtime, info.mode = len(members[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(members[name]))
    return out.getvalue()


def write_chunks(data: bytes, out: Path, chunk: int) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("bundle.tar.*"):
        old.unlink()
    chunks = []
    for index, start in enumerate(range(0, len(data), chunk)):
        part = data[start : start + chunk]
        name = f"bundle.tar.{index:03d}"
        (out / name).write_bytes(part)
        chunks.append({"name": name, "sha256": sha256(part), "size": len(part)})
    return chunks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the directory resolve.py wrote")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chunk-mib", type=float, default=56.0, help="at most 60: each call also carries the repo")
    parser.add_argument("--slim-kernel", action="store_true", help="drop FA3 from sglang-kernel (see above)")
    args = parser.parse_args()
    if not 0 < args.chunk_mib <= 60:
        raise SystemExit("--chunk-mib must be in (0, 60]: a transfer is at most 64 MiB with the repository")
    wheels, lock = load_wheels(args.source, args.slim_kernel)
    data = bundle(wheels, lock)
    chunks = write_chunks(data, args.out, int(args.chunk_mib * MIB))
    manifest = {
        "bundle_sha256": sha256(data),
        "bundle_size": len(data),
        "slim_kernel": args.slim_kernel,
        "wheels": len(wheels),
        "chunks": chunks,
    }
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(wheels)} wheels, {len(data) / MIB:.1f} MiB in {len(chunks)} chunks of <= {args.chunk_mib} MiB:")
    for c in chunks:
        print(f"  {args.out}/{c['name']}  {c['size'] / MIB:5.1f} MiB  {c['sha256'][:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
