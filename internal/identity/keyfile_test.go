package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config", "keyhole")
	path := filepath.Join(dir, "client.key")

	priv, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first run: got created %v, %v; want true, nil", created, err)
	}
	if runtime.GOOS != "windows" {
		wantMode(t, path, 0o600)
		wantMode(t, dir, 0o700)
	}
	again, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second run: got created %v, %v; want false, nil", created, err)
	}
	if !again.Equal(priv) {
		t.Errorf("second run: got a different key")
	}
	if got, want := Label(again.Public().(ed25519.PublicKey)), Label(priv.Public().(ed25519.PublicKey)); got != want {
		t.Errorf("second run: got label %s, want %s", got, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("got %d entries in %s, want only client.key", len(entries), dir)
	}
}

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: got mode %04o, want %04o", path, got, want)
	}
}

func TestLoadOrCreateVectorFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client.key")
	if err := os.WriteFile(path, []byte(vectorKeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	priv, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("got created %v, %v; want false, nil", created, err)
	}
	if got := Label(priv.Public().(ed25519.PublicKey)); got != vectorLabel {
		t.Errorf("got label %s, want %s", got, vectorLabel)
	}
}

func TestLoadOrCreateOpenSSLKey(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is missing: apt-get install openssl (.ci/run does): %v", err)
	}
	path := filepath.Join(t.TempDir(), "client.key")
	out, err := exec.Command(openssl, "genpkey", "-algorithm", "ed25519", "-out", path).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl genpkey: %v: %s", err, out)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, created, err := LoadOrCreate(path); err != nil || created {
		t.Errorf("got created %v, %v; want false, nil", created, err)
	}
}

func TestLoadOrCreateRefuses(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	vectorDER, _ := pem.Decode([]byte(vectorKeyFile))
	block := func(typ string, der []byte, h map[string]string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Headers: h, Bytes: der}))
	}
	cases := []struct {
		name string
		data string
		mode fs.FileMode
		want error
	}{
		{"mode 0644", vectorKeyFile, 0o644, ErrKeyFileMode},
		{"mode 0640", vectorKeyFile, 0o640, ErrKeyFileMode},
		{"mode 0604", vectorKeyFile, 0o604, ErrKeyFileMode},
		{"mode 0620", vectorKeyFile, 0o620, ErrKeyFileMode},
		{"empty", "", 0o600, ErrKeyFileFormat},
		{"garbage", "not a key\n", 0o600, ErrKeyFileFormat},
		{"raw seed", string(vectorDER.Bytes[16:]), 0o600, ErrKeyFileFormat},
		{"truncated PEM", vectorKeyFile[:40], 0o600, ErrKeyFileFormat},
		{"other block type", block("ED25519 PRIVATE KEY", vectorDER.Bytes, nil), 0o600, ErrKeyFileFormat},
		{"PEM headers", block("PRIVATE KEY", vectorDER.Bytes, map[string]string{"Proc-Type": "4,ENCRYPTED"}), 0o600, ErrKeyFileFormat},
		{"corrupt DER", block("PRIVATE KEY", vectorDER.Bytes[:30], nil), 0o600, ErrKeyFileFormat},
		{"ECDSA key", block("PRIVATE KEY", ecDER, nil), 0o600, ErrKeyFileFormat},
		{"two keys", vectorKeyFile + vectorKeyFile, 0o600, ErrKeyFileFormat},
		{"trailing text", vectorKeyFile + "x\n", 0o600, ErrKeyFileFormat},
		{"huge", vectorKeyFile + strings.Repeat(" ", maxKeyFile), 0o600, ErrKeyFileFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.want == ErrKeyFileMode && runtime.GOOS == "windows" {
				t.Skip("no mode bits on Windows")
			}
			path := filepath.Join(t.TempDir(), "client.key")
			if err := os.WriteFile(path, []byte(c.data), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			priv, _, err := LoadOrCreate(path)
			if !errors.Is(err, c.want) || priv != nil {
				t.Errorf("got key %v, error %v; want nil, %v", priv != nil, err, c.want)
			}
			if c.want == ErrKeyFileMode && !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("got error %q, want it to say chmod 600", err)
			}
			if got, err := os.ReadFile(path); err != nil || string(got) != c.data {
				t.Errorf("file changed: got %q, %v; want %q", got, err, c.data)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		if _, _, err := LoadOrCreate(t.TempDir()); err == nil {
			t.Error("got nil error, want one")
		}
	})
	t.Run("empty path", func(t *testing.T) {
		if _, _, err := LoadOrCreate(""); err == nil {
			t.Error("got nil error, want one")
		}
	})
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	const n = 8
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "keyhole", "client.key")
		keys := make([]ed25519.PrivateKey, n)
		created := make([]bool, n)
		errs := make([]error, n)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range n {
			wg.Go(func() {
				start.Wait()
				keys[i], created[i], errs[i] = LoadOrCreate(path)
			})
		}
		start.Done()
		wg.Wait()
		creators := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, goroutine %d: %v", round, i, errs[i])
			}
			if !keys[i].Equal(keys[0]) {
				t.Fatalf("round %d: goroutine %d got a different key", round, i)
			}
			if created[i] {
				creators++
			}
		}
		if creators != 1 {
			t.Fatalf("round %d: got %d creators, want 1", round, creators)
		}
		onDisk, _, err := LoadOrCreate(path)
		if err != nil || !onDisk.Equal(keys[0]) {
			t.Fatalf("round %d: key on disk differs from the returned one (%v)", round, err)
		}
	}
}

func TestDefaultKeyPath(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("XDG_CONFIG_HOME is honoured on Linux")
	}
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	got, err := DefaultKeyPath()
	if want := filepath.Join(dir, "keyhole", "client.key"); err != nil || got != want {
		t.Errorf("got %q, %v; want %q, nil", got, err, want)
	}
}
