package command

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPromptOnTerminal: on a terminal the user's Enter ends the prompt's
// line (the terminal echoes it), so the prompt adds no newline.
func TestPromptOnTerminal(t *testing.T) {
	t.Parallel()
	ptmx, tty := openPTY(t)
	if _, err := ptmx.WriteString("yes\n"); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	e := &env{stdin: tty, in: bufio.NewReader(tty), stdout: io.Discard, stderr: &errOut}
	if !e.stdinIsTerminal() {
		t.Fatal("a pty is not a terminal")
	}
	got, err := e.prompt("Q? ")
	if err != nil || got != "yes" {
		t.Fatalf("prompt = %q, %v", got, err)
	}
	if errOut.String() != "Q? " {
		t.Errorf("stderr %q, want %q", errOut.String(), "Q? ")
	}
}

// openPTY opens a pseudo-terminal pair: writes to ptmx are what the user
// types on tty.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptmx, tty
}
