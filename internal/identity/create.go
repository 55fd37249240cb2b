package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// create writes data to a new file at path with mode 0600, atomically and
// without replacing an existing file: the data goes to a temporary file in
// the same directory, which is then hard-linked to path. A link fails if
// path exists (the result wraps fs.ErrExist), so it has O_EXCL semantics,
// and a reader never sees a partial file. Where hard links are not
// supported it falls back to O_EXCL, where a racing reader could see a
// partial file.
func create(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	tmp, err := writeTemp(dir, data)
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		err = writeExcl(path, data)
	}
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	syncDir(dir)
	return nil
}

// writeTemp writes data to a new temporary file (mode 0600) in dir, synced
// to disk, and returns its name.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".client.key-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	if err := writeSync(f, data); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// writeExcl creates path exclusively with mode 0600 and writes data.
func writeExcl(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := writeSync(f, data); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// writeSync writes data to f, syncs and closes it.
func writeSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new directory entry durable where the platform allows;
// failure only costs durability across a crash, so it is ignored.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
