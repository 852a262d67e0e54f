#!/usr/bin/env bash
# On the GPU machine: keep transferred chunks in a stage directory outside the checkout and check them.
#
#   bash deploy/gpu/receive.sh .gpu-transfer/bundle.tar.003 [more chunks...]
#
# MANIFEST.json is read from the chunks' directory. Each chunk is verified against it (a bad one is
# discarded and reported), then the script prints which chunks the stage still lacks. Rerunnable:
# chunks already staged with the right checksum are kept. QUOTE_GPU_STAGE (default /var/tmp/quote-gpu).
set -euo pipefail
stage="${QUOTE_GPU_STAGE:-/var/tmp/quote-gpu}"
mkdir -p "$stage/chunks"
[ $# -ge 1 ] || { echo "usage: $0 CHUNK..." >&2; exit 2; }
manifest="$(dirname "$1")/MANIFEST.json"
[ -f "$manifest" ] || { echo "no MANIFEST.json next to $1: carry it with every chunk" >&2; exit 2; }
if [ -f "$stage/MANIFEST.json" ] && ! cmp -s "$manifest" "$stage/MANIFEST.json"; then
  echo "a different bundle was staged before: starting over" >&2
  rm -rf "$stage/chunks" "$stage/wheels" "$stage/site"
  mkdir -p "$stage/chunks"
fi
cp "$manifest" "$stage/MANIFEST.json"

python3 - "$stage" "$@" <<'PY'
import hashlib, json, shutil, sys
from pathlib import Path

stage, chunks = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
manifest = json.loads((stage / "MANIFEST.json").read_text())
expected = {c["name"]: c["sha256"] for c in manifest["chunks"]}
for chunk in chunks:
    digest = hashlib.sha256(chunk.read_bytes()).hexdigest()
    if expected.get(chunk.name) != digest:
        print(f"REJECTED {chunk.name}: checksum {digest[:16]} does not match the manifest", file=sys.stderr)
        continue
    shutil.copyfile(chunk, stage / "chunks" / chunk.name)
    print(f"staged {chunk.name} ({chunk.stat().st_size / 2**20:.1f} MiB)")
missing = [n for n, d in expected.items()
           if not (stage / "chunks" / n).exists()
           or hashlib.sha256((stage / "chunks" / n).read_bytes()).hexdigest() != d]
print(f"{len(expected) - len(missing)}/{len(expected)} chunks staged in {stage}"
      + (f"; missing: {' '.join(missing)}" if missing else "; complete: run deploy/gpu/install.sh"))
PY
