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
	if _, _, err := a.reload(true); err == nil {
		t.Fatal("reloading garbage: got no error")
	}
	if !a.allow(labelA) {
		t.Error("a failed reload dropped the keys in force")
	}
	os.WriteFile(path, []byte("# nobody\n"), 0o600)
	if n, _, err := a.reload(true); err != nil || n != 0 {
		t.Fatalf("reloading an empty list: %d keys, %v", n, err)
	}
	if a.allow(labelA) {
		t.Error("an empty list still allows a key")
	}
}

// A reload without SIGHUP changes the keys only when the content changed,
// and follows a symlink swapped to a new file, as a mounted ConfigMap is
// updated.
func TestAllowListReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
	os.WriteFile(v1, []byte(labelA+"\n"), 0o600)
	os.WriteFile(v2, []byte(labelB+"\n"), 0o600)
	path := filepath.Join(dir, "allowed")
	if err := os.Symlink(v1, path); err != nil {
		t.Fatal(err)
	}
	a, err := newAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, changed, err := a.reload(false); err != nil || changed {
		t.Fatalf("unchanged file: changed %v, err %v; want no change", changed, err)
	}
	tmp := filepath.Join(dir, "allowed.tmp")
	if err := os.Symlink(v2, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if n, changed, err := a.reload(false); err != nil || !changed || n != 1 {
		t.Fatalf("swapped symlink: %d keys, changed %v, err %v; want 1 key, changed", n, changed, err)
	}
	if a.allow(labelA) || !a.allow(labelB) {
		t.Error("after the swap the old key is allowed or the new one is not")
	}
}
