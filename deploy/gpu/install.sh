#!/usr/bin/env bash
# On the GPU machine, once every chunk is staged: reassemble, verify, install, print the environment.
#
#   bash deploy/gpu/install.sh && source "${QUOTE_GPU_STAGE:-/var/tmp/quote-gpu}/env.sh"
#
# Reassembles the bundle from the staged chunks, checks it against MANIFEST.json and every wheel
# against wheels.lock.json, then installs the wheels with `pip install --no-index --no-deps` into
# $stage/site: the image's own packages (torch, triton, transformers, ...) are never touched, and
# nothing is fetched. Quote itself is not installed: env.sh puts this checkout's component folders on PYTHONPATH.
# Rerunnable: an install of the same bundle is skipped; a new bundle replaces the old site.
set -euo pipefail
stage="${QUOTE_GPU_STAGE:-/var/tmp/quote-gpu}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"

"$python" - "$stage" <<'PY'
import hashlib, io, json, sys, tarfile
from pathlib import Path

stage = Path(sys.argv[1])
manifest = json.loads((stage / "MANIFEST.json").read_text())
parts = []
for chunk in manifest["chunks"]:
    path = stage / "chunks" / chunk["name"]
    if not path.exists():
        sys.exit(f"chunk {chunk['name']} is not staged: run deploy/gpu/receive.sh with it first")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != chunk["sha256"]:
        sys.exit(f"chunk {chunk['name']} is corrupt: transfer it again")
    parts.append(data)
bundle = b"".join(parts)
if hashlib.sha256(bundle).hexdigest() != manifest["bundle_sha256"]:
    sys.exit("the reassembled bundle does not match MANIFEST.json: transfer the chunks again")
marker = stage / "site" / ".bundle"
if marker.exists() and marker.read_text() == manifest["bundle_sha256"]:
    print("this bundle is already installed")
    sys.exit(0)
with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
    tar.extractall(stage, filter="data")
lock = json.loads((stage / "wheels" / "wheels.lock.json").read_text())
for wheel in lock["wheels"]:
    data = (stage / "wheels" / wheel["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != wheel["sha256"]:
        sys.exit(f"{wheel['file']} does not match wheels.lock.json")
print(f"bundle verified: {len(lock['wheels'])} wheels")
PY

if [ ! -f "$stage/site/.bundle" ] || [ "$(cat "$stage/site/.bundle")" != "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bundle_sha256"])' "$stage/MANIFEST.json")" ]; then
  rm -rf "$stage/site"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$stage/site" "$stage"/wheels/*.whl
  "$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["bundle_sha256"], end="")' "$stage/MANIFEST.json" > "$stage/site/.bundle"
fi

mkdir -p "$stage/src"
rm -f "$stage/src/quote_serving" "$stage/src/quote_mod_sdk"  # links an older layout needed
# The wheels' directory is added as a *site* directory, not just a path, so the .pth files some wheels
# install are run (nvidia-cutlass-dsl puts its packages on sys.path that way). It comes after the
# image's site-packages, whose packages it never duplicates (resolve.py skips what the image has).
# sglang 0.5.17 registers configs (qwen3_asr, ...) that the image's newer transformers already ships;
# transformers refuses a second registration unless exist_ok, so SGLang's own registration is let win.
cat > "$stage/src/sitecustomize.py" <<EOF
import site

site.addsitedir("$stage/site")
try:
    from transformers.models.auto import configuration_auto as _auto

    _register = _auto._LazyConfigMapping.register

    def _register_again(self, key, value, exist_ok=False):
        return _register(self, key, value, exist_ok=True)

    _auto._LazyConfigMapping.register = _register_again
except Exception:  # no transformers here, or another layout: SGLang reports its own error
    pass
EOF
cat > "$stage/env.sh" <<EOF
# source me: Quote's checkout, then (through sitecustomize) the SGLang wheels
# Packages live under their import names (<component>/<import name>/), so the component folders are
# the whole import path: quote_mod_sdk at the top, quote_serving, quote_registry, quote_cli beneath.
export PYTHONPATH="$stage/src:$repo:$repo/serving:$repo/registry:$repo/cli\${PYTHONPATH:+:\$PYTHONPATH}"
export PATH="\$PATH:$stage/site/bin"
EOF
echo "installed into $stage/site; now: source $stage/env.sh && python3 deploy/gpu/check.py"
