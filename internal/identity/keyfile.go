package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// pemType is the PEM block type of a PKCS #8 private key.
const pemType = "PRIVATE KEY"

// maxKeyFile bounds how much of a key file is read; a real one is 119 bytes.
const maxKeyFile = 16 << 10

// DefaultKeyPath returns keyhole/client.key under the user's configuration
// directory (os.UserConfigDir).
func DefaultKeyPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("default key path: %w", err)
	}
	return filepath.Join(dir, "keyhole", "client.key"), nil
}

// LoadOrCreate loads the private key in the file at path, or, if there is no
// such file, generates a key and stores it there with mode 0600, creating
// missing directories with mode 0700. created reports whether this call made
// the file. The file appears whole or not at all, and never replaces an
// existing one, so processes racing to create it all end with the same key.
//
// A file that group or others may access is refused (ErrKeyFileMode), as is
// one that does not hold an Ed25519 key (ErrKeyFileFormat).
func LoadOrCreate(path string) (priv ed25519.PrivateKey, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("load key: empty path")
	}
	priv, err = load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return priv, false, err
	}
	_, priv, err = ed25519.GenerateKey(nil)
	if err != nil {
		return nil, false, fmt.Errorf("generate key: %w", err)
	}
	err = create(path, encodeKey(priv))
	if errors.Is(err, fs.ErrExist) {
		// Another process created it first: use its key.
		priv, err = load(path)
		return priv, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return priv, true, nil
}

// load reads and checks the key file at path.
func load(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if err := checkMode(path, fi); err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	priv, err := decodeKey(b)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	return priv, nil
}

// checkMode refuses anything but a regular file private to its owner.
// Windows has no such mode bits, so only the file type is checked there.
func checkMode(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return fmt.Errorf("%w: %s has mode %04o, want 0600 (run: chmod 600 %s)", ErrKeyFileMode, path, perm, path)
	}
	return nil
}
