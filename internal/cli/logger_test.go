package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		format, level string
		wantErr       string
		wantDebug     bool
	}{
		{format: "text", level: "info"},
		{format: "json", level: "debug", wantDebug: true},
		{format: "json", level: "WARN"},
		{format: "xml", level: "info", wantErr: "--log-format"},
		{format: "text", level: "loud", wantErr: "--log-level"},
		{format: "text", level: "info+2", wantErr: "--log-level"},
	} {
		t.Run(tc.format+"/"+tc.level, func(t *testing.T) {
			var out bytes.Buffer
			log, err := NewLogger(&out, LogOptions{Format: tc.format, Level: tc.level})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("d")
			log.Error("e", "k", "v")
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if got := len(lines) == 2; got != tc.wantDebug {
				t.Errorf("got %d lines, want debug shown: %v", len(lines), tc.wantDebug)
			}
			last := lines[len(lines)-1]
			if tc.format == "json" && !json.Valid([]byte(last)) {
				t.Errorf("not JSON: %q", last)
			}
			if tc.format == "text" && !strings.Contains(last, "k=v") {
				t.Errorf("not text: %q", last)
			}
		})
	}
}
