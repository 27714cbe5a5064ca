package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trustlog/trustlog/local/faults/lazyfs"
)

// httpsPort is where every node serves its API, on its own address.
const httpsPort = "8443"

// clusterPort is every node's NATS route port.
const clusterPort = "6222"

// node is one trustlogd process of the cluster, in its own network
// namespace, with its event store (<dir>/nats) on a lazyfs mount so that
// a power cut can drop what it had not synced.
type node struct {
	i       int
	name    string
	dir     string // data directory (unix socket, keys) on the host's disk
	backing string // where the store's bytes live; mounted at dir/nats
	log     *os.File
	bin     string
	args    []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	lazy *lazyfs.FS
}

// nodeName is the name of node i (1-based), also its NATS server name.
func nodeName(i int) string { return fmt.Sprintf("n%d", i) }

// nodeDir is node i's data directory in run directory root.
func nodeDir(root string, i int) string { return filepath.Join(root, nodeName(i)) }

// newNode prepares node i of n in run directory root.
func newNode(root, bin, secret, sync string, i, n int) (*node, error) {
	nd := &node{i: i, name: nodeName(i), bin: bin, dir: nodeDir(root, i)}
	nd.backing = filepath.Join(root, nd.name+"-store")
	for _, d := range []string{nd.dir, nd.backing, filepath.Join(nd.dir, "nats")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	var routes []string
	for j := 1; j <= n; j++ {
		routes = append(routes, net.JoinHostPort(nodeIP(j), clusterPort))
	}
	nd.args = []string{
		"--dir", nd.dir,
		"--https-address", net.JoinHostPort(nodeIP(i), httpsPort),
		"--replicas", "3",
		"--nats-name", nd.name,
		"--nats-cluster", net.JoinHostPort(nodeIP(i), clusterPort),
		"--nats-routes", strings.Join(routes, ","),
		"--nats-cluster-secret-file", secret,
		"--acme-http-address", "-",
	}
	if sync != "" {
		nd.args = append(nd.args, "--sync", sync)
	}
	f, err := os.OpenFile(filepath.Join(root, nd.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	nd.log = f
	return nd, nil
}

// mount puts the lazy file system over the store directory.
func (nd *node) mount() error {
	lz, err := lazyfs.Mount(nd.backing, filepath.Join(nd.dir, "nats"))
	if err != nil {
		return fmt.Errorf("%s: mount the store: %w", nd.name, err)
	}
	nd.lazy = lz
	return nil
}

// start runs trustlogd in the node's namespace.
func (nd *node) start() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return nil
	}
	fmt.Fprintf(nd.log, "\n==== start %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", append([]string{"netns", "exec", nodeNS(nd.i), nd.bin}, nd.args...)...)
	cmd.Stdout, cmd.Stderr = nd.log, nd.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", nd.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	nd.cmd, nd.done = cmd, done
	return nil
}

// running reports whether the process is alive.
func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return false
	}
	select {
	case <-nd.done:
		nd.cmd = nil
		return false
	default:
		return true
	}
}

// kill ends the process at once (SIGKILL), as a crash would, and waits
// for it.
func (nd *node) kill() {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.cmd = nil
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT) // a paused one too
	<-done
}

// signal sends sig to the process group (SIGSTOP, SIGCONT).
func (nd *node) signal(sig syscall.Signal) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return fmt.Errorf("%s is not running", nd.name)
	}
	return syscall.Kill(-nd.cmd.Process.Pid, sig)
}

// powerCut kills the process and drops every byte of its store it had not
// synced, as a power failure of its machine would.
func (nd *node) powerCut() {
	// The cut comes first: nothing the process writes while it dies (or
	// the kernel flushes for it) reaches the disk.
	nd.lazy.PowerCut()
	nd.kill()
	nd.lazy.Thaw()
}

// corrupt damages the node's stream block files while it is down: it
// flips a few random bits in one of them, or truncates one, and says what
// it did.
func (nd *node) corrupt(truncate bool) (string, error) {
	var blocks []string
	err := filepath.WalkDir(nd.backing, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".blk") && strings.Contains(path, string(filepath.Separator)+"TRUSTLOG"+string(filepath.Separator)) {
			blocks = append(blocks, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(blocks) == 0 {
		return "", errors.New("no block file of the stream")
	}
	path := blocks[randInt(len(blocks))]
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	rel, _ := filepath.Rel(nd.backing, path)
	if st.Size() == 0 {
		return "", fmt.Errorf("%s is empty", rel)
	}
	if truncate {
		to := st.Size() / 2
		return fmt.Sprintf("truncated %s from %d to %d bytes", rel, st.Size(), to), os.Truncate(path, to)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var flipped []string
	for range 4 {
		off := int64(randInt(int(st.Size())))
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			return "", err
		}
		b[0] ^= 1 << randInt(8)
		if _, err := f.WriteAt(b, off); err != nil {
			return "", err
		}
		flipped = append(flipped, fmt.Sprint(off))
	}
	return fmt.Sprintf("flipped bits at offsets %s of %s", strings.Join(flipped, ","), rel), f.Sync()
}

// randInt is a uniform random number in [0, n): corruption needs no seed
// (what it damages is recorded in the history).
func randInt(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

// unixClient is an HTTP client over the node's unix socket: full access.
func (nd *node) unixClient(timeout time.Duration) *http.Client {
	sock := filepath.Join(nd.dir, "unix.socket")
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// secretFile writes the cluster's route secret (0600) into root.
func secretFile(root string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	path := filepath.Join(root, "cluster.secret")
	return path, os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}
