package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/local/faults/history"
)

// runConfig is one run of the harness.
type runConfig struct {
	profile profile
	seed    uint64
	out     string // run directory: history, node logs, data
	repo    string // the repository to build trustlogd from
	sync    string // trustlogd's --sync for every node; "" keeps its default
	log     io.Writer
}

// harness is a running cluster under test.
type harness struct {
	cfg   runConfig
	net   *network
	nodes []*node
	hist  *history.Writer
	logf  func(format string, args ...any)
}

// maxStaleness is the cluster's core.max_staleness during a run: short,
// so that the bound the checker holds the cluster to is short too.
const maxStaleness = 5 * time.Second

// run sets the cluster up, drives the workload through the schedule,
// heals, records every node's final state and returns the history's path.
func run(ctx context.Context, cfg runConfig) (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("the fault harness needs root: it makes network namespaces and FUSE mounts")
	}
	if err := os.MkdirAll(cfg.out, 0o700); err != nil {
		return "", err
	}
	h := &harness{cfg: cfg}
	h.logf = func(format string, args ...any) {
		fmt.Fprintf(cfg.log, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	// Whatever an earlier run left behind goes first.
	if err := clean(cfg.out); err != nil {
		return "", fmt.Errorf("cleaning up an earlier run: %w", err)
	}
	defer func() {
		h.logf("cleaning up")
		if err := clean(cfg.out); err != nil {
			h.logf("clean up: %v", err)
		}
	}()
	bin := filepath.Join(cfg.out, "trustlogd")
	h.logf("building trustlogd")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./local")
	build.Dir, build.Stdout, build.Stderr = cfg.repo, cfg.log, cfg.log
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("go build ./local: %w", err)
	}
	histPath := filepath.Join(cfg.out, "history.jsonl")
	hist, err := history.Create(histPath)
	if err != nil {
		return "", err
	}
	defer hist.Close()
	h.hist = hist
	p := cfg.profile
	h.logf("profile %s: %d nodes, %d clients, seed %d", p.name, p.nodes, p.clients, cfg.seed)
	if h.net, err = setUp(p.nodes); err != nil {
		return "", err
	}
	secret, err := secretFile(cfg.out)
	if err != nil {
		return "", err
	}
	for i := 1; i <= p.nodes; i++ {
		nd, err := newNode(cfg.out, bin, secret, cfg.sync, i, p.nodes)
		if err != nil {
			return "", err
		}
		if err := nd.mount(); err != nil {
			return "", err
		}
		h.nodes = append(h.nodes, nd)
	}
	if err := h.bootstrap(ctx); err != nil {
		return "", err
	}

	wctx, stopWorkload := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- h.workload(wctx) }()
	time.Sleep(p.calm) // a calm start: the history begins without faults
	for _, f := range schedule(p, cfg.seed) {
		if ctx.Err() != nil {
			break
		}
		if err := h.inject(ctx, f); err != nil {
			h.logf("fault %s: %v", f, err)
			h.event(history.Event{Kind: "harness-error", Detail: fmt.Sprintf("%s: %v", f, err)})
		}
		time.Sleep(p.calm)
	}
	stopWorkload()
	if err := <-workDone; err != nil {
		h.logf("workload: %v", err)
	}
	// Every fault healed, every node up: the cluster must agree.
	if err := h.net.heal(); err != nil {
		return "", err
	}
	for _, nd := range h.nodes {
		_ = nd.signal(syscall.SIGCONT)
		if !nd.running() {
			h.logf("%s had stopped: starting it again (see %s.log)", nd.name, nd.name)
			if err := nd.start(); err != nil {
				return "", err
			}
			h.event(history.Event{Kind: history.EventRestart, Nodes: []string{nd.name}, Detail: "found stopped at the end"})
		}
	}
	h.event(history.Event{Kind: history.EventHeal, Detail: "end of run"})
	h.converge(ctx, 2*time.Minute)
	h.finals(ctx)
	return histPath, nil
}

// event records a harness event now.
func (h *harness) event(e history.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := h.hist.Event(e); err != nil {
		h.logf("history: %v", err)
	}
}

// bootstrap starts every node and waits until the cluster takes writes,
// then sets the staleness bound of the run.
func (h *harness) bootstrap(ctx context.Context) error {
	for _, nd := range h.nodes {
		if err := nd.start(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for _, nd := range h.nodes {
		for {
			code, _, err := call(ctx, nd.unixClient(5*time.Second), "PATCH", "http://trustlog/1.0",
				api.ServerPut{Config: map[string]string{"core.max_staleness": maxStaleness.String()}})
			if err == nil && code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s did not take a write within 3 minutes (last: %d %v); see %s.log", nd.name, code, err, nd.name)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// PKI mode: the run's CA signs every client certificate, and CRLs are
	// part of the workload.
	ca, err := newAuthority(h.cfg.out)
	if err != nil {
		return err
	}
	for {
		code, env, err := call(ctx, h.nodes[0].unixClient(5*time.Second), "PUT", "http://trustlog/1.0/trustlog/pki/ca", pki.CAPut{Certificate: ca.pem})
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("setting the CA: %d %s %v", code, env.Error, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	h.logf("cluster up")
	h.event(history.Event{Kind: "start", Detail: fmt.Sprintf("%d nodes", len(h.nodes))})
	return nil
}

// workload runs the clients in the hub namespace (a child process of this
// binary) and records the operations it reports.
func (h *harness) workload(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	p := h.cfg.profile
	cmd := exec.Command("ip", "netns", "exec", hubNS, self, "workload",
		"-out", h.cfg.out, "-nodes", strconv.Itoa(p.nodes), "-clients", strconv.Itoa(p.clients),
		"-op-time", p.opTime.String(), "-seed", strconv.FormatUint(h.cfg.seed, 10))
	cmd.Stderr = h.cfg.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) })
	defer stop()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		var op history.Op
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			h.logf("workload line %q: %v", sc.Text(), err)
			continue
		}
		if err := h.hist.Op(op); err != nil {
			return err
		}
		n++
	}
	err = cmd.Wait()
	h.logf("workload: %d operations", n)
	if ctx.Err() != nil {
		return nil // stopped on purpose
	}
	return err
}

// inject applies fault f, waits while it lasts, and undoes it.
func (h *harness) inject(ctx context.Context, f planned) error {
	p := h.cfg.profile
	names := func(ns []int) []string {
		var out []string
		for _, i := range ns {
			out = append(out, h.nodes[i-1].name)
		}
		return out
	}
	h.logf("fault: %s", f)
	start := history.Event{Kind: history.EventFaultStart, Fault: faultClass[f.kind], Nodes: names(f.nodes), Detail: f.String()}
	var undo func() error
	switch f.kind {
	case faultKill:
		nd := h.nodes[f.nodes[0]-1]
		nd.kill()
		undo = nd.start
	case faultPause:
		nd := h.nodes[f.nodes[0]-1]
		if err := nd.signal(syscall.SIGSTOP); err != nil {
			return err
		}
		undo = func() error { return nd.signal(syscall.SIGCONT) }
	case faultIsolate, faultPartition:
		if err := h.net.partition([][]int{f.nodes, f.other}); err != nil {
			return err
		}
		undo = h.net.heal
	case faultBridge:
		if err := h.net.bridge(f.nodes, f.other); err != nil {
			return err
		}
		undo = h.net.heal
	case faultPowerOne, faultPowerAll:
		for _, i := range f.nodes {
			h.nodes[i-1].powerCut()
		}
		undo = func() error { return h.startAll(f.nodes) }
	case faultCorrupt, faultTruncate:
		nd := h.nodes[f.nodes[0]-1]
		nd.powerCut()
		what, err := nd.corrupt(f.kind == faultTruncate)
		if err != nil {
			start.Detail += ": nothing damaged: " + err.Error()
		} else {
			start.Detail += ": " + what
		}
		undo = nd.start
	default:
		return fmt.Errorf("unknown fault %q", f.kind)
	}
	h.event(start)
	select {
	case <-ctx.Done():
	case <-time.After(p.faultFor):
	}
	err := undo()
	h.event(history.Event{Kind: history.EventFaultEnd, Fault: start.Fault, Nodes: start.Nodes, Detail: f.kind})
	switch f.kind {
	case faultKill, faultPowerOne, faultPowerAll, faultCorrupt, faultTruncate:
		h.event(history.Event{Kind: history.EventRestart, Nodes: start.Nodes})
	}
	h.event(history.Event{Kind: history.EventHeal, Detail: f.kind})
	h.converge(ctx, 90*time.Second)
	return err
}

// startAll starts the given nodes (1-based) together.
func (h *harness) startAll(ns []int) error {
	var errs []error
	for _, i := range ns {
		errs = append(errs, h.nodes[i-1].start())
	}
	return errors.Join(errs...)
}

// nodeState is what GET /1.0/trustlog/audit/state says.
type nodeState struct {
	Seq    uint64 `json:"seq"`
	Hash   string `json:"hash"`
	Digest string `json:"digest"`
}

// state reads a node's model state over its unix socket.
func (nd *node) state(ctx context.Context) (nodeState, error) {
	code, env, err := call(ctx, nd.unixClient(3*time.Second), "GET", "http://trustlog/1.0/trustlog/audit/state", nil)
	if err != nil {
		return nodeState{}, err
	}
	if code != http.StatusOK {
		return nodeState{}, fmt.Errorf("HTTP %d %s", code, env.Error)
	}
	var st nodeState
	return st, json.Unmarshal(env.Metadata, &st)
}

// converge waits until every node has applied the highest sequence any
// node had applied when it was called, and records how long that took
// ("converged"), or that it did not happen within limit.
func (h *harness) converge(ctx context.Context, limit time.Duration) {
	start := time.Now()
	var target uint64
	var mu sync.Mutex
	for _, nd := range h.nodes {
		if st, err := nd.state(ctx); err == nil {
			mu.Lock()
			target = max(target, st.Seq)
			mu.Unlock()
		}
	}
	for time.Since(start) < limit && ctx.Err() == nil {
		behind := []string{}
		for _, nd := range h.nodes {
			st, err := nd.state(ctx)
			if err != nil || st.Seq < target {
				behind = append(behind, nd.name)
			}
		}
		if len(behind) == 0 {
			d := time.Since(start)
			h.event(history.Event{Kind: history.EventConverged, Detail: fmt.Sprintf("%s at sequence %d", d.Round(time.Millisecond), target)})
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.logf("no convergence within %s", limit)
	h.event(history.Event{Kind: "not-converged", Detail: fmt.Sprintf("after %s, target sequence %d", limit, target)})
}

// finals records every node's final state: its sequence, digest and
// trusted certificates.
func (h *harness) finals(ctx context.Context) {
	for _, nd := range h.nodes {
		f := history.Final{Node: nd.name}
		st, err := nd.state(ctx)
		if err != nil {
			f.Err = err.Error()
			_ = h.hist.Final(f)
			continue
		}
		f.Seq, f.Digest = st.Seq, st.Digest
		code, env, err := call(ctx, nd.unixClient(10*time.Second), "GET", "http://trustlog/1.0/certificates", nil)
		switch {
		case err != nil:
			f.Err = err.Error()
		case code != http.StatusOK:
			f.Err = fmt.Sprintf("HTTP %d %s", code, env.Error)
		default:
			var urls []string
			_ = json.Unmarshal(env.Metadata, &urls)
			for _, u := range urls {
				f.Certificates = append(f.Certificates, u[strings.LastIndexByte(u, '/')+1:])
			}
		}
		if err := h.hist.Final(f); err != nil {
			h.logf("history: %v", err)
		}
	}
}
