// Package config keeps the trustlog client's configuration directory, laid
// out as incus and lxc lay out theirs: config.yml with the remotes and the
// default remote, the client certificate and key, pinned server
// certificates in servercerts/, and an optional client.ca.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// LocalRemote is the name of the static remote on the local unix socket.
const LocalRemote = "local"

// Remote is one entry of config.yml.
type Remote struct {
	// Addr is "https://host:port" or "unix://" / "unix:///path".
	Addr string `yaml:"addr"`
	// Protocol is the API dialect; always "incus" for Trustlog servers.
	Protocol string `yaml:"protocol,omitempty"`
	// AuthType is "tls" (or empty, meaning tls).
	AuthType string `yaml:"auth_type,omitempty"`
	// Public marks a remote used without authentication.
	Public bool `yaml:"public"`
}

// Config is the client configuration. Load it with Load; it is not safe
// for concurrent use.
type Config struct {
	DefaultRemote string            `yaml:"default-remote"`
	Remotes       map[string]Remote `yaml:"remotes"`

	dir    string
	socket string
}

// Load reads dir/config.yml (a missing file is an empty configuration).
// socket is the path of the local daemon's unix socket, the address of the
// static "local" remote.
func Load(dir, socket string) (*Config, error) {
	c := &Config{dir: dir, socket: socket, Remotes: map[string]Remote{}}
	raw, err := os.ReadFile(filepath.Join(dir, "config.yml"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read configuration: %w", err)
	default:
		if err := yaml.Unmarshal(raw, c); err != nil {
			return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, "config.yml"), err)
		}
	}
	if c.Remotes == nil {
		c.Remotes = map[string]Remote{}
	}
	delete(c.Remotes, LocalRemote)
	if c.DefaultRemote == "" {
		c.DefaultRemote = LocalRemote
	}
	return c, nil
}

// Dir returns the configuration directory.
func (c *Config) Dir() string { return c.dir }

// Save writes config.yml atomically (a temporary file renamed into place).
func (c *Config) Save() error {
	if err := os.MkdirAll(c.dir, 0o750); err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	raw, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	return WriteFileAtomic(filepath.Join(c.dir, "config.yml"), raw, 0o640)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, so readers never see a half-written file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Remote returns the remote called name, the static local remote included.
func (c *Config) Remote(name string) (Remote, bool) {
	if name == LocalRemote {
		return Remote{Addr: "unix://" + c.socket, Protocol: "incus"}, true
	}
	r, ok := c.Remotes[name]
	return r, ok
}

// Names returns every remote name, local included, sorted.
func (c *Config) Names() []string {
	names := slices.Collect(maps.Keys(c.Remotes))
	names = append(names, LocalRemote)
	slices.Sort(names)
	return names
}

// ParseRemote splits "remote:rest" into its parts. Without a known remote
// prefix, the default remote is used and arg is returned whole.
func (c *Config) ParseRemote(arg string) (remote, rest string, err error) {
	name, rest, found := strings.Cut(arg, ":")
	if !found {
		return c.DefaultRemote, arg, nil
	}
	if _, ok := c.Remote(name); !ok {
		return "", "", fmt.Errorf("The remote %q doesn't exist", name)
	}
	return name, rest, nil
}

// IsRemoteArg reports whether arg names a remote ("name:" with a known name).
func (c *Config) IsRemoteArg(arg string) bool {
	name, rest, found := strings.Cut(arg, ":")
	if !found || rest != "" {
		return false
	}
	_, ok := c.Remote(name)
	return ok
}

// ValidateRemoteName checks that name can name a remote: not empty, no
// colon (it separates the remote from the object, as in "srv:/1.0") and
// nothing that would lead a file such as servercerts/<name>.crt out of its
// directory.
func ValidateRemoteName(name string) error {
	switch {
	case name == "":
		return errors.New("Remote names may not be empty")
	case strings.Contains(name, ":"):
		return errors.New("Remote names may not contain colons")
	case strings.ContainsAny(name, `/\`) || name == "." || name == "..":
		return fmt.Errorf("Invalid remote name %q: it may not contain slashes or be . or ..", name)
	}
	return nil
}

// ServerCertPath returns the path of the pinned certificate of remote name.
func (c *Config) ServerCertPath(name string) string {
	return filepath.Join(c.dir, "servercerts", name+".crt")
}

// ClientCAPath returns the path of client.ca, the CA that alone verifies
// servers when present.
func (c *Config) ClientCAPath() string { return filepath.Join(c.dir, "client.ca") }
