// Package durable owns Charter's one way of replacing a small file so that
// a crash leaves either the old file or the whole new one, never a torn or
// empty one: keys, certificates, configuration and the CLI's saved
// checkpoints all go through WriteFile; and of making a directory's new
// entries durable (SyncDir), for the files written otherwise.
package durable

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path with mode perm, atomically and durably:
// a temporary file in the same directory is written, synced and renamed
// over path, then the directory is synced so the rename itself survives a
// crash. Until the rename a crash leaves the old file (and at most a
// temporary file, removed on the next attempt's error path or left for the
// operator, never read as path).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the entries of directory dir durable: a file created or
// renamed in it survives a crash only once its directory is synced.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
