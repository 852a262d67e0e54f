#!/usr/bin/env bash
# On the GPU machine, after every chunk is staged (receive.sh): install, check, the GPU tests, the bench.
#
#   bash deploy/gpu/run_on_gpu.sh [tests-seconds] [bench-seconds]
#
# Each step is time-boxed and writes its output to $OUT (the device tool brings that folder back), so a
# run cut off at the device's limit still reports what it did. Exit status: the tests'.
set -uo pipefail
out="${OUT:-/tmp/quote-gpu-out}"
mkdir -p "$out"
tests_s="${1:-300}"
bench_s="${2:-240}"
export PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 --version; } > "$out/machine.txt" 2>&1
if ! bash deploy/gpu/install.sh > "$out/install.log" 2>&1; then
  tail -20 "$out/install.log"; exit 2
fi
# shellcheck disable=SC1091
source "${QUOTE_GPU_STAGE:-/var/tmp/quote-gpu}/env.sh"
python3 deploy/gpu/check.py > "$out/check.log" 2>&1; check=$?
tail -15 "$out/check.log"
[ "$check" -eq 0 ] || exit 3

timeout "$tests_s" python3 -m pytest -m gpu tests/sglang tests/conformance -q -rs -p no:cacheprovider -o timeout=150 \
  > "$out/gpu-tests.log" 2>&1
tests=$?
tail -25 "$out/gpu-tests.log"

if [ "$bench_s" -gt 0 ]; then
  timeout "$bench_s" python3 bench/sglang_throughput.py --new-tokens 64 \
    --configs vanilla quote-none quote-noop quote-mask --json "$out/bench.json" > "$out/bench.log" 2>&1
  tail -30 "$out/bench.log"
fi
exit "$tests"
