package version

import (
	"regexp"
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	t.Parallel()
	rev := "d14aed4998818e478444477f1b872506a3d8c220"
	for _, tc := range []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{name: "ok/release tag", info: debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, want: "v1.2.0"},
		{name: "ok/pseudo-version wins over the revision",
			info: debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261207101440-d14aed499881"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}}},
			want: "v0.0.0-20261207101440-d14aed499881"},
		{name: "ok/revision of a devel build",
			info: debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}},
			want: "d14aed499881"},
		{name: "ok/modified checkout",
			info: debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			want: "d14aed499881-dirty"},
		{name: "ok/nothing recorded", info: debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, want: "devel"},
		{name: "ok/test binary", info: debug.BuildInfo{}, want: "devel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := fromBuildInfo(&tc.info); got != tc.want {
				t.Errorf("fromBuildInfo = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	if got := String(); !regexp.MustCompile(`^\S+ \(API 1\.0\)$`).MatchString(got) {
		t.Errorf("String() = %q, want <build> (API 1.0)", got)
	}
}
