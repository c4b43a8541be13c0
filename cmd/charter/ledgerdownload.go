package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/ledgerfiles"
)

func init() {
	register(command{name: "ledger download", summary: "fetch a node's complete ledger chunks into a directory, resuming where an earlier download stopped", run: runLedgerDownload})
}

func runLedgerDownload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger download", "--url URL --cacert PEM --out DIR", stderr)
	sf := bindServiceFlags(fs)
	out := fs.String("out", "", "the directory to keep the chunks in (created if missing; chunks already there are kept)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("want no arguments")
	}
	if *out == "" {
		return usageError("--out is required: the directory to download the ledger chunks into")
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	chunks, err := c.LedgerChunks(ctx)
	if err != nil {
		return fmt.Errorf("listing the ledger chunks: %w", err)
	}
	partial := filepath.Join(*out, ".partial")
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return err
	}
	var total, done int64
	for _, ch := range chunks {
		total += ch.Size
	}
	fetched, kept := 0, 0
	line := &progressLine{w: stderr, quiet: *quiet}
	progress := func(force bool) {
		line.update(force, "downloaded %.1f of %.1f MB", float64(done)/1e6, float64(total)/1e6)
	}
	for _, ch := range chunks {
		final := filepath.Join(*out, ch.Name)
		if fi, err := os.Stat(final); err == nil && fi.Size() == ch.Size {
			done += ch.Size
			kept++
			continue
		}
		part := filepath.Join(partial, ch.Name)
		f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		off, err := f.Seek(0, io.SeekEnd)
		if err == nil && off > ch.Size {
			off, err = 0, f.Truncate(0) // not this chunk's start: start over
		}
		if err == nil {
			_, err = f.Seek(off, io.SeekStart)
		}
		done += off
		if err == nil && off < ch.Size {
			_, err = c.DownloadChunk(ctx, ch.Name, ch.Size, off, &countingWriter{w: f, n: &done, tick: progress})
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			progress(true)
			return fmt.Errorf("downloading %s (run the same command again to resume): %w", ch.Name, err)
		}
		if err := ledgerfiles.CheckChunk(part); err != nil {
			os.Remove(part) // damaged in transit or at the source: fetch it whole next time
			return fmt.Errorf("downloaded %s does not check: %w", ch.Name, err)
		}
		if err := os.Rename(part, final); err != nil {
			return err
		}
		fetched++
		progress(false)
	}
	line.done()
	if err := os.Remove(partial); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// The chunks' names must outlive a crash: the download is a backup.
	if err := durable.SyncDir(*out); err != nil {
		return err
	}
	last := uint64(0)
	if n := len(chunks); n > 0 {
		last = chunks[n-1].Last
	}
	fmt.Fprintf(stdout, "%d chunks (transactions 1 to %d, %.1f MB) in %s: %d fetched, %d already there\n", len(chunks), last, float64(total)/1e6, *out, fetched, kept)
	fmt.Fprintf(stdout, "check them: charter ledger verify --service-cert SERVICE.pem %s\n", *out)
	return nil
}

// countingWriter counts what it writes into *n and calls tick.
type countingWriter struct {
	w    io.Writer
	n    *int64
	tick func(force bool)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	*c.n += int64(k)
	c.tick(false)
	return k, err
}
