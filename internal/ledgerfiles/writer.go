package ledgerfiles

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/charterlog/charter/internal/durable"
)

// Chunk bounds: a chunk is completed at whichever comes first.
const (
	DefaultChunkBytes = 64 << 20
	DefaultChunkTxs   = 100_000
)

// A Writer appends committed records to the chunks in one directory. It is
// not safe for concurrent use: one goroutine follows the store with it.
// Only Synced may be called from other goroutines.
type Writer struct {
	dir         string
	maxBytes    int64
	maxTxs      uint64
	f           *os.File
	buf         *bufio.Writer // over f: records are written in large writes, not one syscall each
	h           hash.Hash
	first, next uint64
	size        int64
	unsynced    bool

	// synced is the highest seqno fsynced in the files (see Synced). It
	// is stored only after an fsync returned, so it never counts records
	// in buf or written to f but not yet synced.
	synced atomic.Uint64
	// failed is set once an fsync failed: Linux may then have marked the
	// unwritten pages clean, so a later fsync's success would prove
	// nothing, and the Writer refuses to go on (OpenWriter rereads the
	// files).
	failed error
}

// OpenWriter resumes the ledger files in dir (created if missing): it
// checks the committed chunks join up, completes a chunk whose trailer was
// written but not yet renamed, and cuts an open chunk's torn tail. Next
// then says which seqno it wants.
func OpenWriter(dir string, maxBytes int64, maxTxs uint64) (*Writer, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultChunkBytes
	}
	if maxTxs == 0 {
		maxTxs = DefaultChunkTxs
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &Writer{dir: dir, maxBytes: maxBytes, maxTxs: maxTxs, next: 1}
	chunks, err := List(dir)
	if err != nil {
		return nil, err
	}
	for i, c := range chunks {
		if c.Committed {
			// complete renames only after its fsync, and resume fsyncs
			// before its rename: a committed name means synced.
			w.next = c.Last + 1
			w.synced.Store(c.Last)
			continue
		}
		if i != len(chunks)-1 {
			return nil, fmt.Errorf("%w: open chunk %s is not the last", ErrDamaged, filepath.Base(c.Path))
		}
		if err := w.resume(c); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// resume reopens the open chunk c: a complete one (trailer written, crash
// before the rename) is renamed; otherwise its torn tail is cut and
// appending continues after its last complete record.
func (w *Writer) resume(c Chunk) error {
	last, good, err := readChunk(c, func(uint64, []byte) error { return nil })
	if err != nil {
		return err
	}
	f, err := os.OpenFile(c.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if good > 0 && good < fi.Size() && last >= c.First {
		// Bytes after the last record: a trailer (complete chunk) or a
		// torn frame. Recheck as a committed chunk to tell them apart.
		full := Chunk{Path: c.Path, First: c.First, Last: last, Committed: true}
		if _, _, err := readChunk(full, func(uint64, []byte) error { return nil }); err == nil {
			// The process may have died between writing the trailer and
			// its fsync (kill -9 leaves the bytes in the page cache):
			// sync before the committed name says so.
			err := f.Sync()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			w.next = last + 1
			if err := w.rename(c.Path, committedName(c.First, last)); err != nil {
				return err
			}
			w.synced.Store(last)
			return nil
		}
	}
	// Keep what is complete; rehash it so the trailer covers it.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return err
	}
	w.h = sha256.New()
	if good == 0 {
		if _, err := f.Write([]byte(magic)); err != nil {
			f.Close()
			return err
		}
		w.h.Write([]byte(magic))
		good = int64(len(magic))
	} else {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return err
		}
		if _, err := io.CopyN(w.h, f, good); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	// What survived a crash of the process (not of the machine) may be
	// only in the page cache: sync it before Synced counts it.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if last >= c.First {
		w.synced.Store(last)
	}
	w.f, w.first, w.next, w.size = f, c.First, last+1, good
	w.buf = bufio.NewWriterSize(f, writeBuffer)
	return nil
}

// writeBuffer is how much of the open chunk is gathered before a write.
const writeBuffer = 256 << 10

// Next is the seqno the writer wants next.
func (w *Writer) Next() uint64 { return w.next }

// Synced is the highest seqno durably in the files: written and fsynced,
// in a completed chunk or in the open one; 0 if none is. Every record from
// the first chunk's first seqno up to it survives a crash of the process or
// the machine. Unlike the Writer's other methods, Synced is safe to call
// from any goroutine while one appends.
func (w *Writer) Synced() uint64 { return w.synced.Load() }

// Append adds the record at seqno, which must be Next. It is buffered
// (in memory, then in the file) until Sync; a chunk that reaches its bounds is completed (synced and
// renamed) here.
func (w *Writer) Append(seqno uint64, raw []byte) error {
	if w.failed != nil {
		return w.failed
	}
	if seqno != w.next {
		return fmt.Errorf("ledgerfiles: appending transaction %d, want %d", seqno, w.next)
	}
	if len(raw) == 0 || len(raw) > maxRecord {
		return fmt.Errorf("ledgerfiles: transaction %d of %d bytes", seqno, len(raw))
	}
	if w.f == nil {
		if err := w.start(seqno); err != nil {
			return err
		}
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(raw)))
	if _, err := w.buf.Write(hdr[:n]); err != nil {
		return err
	}
	if _, err := w.buf.Write(raw); err != nil {
		return err
	}
	w.h.Write(hdr[:n])
	w.h.Write(raw)
	w.size += int64(n + len(raw))
	w.next++
	w.unsynced = true
	if w.size >= w.maxBytes || w.next-w.first >= w.maxTxs {
		return w.complete()
	}
	return nil
}

func (w *Writer) start(first uint64) error {
	f, err := os.OpenFile(filepath.Join(w.dir, openName(first)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(magic)); err != nil {
		f.Close()
		return err
	}
	w.f, w.first, w.size, w.h = f, first, int64(len(magic)), sha256.New()
	w.buf = bufio.NewWriterSize(f, writeBuffer)
	w.h.Write([]byte(magic))
	return durable.SyncDir(w.dir) // the open chunk's name must outlive a crash
}

// complete writes the trailer, syncs and renames the open chunk.
//
// Crash reasoning: a crash before the sync leaves an open chunk whose tail
// may be torn (cut on resume); after the sync and before the rename, an
// open chunk with a valid trailer (renamed on resume); after the rename,
// the directory sync makes the committed name durable.
func (w *Writer) complete() error {
	trailer := binary.AppendUvarint(nil, 0)
	trailer = binary.AppendUvarint(trailer, w.next-w.first)
	w.h.Write(trailer)
	trailer = append(trailer, w.h.Sum(nil)...)
	if _, err := w.buf.Write(trailer); err != nil {
		return err
	}
	if err := w.buf.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(err)
	}
	// The records are durable under the open name; the rename below only
	// says the chunk is complete (resume redoes it after a crash).
	w.synced.Store(w.next - 1)
	if err := w.f.Close(); err != nil {
		return err
	}
	path := filepath.Join(w.dir, openName(w.first))
	w.f, w.buf, w.unsynced = nil, nil, false
	return w.rename(path, committedName(w.first, w.next-1))
}

func (w *Writer) rename(from, to string) error {
	if err := os.Rename(from, filepath.Join(w.dir, to)); err != nil {
		return err
	}
	return durable.SyncDir(w.dir)
}

// Sync makes what was appended durable: written out of the buffer, then
// synced. Synced then says so.
func (w *Writer) Sync() error {
	if w.failed != nil {
		return w.failed
	}
	if w.f == nil || !w.unsynced {
		return nil
	}
	if err := w.buf.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(err)
	}
	w.unsynced = false
	w.synced.Store(w.next - 1)
	return nil
}

// fail records a failed fsync; see failed.
func (w *Writer) fail(err error) error {
	w.failed = fmt.Errorf("ledgerfiles: syncing %s: %w", openName(w.first), err)
	return w.failed
}

// Close syncs and closes the open chunk (it stays open on disk).
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f, w.buf = nil, nil
	return err
}
