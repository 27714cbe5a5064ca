// Package version says which build of Trustlog is running and which
// version of the REST API it speaks, for the --version of its commands.
package version

import "runtime/debug"

// API is the version of the REST API Trustlog serves and its client
// speaks: the api_version of GET /1.0 and the /1.0 of every path.
const API = "1.0"

// Build returns the version of the running binary: the main module's
// version when the go command recorded one (a release tag or a
// pseudo-version), else the VCS revision it was built from (12 hex digits,
// with "-dirty" for uncommitted changes), else "devel".
func Build() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return fromBuildInfo(info)
}

// fromBuildInfo is Build for the given build information.
func fromBuildInfo(info *debug.BuildInfo) string {
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	rev = rev[:min(len(rev), 12)]
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// String returns the build and API versions in one line, as --version
// prints them after the command's name: "v1.2.0 (API 1.0)".
func String() string {
	return Build() + " (API " + API + ")"
}
