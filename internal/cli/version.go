package cli

import (
	"runtime/debug"
	"strings"
)

// Version describes the running binary from its build information: the
// command, the module version, the commit and its time when the build
// recorded them, and the Go version.
func Version(command string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "keyhole " + command + " (no build information)"
	}
	parts := []string{"keyhole", command, bi.Main.Version}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if settings["vcs.modified"] == "true" {
			rev += "+modified"
		}
		parts = append(parts, "commit "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, t)
	}
	return strings.Join(append(parts, bi.GoVersion), " ")
}
