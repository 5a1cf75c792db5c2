#!/usr/bin/env bash
# Quick start: create .venv (Python 3.11), install the engine, its server and the API, then run
# the main job end to end on the embedded defaults and stop: render the demo practice take
# (`mpt demo`), start `mpt up` (engine + API) in the background on free ports, log in as a demo
# student and create a practice session through the API, stream the take to the engine with
# `mpt stream --speed 4 --session-id ... --token ...` (live view on a terminal, then the
# summary), wait for the engine's summary to reach the API through the durable queue and print
# what the API now holds (points, streak, timing per beat, recommendations), and stop `mpt up`.
# It needs no terminal and finishes by itself. Arguments are passed to `mpt stream` (e.g. --json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
. scripts/_venv.sh
ensure_venv "server,api"

MPT="$VENV_DIR/bin/mpt"
DATA_DIR="${MPT_DATA_DIR:-.mpt}"
READY_TIMEOUT_S=180 # the first start compiles the engine's kernels
RUN_DIR="$(mktemp -d)"
UP_PID=""

stop_up() {
    if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
        kill -TERM "$UP_PID" # mpt up stops the engine gracefully (and kills it after a grace)
        wait "$UP_PID" || true
    fi
    rm -rf "$RUN_DIR"
}
trap stop_up EXIT

_say "rendering the demo practice take (mpt demo)"
"$MPT" demo --data-dir "$DATA_DIR" --json >/dev/null

_say "starting mpt up"
"$MPT" up --port 0 --metrics-port 0 --api-port 0 --data-dir "$DATA_DIR" \
    >"$RUN_DIR/up.out" 2>"$RUN_DIR/up.err" &
UP_PID=$!
address=""
api_url=""
deadline=$((SECONDS + READY_TIMEOUT_S))
while [ -z "$address" ] || [ -z "$api_url" ]; do
    if ! kill -0 "$UP_PID" 2>/dev/null; then
        cat "$RUN_DIR/up.out" "$RUN_DIR/up.err" >&2
        echo "error: mpt up exited before the engine was ready" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        cat "$RUN_DIR/up.err" >&2
        echo "error: the engine was not ready within ${READY_TIMEOUT_S} s" >&2
        exit 1
    fi
    sleep 0.2
    address="$(sed -n 's/^engine *gRPC \([^ ,(]*\).*/\1/p' "$RUN_DIR/up.out" | head -n 1)"
    api_url="$(sed -n 's/^api *\(http:[^ ,(]*\).*/\1/p' "$RUN_DIR/up.out" | head -n 1)"
done
sed -n '/^engine/p; /^api/p' "$RUN_DIR/up.out" >&2

_say "practising through the API: a session, the take streamed to the engine at 4x, the summary back in the API"
"$VENV_DIR/bin/python" scripts/demo_practice.py --api "$api_url" --engine "$address" \
    --mpt "$MPT" --data-dir "$DATA_DIR" "$DATA_DIR/demo/demo_performance.wav" -- "$@"

_say "stopping mpt up"
stop_up
trap - EXIT
_say "done; run \`$MPT up\` yourself and stream with \`$MPT stream FILE --target-bpm BPM\`"
