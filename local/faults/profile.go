package main

import (
	"fmt"
	"github.com/trustlog/trustlog/local/faults/history"
	mrand "math/rand/v2"
	"time"
)

// Fault kinds the harness injects.
const (
	faultKill      = "kill"      // SIGKILL one node, restart it later
	faultPause     = "pause"     // SIGSTOP one node past the election timeouts, then SIGCONT
	faultIsolate   = "isolate"   // one node cut off from the others
	faultPartition = "partition" // a majority and a minority
	faultBridge    = "bridge"    // two halves that reach each other only through one node
	faultPowerOne  = "power-one" // one node loses power: unsynced bytes of its store are gone
	faultPowerAll  = "power-all" // every node loses power at once
	faultCorrupt   = "corrupt"   // a minority node's stream blocks damaged while it is down
	faultTruncate  = "truncate"  // a minority node's stream block truncated while it is down
)

// faultClass is the history's name of each kind of fault.
var faultClass = map[string]string{
	faultKill: history.FaultKill, faultPause: history.FaultPause,
	faultIsolate: history.FaultPartition, faultPartition: history.FaultPartition, faultBridge: history.FaultPartition,
	faultPowerOne: history.FaultPowerLoss, faultPowerAll: history.FaultPowerLoss,
	faultCorrupt: history.FaultCorrupt, faultTruncate: history.FaultCorrupt,
}

// allFaults lists every kind, in the order the short profile injects them.
var allFaults = []string{faultKill, faultPause, faultIsolate, faultPartition, faultBridge, faultPowerOne, faultPowerAll, faultCorrupt, faultTruncate}

// profile is how long and how hard a run is.
type profile struct {
	name    string
	nodes   int
	clients int
	// faults is the schedule; nil means random kinds for duration.
	faults []string
	// duration bounds a random schedule.
	duration time.Duration
	// faultFor is how long a fault lasts; calm is the time between two.
	faultFor, calm time.Duration
	// opTime bounds each client operation.
	opTime time.Duration
}

// profiles are the named runs: ci is short and deterministic (one of each
// fault, in a fixed order); long is the report's run.
var profiles = map[string]profile{
	"ci":   {name: "ci", nodes: 3, clients: 6, faults: allFaults, faultFor: 8 * time.Second, calm: 6 * time.Second, opTime: 5 * time.Second},
	"long": {name: "long", nodes: 5, clients: 10, duration: 30 * time.Minute, faultFor: 15 * time.Second, calm: 10 * time.Second, opTime: 5 * time.Second},
}

// planned is one fault of a schedule, with its targets.
type planned struct {
	kind string
	// nodes the fault applies to (1-based); for a partition or bridge,
	// the first group.
	nodes []int
	// other is the second group of a partition or bridge.
	other []int
}

// schedule returns the faults of a run of p with seed: p.faults in
// order, or random kinds until p.duration is filled.
func schedule(p profile, seed uint64) []planned {
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	kinds := p.faults
	if kinds == nil {
		for n := time.Duration(0); n < p.duration; n += p.faultFor + p.calm {
			kinds = append(kinds, allFaults[rng.IntN(len(allFaults))])
		}
	}
	perm := func() []int {
		out := make([]int, p.nodes)
		for i, v := range rng.Perm(p.nodes) {
			out[i] = v + 1
		}
		return out
	}
	minority := (p.nodes - 1) / 2
	var out []planned
	for _, k := range kinds {
		order := perm()
		f := planned{kind: k}
		switch k {
		case faultKill, faultPause, faultPowerOne, faultIsolate:
			f.nodes = order[:1]
			if k == faultIsolate {
				f.other = order[1:]
			}
		case faultPartition:
			f.nodes, f.other = order[:minority], order[minority:]
		case faultBridge:
			// order[0] bridges; the rest split in two halves.
			rest := order[1:]
			f.nodes, f.other = rest[:len(rest)/2], rest[len(rest)/2:]
		case faultPowerAll:
			f.nodes = order
		case faultCorrupt, faultTruncate:
			f.nodes = order[:1]
		}
		out = append(out, f)
	}
	return out
}

// String describes a planned fault.
func (f planned) String() string {
	switch f.kind {
	case faultPartition, faultIsolate:
		return fmt.Sprintf("%s %v | %v", f.kind, f.nodes, f.other)
	case faultBridge:
		return fmt.Sprintf("%s %v | %v (bridged by the rest)", f.kind, f.nodes, f.other)
	}
	return fmt.Sprintf("%s %v", f.kind, f.nodes)
}
