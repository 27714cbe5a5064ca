#!/usr/bin/env bash
# Runs the benchmarks of the performance report (docs/benchmarks.md, "Scale
# and performance report") into docs/bench/report.txt and redraws its charts
# from that output. Takes ≈ 25 minutes on a 2-core machine; run it on a quiet
# machine. Usage: bash tools/benchreport.sh [output file]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/bench/report.txt}"
mkdir -p "$(dirname "$out")"
{
	echo "# $(date -u +%FT%TZ) $(go version) $(nproc) CPUs"
	go test -run '^$' -bench 'SideBySide' -benchmem -benchtime 3s -count 5 -timeout 60m ./local/daemon/
	go test -run '^$' -bench 'Replay100k|ProjectorReplay' -benchmem -count 5 -timeout 60m ./projections/
	go test -run '^$' -bench '^BenchmarkSnapshot$' -count 3 -timeout 30m ./projections/
	go test -run '^$' -bench 'MemoryPerCertificate' -count 3 -timeout 60m ./projections/
	go test -run '^$' -bench 'Propagation' -benchtime 500x -count 5 -timeout 30m ./local/e2e/
	go test -run '^$' -bench 'LambdaColdStart1M' -benchtime 5x -count 1 -timeout 60m ./local/e2e/
	go test -run '^$' -bench 'LoadSnapshot|Follow' -benchmem -benchtime 3x -count 3 ./events/natsstore/
	go test -run '^$' -bench 'TokenRedeem$' -benchmem -benchtime 200x -count 5 -timeout 30m ./local/daemon/
} | tee "$out"
bash tools/benchcharts.sh "$out"
