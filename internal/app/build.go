package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// BuildBundle builds a bundle from an app folder laid out as the CCF
// samples are: app.json at the root or at src/endpoints/app.json, and the
// modules as src/**/*.js, named by their path relative to src/ with
// forward slashes. No build step runs: modules must already be plain ES
// modules with relative imports. The result is validated as ParseBundle
// validates (it does not compile; Load does).
func BuildBundle(dir string) (*Bundle, error) {
	var metaPath string
	for _, p := range []string{"app.json", filepath.Join("src", "endpoints", "app.json")} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			if metaPath != "" {
				return nil, fmt.Errorf("app: %s: both app.json and src/endpoints/app.json exist", dir)
			}
			metaPath = filepath.Join(dir, p)
		}
	}
	if metaPath == "" {
		return nil, fmt.Errorf("app: %s: no app.json (looked at the root and in src/endpoints)", dir)
	}
	meta, err := os.ReadFile(metaPath)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	b := &Bundle{}
	if err := strictUnmarshal(meta, &b.Metadata); err != nil {
		return nil, fmt.Errorf("app: %s: %w", metaPath, err)
	}
	src := filepath.Join(dir, "src")
	total := len(meta)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".js") {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		total += len(body)
		if total > MaxBundleBytes {
			return fmt.Errorf("bundle exceeds %d bytes", MaxBundleBytes)
		}
		b.Modules = append(b.Modules, Module{Name: filepath.ToSlash(rel), Module: string(body)})
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("app: %s: no src folder", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	sort.Slice(b.Modules, func(i, j int) bool { return b.Modules[i].Name < b.Modules[j].Name })
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return b, nil
}
