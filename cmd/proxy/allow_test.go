package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	labelA = "sd5mv7vjwfkwngcub5ymael2elvdppk46pwtyryjhqlqokbljoeq"
	labelB = "umk4w6tbpwvvukdxitktcmdzrw6hcgbeoemi6vjzrjndr3la5zga"
	labelC = "ho5ws42dvrfuqox7e7zwkpo5igvdaiexokqtxozumzmm3yrry7ua"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "allowed")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAllowListReadsLabelsHostnamesAndURLs(t *testing.T) {
	path := writeFile(t, "# the team's laptops\n"+
		labelA+"\n"+
		"  "+strings.ToUpper(labelB)+".tunnel.example.com   # Bo's\n"+
		"\n"+
		"https://"+labelC+".tunnel.example.com/\n")
	a, err := newAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{labelA, labelB, labelC} {
		if !a.allow(l) {
			t.Errorf("%s is listed but not allowed", l)
		}
	}
	if a.allow("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
		t.Error("a label not listed is allowed")
	}
}

func TestAllowListRefusesWhatIsNotAKey(t *testing.T) {
	for _, line := range []string{
		"not-a-label",
		labelA[:51],
		labelA + "x",
		"http://localhost:8080",
		"*.tunnel.example.com",
	} {
		_, err := newAllowList(writeFile(t, labelA+"\n"+line+"\n"))
		if err == nil || !strings.Contains(err.Error(), ":2:") {
			t.Errorf("%q: got %v, want an error naming line 2", line, err)
		}
	}
	if _, err := newAllowList(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file: got no error")
	}
}

// A reload that fails keeps the keys in force; an empty file allows none.
func TestAllowListReload(t *testing.T) {
	path := writeFile(t, labelA+"\n")
	a, err := newAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("garbage\n"), 0o600)
	if _, err := a.reload(); err == nil {
		t.Fatal("reloading garbage: got no error")
	}
	if !a.allow(labelA) {
		t.Error("a failed reload dropped the keys in force")
	}
	os.WriteFile(path, []byte("# nobody\n"), 0o600)
	if n, err := a.reload(); err != nil || n != 0 {
		t.Fatalf("reloading an empty list: %d keys, %v", n, err)
	}
	if a.allow(labelA) {
		t.Error("an empty list still allows a key")
	}
}
