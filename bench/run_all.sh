#!/usr/bin/env bash
# Re-run every benchmark on this machine and rewrite its section of docs/benchmarks.md.
# Run it from anywhere, on a quiet machine: `bench/run_all.sh`.
# Each benchmark is one line of BENCHMARKS, a module and its arguments: append new ones there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"

BENCHMARKS=(
    "bench.bench_core"      # service vs plain faster-whisper, base int8 (~6–7 min on 2 cores)
    "bench.bench_burst --unbatched --rounds 3"  # 40-note burst, fair scheduler vs FIFO, tiny.en (~8 min on 2 cores)
    "bench.bench_batching"  # short-note burst, batching vs plain faster-whisper, base (needs espeak-ng)
    "bench.bench_soak --notes 2000"  # notes through submit() again and again: memory, fds, files (needs espeak-ng; long: ~30 min)
    "bench.bench_scaleout"  # one process vs `chatscribe worker` processes (needs redis-server)
    "bench.bench_fuzz"      # 2,000 mutated files through decode_audio and `chatscribe transcribe` (~5 min)
    "bench.bench_coverage"  # speech covered by words, service vs plain faster-whisper, tiny.en (~4 min)
    "bench.bench_coverage --model base --burst long"  # the same with base (~5 min)
    "bench.bench_kill_burst"  # 200 notes from 20 Slack channels, two SIGKILLs (~2–5 min)
    "bench.bench_language"  # short clips' language, detection alone vs the conversation's hints, base (needs espeak-ng)
    # speaker labels on built multi-speaker recordings: DER, words to the right speaker, count, base (~8 min on
    # 2 cores; needs espeak-ng and the speakers extra: PyTorch and resemblyzer's weights; exits 1 on a missed target)
    "bench.bench_speakers"
    "bench.bench_live"      # speakers into /v1/realtime at real-time pace, 1 and 4 at once, base (~3–4 min)
    "bench.bench_chat_live" # a 3.5-minute voice note's first words in its status, base (~3 min)
)

failed=()
all_started=$(date +%s)
for module in "${BENCHMARKS[@]}"; do
    started=$(date +%s)
    echo "== $module" >&2
    # shellcheck disable=SC2086  # word splitting wanted: an entry may carry arguments
    if "$PYTHON" -m $module > /dev/null; then
        echo "== $module: done in $(( $(date +%s) - started )) s" >&2
    else
        echo "== $module: FAILED after $(( $(date +%s) - started )) s" >&2
        failed+=("$module")
    fi
done
echo "== all benchmarks: $(( $(date +%s) - all_started )) s; results in docs/benchmarks.md" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "== failed: ${failed[*]}" >&2
    exit 1
fi
