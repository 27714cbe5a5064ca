package command

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// testTree builds the command tree with a configuration directory of its
// own.
func testTree(t *testing.T) (*env, *cobra.Command) {
	t.Helper()
	dir := t.TempDir()
	e, _, _ := newTestEnv("", map[string]string{"TRUSTLOG_CONF": dir, "TRUSTLOG_DIR": dir, "HOME": dir})
	e.ctx = context.Background()
	return e, e.rootCmd()
}

// walk calls f for cmd and every command under it.
func walk(cmd *cobra.Command, f func(*cobra.Command)) {
	f(cmd)
	for _, sub := range cmd.Commands() {
		walk(sub, f)
	}
}

// pathArgs returns the words that reach cmd from the root.
func pathArgs(cmd *cobra.Command) []string {
	return strings.Fields(cmd.CommandPath())[1:]
}

// TestUnknownSubcommand: every command group, the root included, refuses
// a word that is none of its subcommands with incus's "unknown command"
// error and the nearest names; with no word it prints its help.
func TestUnknownSubcommand(t *testing.T) {
	t.Parallel()
	_, root := testTree(t)
	var groups []*cobra.Command
	walk(root, func(c *cobra.Command) {
		if c.HasSubCommands() {
			groups = append(groups, c)
		}
	})
	if len(groups) < 8 {
		t.Fatalf("found %d command groups", len(groups))
	}
	dir := t.TempDir()
	getenv := func(k string) string {
		if k == "TRUSTLOG_CONF" || k == "TRUSTLOG_DIR" || k == "HOME" {
			return dir
		}
		return ""
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := Run(context.Background(), args, strings.NewReader(""), &out, &errOut, getenv)
		return out.String(), err
	}
	for _, g := range groups {
		words := pathArgs(g)
		out, err := run(append(slices.Clone(words), "frobnicate")...)
		if want := `unknown command "frobnicate" for "` + g.CommandPath() + `"`; err == nil || err.Error() != want {
			t.Errorf("%s frobnicate: err = %v, want %q", g.CommandPath(), err, want)
		}
		if out != "" {
			t.Errorf("%s frobnicate printed %.80q", g.CommandPath(), out)
		}
		// A typo: the first subcommand with its last letter doubled.
		sub := g.Commands()[0].Name()
		typo := sub + sub[len(sub)-1:]
		if _, err := run(append(slices.Clone(words), typo)...); err == nil ||
			!strings.HasPrefix(err.Error(), `unknown command "`+typo+`" for "`+g.CommandPath()+"\"\n\nDid you mean this?\n") ||
			!strings.Contains(err.Error(), "\t"+sub+"\n") {
			t.Errorf("%s %s: err = %v, want a suggestion of %s", g.CommandPath(), typo, err, sub)
		}
		if out, err := run(words...); err != nil || !strings.Contains(out, "Usage:\n  "+g.CommandPath()) {
			t.Errorf("%s: err = %v, help %q", g.CommandPath(), err, out)
		}
	}
}
