package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// The harness's network: a hub namespace holding a bridge, and one
// namespace per node joined to it by a veth pair. Nothing is routed to or
// from the host's own namespaces: traffic stays inside namespaces the
// harness made. Names carry nsPrefix so that `faults clean` finds them.
const (
	nsPrefix = "tlf-"
	hubNS    = nsPrefix + "hub"
	subnet   = "10.177.0."
	hubIP    = subnet + "254"
)

// nodeNS is the namespace of node i (1-based).
func nodeNS(i int) string { return fmt.Sprintf("%sn%d", nsPrefix, i) }

// nodeIP is the address of node i inside the harness's network.
func nodeIP(i int) string { return fmt.Sprintf("%s%d", subnet, i) }

// ip runs the ip command, returning its combined output on failure.
func ip(args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// inNS runs ip inside namespace ns.
func inNS(ns string, args ...string) error {
	return ip(append([]string{"netns", "exec", ns, "ip"}, args...)...)
}

// network is the harness's network of n nodes.
type network struct {
	n int
}

// setUp creates the hub and n node namespaces, wired to one bridge.
func setUp(n int) (*network, error) {
	steps := [][]string{
		{"netns", "add", hubNS},
		{"netns", "exec", hubNS, "ip", "link", "set", "lo", "up"},
		{"netns", "exec", hubNS, "ip", "link", "add", "br0", "type", "bridge"},
		{"netns", "exec", hubNS, "ip", "addr", "add", hubIP + "/24", "dev", "br0"},
		{"netns", "exec", hubNS, "ip", "link", "set", "br0", "up"},
	}
	for i := 1; i <= n; i++ {
		ns, host, peer := nodeNS(i), fmt.Sprintf("tlfh%d", i), fmt.Sprintf("tlfv%d", i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"netns", "exec", ns, "ip", "link", "set", "lo", "up"},
			[]string{"link", "add", host, "netns", hubNS, "type", "veth", "peer", "name", peer, "netns", ns},
			[]string{"netns", "exec", hubNS, "ip", "link", "set", host, "master", "br0"},
			[]string{"netns", "exec", hubNS, "ip", "link", "set", host, "up"},
			[]string{"netns", "exec", ns, "ip", "addr", "add", nodeIP(i) + "/24", "dev", peer},
			[]string{"netns", "exec", ns, "ip", "link", "set", peer, "up"},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return nil, err
		}
	}
	return &network{n: n}, nil
}

// partition cuts the network into groups (node numbers): a node reaches
// only the nodes of its own group (and the hub, where the clients are).
// Each node drops what it would send to the others (a blackhole route per
// peer), so the cut holds in both directions.
func (nw *network) partition(groups [][]int) error {
	group := map[int]int{}
	for g, members := range groups {
		for _, m := range members {
			group[m] = g + 1
		}
	}
	for i := 1; i <= nw.n; i++ {
		for j := 1; j <= nw.n; j++ {
			if i == j || (group[i] != 0 && group[i] == group[j]) {
				continue
			}
			if err := inNS(nodeNS(i), "route", "add", "blackhole", nodeIP(j)+"/32"); err != nil {
				return err
			}
		}
	}
	return nil
}

// bridge cuts the network so that only the bridge node reaches both halves:
// a and b do not reach each other.
func (nw *network) bridge(a, b []int) error {
	for _, i := range a {
		for _, j := range b {
			if err := inNS(nodeNS(i), "route", "add", "blackhole", nodeIP(j)+"/32"); err != nil {
				return err
			}
			if err := inNS(nodeNS(j), "route", "add", "blackhole", nodeIP(i)+"/32"); err != nil {
				return err
			}
		}
	}
	return nil
}

// heal removes every cut.
func (nw *network) heal() error {
	for i := 1; i <= nw.n; i++ {
		if err := inNS(nodeNS(i), "route", "flush", "type", "blackhole"); err != nil {
			return err
		}
	}
	return nil
}

// cleanNetworks deletes every namespace the harness made (and with them
// their veth pairs and the bridge).
func cleanNetworks() error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, nsPrefix) {
			if err := ip("netns", "del", name); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
