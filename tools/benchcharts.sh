#!/usr/bin/env bash
# Redraws the report's charts (docs/img/report-*.svg) from benchmark output
# written by tools/benchreport.sh. Usage: bash tools/benchcharts.sh [file]
set -euo pipefail
cd "$(dirname "$0")/.."
in="$(realpath "${1:-docs/bench/report.txt}")"
img="$(realpath docs/img)"
chart() { (cd tools && go run ./benchchart -in "$in" "$@"); }
chart -match '^SideBySide/.*/keepalive/' -metric req/s -title 'Keep-alive GET /1.0 over mTLS: trustlogd vs a bare Go server (requests/s)' -out "$img/report-keepalive.svg"
chart -match '^SideBySide/.*/keepalive/interleaved' -metric ratio -title 'Keep-alive, interleaved slices: trustlogd req/s over the bare server req/s' -out "$img/report-keepalive-ratio.svg"
chart -match '^SideBySide/.*/keepalive/' -metric p99-µs -title 'Keep-alive GET /1.0: p99 latency at 64 clients' -out "$img/report-keepalive-p99.svg"
chart -match '^SideBySide/.*/handshake/' -metric req/s -title 'New connection + full TLS 1.3 handshake per request (handshakes/s)' -out "$img/report-handshake.svg"
chart -match '^(Replay100k/.*/batched|ProjectorReplay/|Follow/)' -metric events/s -title 'Replay rate (events/s); Follow: the transport alone' -out "$img/report-replay.svg"
chart -match '^Propagation/' -metric p99-µs -title 'Removal on A until B and C refuse: p99' -out "$img/report-propagation.svg"
chart -match '^LambdaColdStart1M/' -metric sec/op -title 'Lambda cold start from the snapshot, 1M events' -out "$img/report-coldstart.svg"
chart -match '^MemoryPerCertificate/' -metric B/cert -title 'Read-model memory per trusted certificate' -out "$img/report-memory.svg"
