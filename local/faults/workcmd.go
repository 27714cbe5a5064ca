package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/trustlog/trustlog/local/faults/history"
)

// workloadCommand runs the clients (inside the hub namespace, started by
// run) and writes each operation as a JSON line on stdout until it is
// told to stop.
func workloadCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("faults workload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", defaultOut(), "run directory")
	n := fs.Int("nodes", 3, "nodes")
	clients := fs.Int("clients", 6, "concurrent clients")
	opTime := fs.Duration("op-time", 5*time.Second, "bound of each operation")
	seed := fs.Uint64("seed", 1, "seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var nodes []*node
	for i := 1; i <= *n; i++ {
		nodes = append(nodes, &node{i: i, name: nodeName(i), dir: nodeDir(*out, i)})
	}
	ca, err := loadAuthority(*out)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	w := &workload{nodes: nodes, clients: *clients, opTime: *opTime, ca: ca,
		rng: mrand.New(mrand.NewPCG(*seed, *seed+1)),
		rec: func(op history.Op) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(op)
		}}
	w.run(ctx)
	return nil
}
