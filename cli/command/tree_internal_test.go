package command

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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

// TestExamples parses every command line of every Example section against
// the command tree: it must name an existing command, flags it has and
// arguments it accepts.
func TestExamples(t *testing.T) {
	t.Parallel()
	_, root := testTree(t)
	want := []string{
		"trustlog auth identity grant", "trustlog config get", "trustlog config set", "trustlog config trust add",
		"trustlog config trust edit", "trustlog config trust list", "trustlog config trust remove",
		"trustlog monitor", "trustlog query", "trustlog remote add",
	}
	var with []string
	walk(root, func(c *cobra.Command) {
		if c.Example == "" {
			return
		}
		with = append(with, c.CommandPath())
		lines := 0
		for line := range strings.SplitSeq(c.Example, "\n") {
			cmdline, ok := strings.CutPrefix(line, "  trustlog ")
			if !ok {
				if !strings.HasPrefix(line, "      ") {
					t.Errorf("%s: example line %q is neither a command nor its explanation", c.CommandPath(), line)
				}
				continue
			}
			lines++
			var args []string
			for _, w := range strings.Fields(cmdline) {
				if w == "<" || w == ">" {
					break // a shell redirection
				}
				args = append(args, w)
			}
			found, rest, err := root.Find(args)
			if err != nil || found == root {
				t.Errorf("%s: example %q names no command: %v", c.CommandPath(), cmdline, err)
				continue
			}
			found.InitDefaultHelpFlag()
			if err := found.ParseFlags(rest); err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), cmdline, err)
				continue
			}
			if err := found.ValidateArgs(found.Flags().Args()); err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), cmdline, err)
			}
		}
		if lines < 2 {
			t.Errorf("%s: %d example command lines, want 2 or more", c.CommandPath(), lines)
		}
	})
	slices.Sort(with)
	if diff := cmp.Diff(want, with); diff != "" {
		t.Errorf("commands with examples (-want +got):\n%s", diff)
	}
}

// TestFormatCompletion: every --format flag completes, to the values its
// help lists.
func TestFormatCompletion(t *testing.T) {
	t.Parallel()
	_, root := testTree(t)
	n := 0
	walk(root, func(c *cobra.Command) {
		f := c.Flags().Lookup("format")
		if f == nil {
			return
		}
		n++
		complete, ok := c.GetFlagCompletionFunc("format")
		if !ok {
			t.Errorf("%s --format does not complete", c.CommandPath())
			return
		}
		got, directive := complete(c, nil, "")
		if len(got) < 2 || directive != cobra.ShellCompDirectiveNoFileComp || !strings.Contains(f.Usage, "("+strings.Join(got, ", ")+")") {
			t.Errorf("%s --format completes %q (%v); usage %q", c.CommandPath(), got, directive, f.Usage)
		}
		if !slices.Contains(got, f.DefValue) {
			t.Errorf("%s --format completes %q, not its default %q", c.CommandPath(), got, f.DefValue)
		}
	})
	if n < 6 {
		t.Errorf("%d commands with --format", n)
	}
}
