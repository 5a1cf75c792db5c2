#!/usr/bin/env bash
# Quick start: create .venv (Python 3.11), install the engine and its server, then run the main
# job end to end and stop: start `mpt up` in the background (on free ports), render the demo
# practice take (`mpt demo`), stream it to the engine with `mpt stream --speed 4` (live view on
# a terminal, then the summary), and stop `mpt up`. It needs no terminal and finishes by itself.
# Arguments are passed to `mpt stream` (for example --json, or --speed 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
. scripts/_venv.sh
ensure_venv server

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
# The engine only (--no-api): the demo does not use the REST API, which needs the `api` extra.
"$MPT" up --no-api --port 0 --metrics-port 0 --data-dir "$DATA_DIR" >"$RUN_DIR/up.out" 2>"$RUN_DIR/up.err" &
UP_PID=$!
address=""
deadline=$((SECONDS + READY_TIMEOUT_S))
while [ -z "$address" ]; do
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
done
sed -n '/^engine/p' "$RUN_DIR/up.out" >&2

_say "streaming the take to the engine at $address, 4x real time (mpt stream)"
"$MPT" stream "$DATA_DIR/demo/demo_performance.wav" \
    --target-bpm 96 --grid-start 0.5 --subdivision 2 \
    --speed 4 --server "$address" --data-dir "$DATA_DIR" "$@"

_say "stopping mpt up"
stop_up
trap - EXIT
_say "done; run \`$MPT up\` yourself and stream with \`$MPT stream FILE --target-bpm BPM\`"
