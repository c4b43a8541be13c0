// Package ledgerfiles owns the ledger as files: every committed transaction
// record, in order, in chunk files that a node writes to its data
// directory, so that copying that directory (or downloading the chunks)
// is a backup from which a lost service is recovered. They are also where
// the node keeps a registration's statement once they have synced it: the
// store then holds the record without it (store/bodies.go).
//
// Chunks are named as CCF names its ledger files:
//
//	ledger_<first>-<last>.committed   complete, immutable, synced
//	ledger_<first>                    the one being written
//
// A chunk is
//
//	"CHARTER-LEDGER-1\n"
//	( uvarint(len(record)) record )*     the records' stored bytes (log.Record,
//	                                     canonical CBOR), seqnos first..last
//	uvarint(0) uvarint(count) digest     complete chunks only: digest is
//	                                     SHA-256 of every byte before it
//
// The files are written after the records commit, and a crash loses at
// most the unsynced tail of the open chunk, which the writer rewrites from
// the store when it resumes (Next says from where). Writer.Synced says how
// far they are durable: every record up to it is fsynced and survives a
// crash of the process or the machine, which is what a store must wait
// for before it drops its own copy of a record. A Reader reads records
// back by seqno, while the Writer appends.
package ledgerfiles

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/charterlog/charter/log"
)

const magic = "CHARTER-LEDGER-1\n"

// maxRecord bounds one record in a chunk: a statement is at most a few
// MiB, and a reader must not allocate what a damaged length says.
const maxRecord = 64 << 20

// Errors of reading chunks; each names what is wrong with which file.
var (
	ErrDamaged   = errors.New("ledgerfiles: damaged chunk")
	ErrTruncated = errors.New("ledgerfiles: truncated chunk")
	ErrGap       = errors.New("ledgerfiles: transactions missing")
	ErrNoLedger  = errors.New("ledgerfiles: no ledger chunks")
)

// A Chunk is one file of the ledger.
type Chunk struct {
	Path        string
	First, Last uint64 // Last is 0 for an open chunk until it is read
	Committed   bool
}

// List returns the chunks in dir in order of their first seqno, checking
// that committed chunks follow each other without gap or overlap and that
// at most one open chunk follows them.
func List(dir string) ([]Chunk, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Chunk
	for _, e := range ents {
		c, ok := ParseName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		c.Path = filepath.Join(dir, e.Name())
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First < out[j].First })
	for i, c := range out {
		if i > 0 && c.First != out[i-1].Last+1 {
			prev := out[i-1]
			if !prev.Committed {
				return nil, fmt.Errorf("%w: %s is open but is followed by %s", ErrDamaged, filepath.Base(prev.Path), filepath.Base(c.Path))
			}
			return nil, fmt.Errorf("%w: %d to %d (between %s and %s)", ErrGap, prev.Last+1, c.First-1, filepath.Base(prev.Path), filepath.Base(c.Path))
		}
	}
	return out, nil
}

// ParseName parses a chunk file name (Path is left empty).
func ParseName(name string) (Chunk, bool) {
	rest, ok := strings.CutPrefix(name, "ledger_")
	if !ok {
		return Chunk{}, false
	}
	if span, ok := strings.CutSuffix(rest, ".committed"); ok {
		a, b, ok := strings.Cut(span, "-")
		first, err1 := strconv.ParseUint(a, 10, 64)
		last, err2 := strconv.ParseUint(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || first == 0 || last < first {
			return Chunk{}, false
		}
		return Chunk{First: first, Last: last, Committed: true}, true
	}
	first, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || first == 0 {
		return Chunk{}, false
	}
	return Chunk{First: first, Last: first - 1}, true
}

func committedName(first, last uint64) string {
	return fmt.Sprintf("ledger_%d-%d.committed", first, last)
}

func openName(first uint64) string { return fmt.Sprintf("ledger_%d", first) }

// A frameReader reads a chunk's frames in order: parseChunk from the
// header, hashing every byte for the digest; a Reader from a frame its
// index points at, hashing nothing. After an error it is spent.
type frameReader struct {
	r   *bufio.Reader
	h   hash.Hash // nil: nothing is hashed
	off int64     // the file offset after what was read whole (header, frames, trailer)
	buf []byte    // a record longer than r's buffer
}

// errTooLong is a frame length over maxRecord: damage, never a torn write.
var errTooLong = errors.New("frame longer than maxRecord")

// short says a read that ended early was cut short.
func short(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// take consumes b, which r has just peeked.
func (fr *frameReader) take(b []byte) {
	if fr.h != nil {
		fr.h.Write(b)
	}
	// b is buffered, so Discard does not read, and b stays valid until
	// r's next read.
	fr.r.Discard(len(b))
	fr.off += int64(len(b))
}

// header reads the chunk header: io.ErrUnexpectedEOF if the file is
// shorter than one, errNoHeader if it is not one.
func (fr *frameReader) header() error {
	b, err := fr.r.Peek(len(magic))
	if err != nil {
		return short(err)
	}
	if string(b) != magic {
		return errNoHeader
	}
	fr.take(b)
	return nil
}

var errNoHeader = errors.New("no chunk header")

// peekUvarint decodes the uvarint at r's position, without consuming it:
// its value and length k. It returns io.EOF if no byte of it is there,
// io.ErrUnexpectedEOF if only some.
func (fr *frameReader) peekUvarint() (n uint64, k int, err error) {
	b, err := fr.r.Peek(binary.MaxVarintLen64)
	n, k = binary.Uvarint(b)
	switch {
	case k > 0:
		return n, k, nil
	case k < 0:
		return 0, 0, fmt.Errorf("%w: a length overflows 64 bits", ErrDamaged)
	case len(b) == 0 && err == io.EOF:
		return 0, 0, io.EOF
	case err == nil:
		return 0, 0, io.ErrUnexpectedEOF // unreachable: ten bytes decode or overflow
	default:
		return 0, 0, short(err)
	}
}

// uvarint reads a uvarint (see peekUvarint).
func (fr *frameReader) uvarint() (uint64, error) {
	n, k, err := fr.peekUvarint()
	if err != nil {
		return 0, err
	}
	b, _ := fr.r.Peek(k) // buffered: peekUvarint saw it
	fr.take(b)
	return n, nil
}

// next reads one frame. It returns the record, valid until the next call,
// and the length the frame claims; at the trailer, nil and 0. A frame cut
// short returns io.ErrUnexpectedEOF, with n 0 if it ends inside the length
// (io.EOF if no byte of it is there); one longer than maxRecord returns
// errTooLong before anything is allocated.
func (fr *frameReader) next() (raw []byte, n uint64, err error) {
	n, k, err := fr.peekUvarint()
	if err != nil {
		return nil, 0, err
	}
	if n == 0 {
		b, _ := fr.r.Peek(k)
		fr.take(b)
		return nil, 0, nil
	}
	if n > maxRecord {
		return nil, n, errTooLong
	}
	if whole := k + int(n); whole <= fr.r.Size() {
		// The usual frame: read in place, without a copy.
		b, err := fr.r.Peek(whole)
		if err != nil {
			return nil, n, short(err)
		}
		fr.take(b)
		return b[k:], n, nil
	}
	if fr.h != nil {
		hdr, _ := fr.r.Peek(k)
		fr.h.Write(hdr)
	}
	fr.r.Discard(k)
	if uint64(cap(fr.buf)) < n {
		fr.buf = make([]byte, n)
	}
	fr.buf = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		return nil, n, short(err)
	}
	if fr.h != nil {
		fr.h.Write(fr.buf)
	}
	fr.off += int64(k) + int64(n)
	return fr.buf, n, nil
}

// readChunk reads the chunk at c.Path, calling fn with each record and its
// seqno (checked: first, first+1, ...). For a committed chunk it checks the
// digest before any record reaches fn, then the count and that the records
// are exactly first..last; for an open one it stops at the first
// incomplete frame and returns the offset after the last complete one.
// raw is valid only during the call.
func readChunk(c Chunk, fn func(seqno uint64, raw []byte) error) (last uint64, good int64, err error) {
	if c.Committed {
		// The digest first: no record of a damaged chunk reaches fn. A
		// mismatch is then told apart as truncation or damage by parsing.
		ok, err := digestMatches(c.Path)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			if _, _, err := parseChunk(c, func(uint64, []byte) error { return nil }); err != nil {
				return 0, 0, err
			}
			return 0, 0, fmt.Errorf("%w: %s does not match its digest (a byte was changed)", ErrDamaged, filepath.Base(c.Path))
		}
	}
	return parseChunk(c, fn)
}

// digestMatches reports whether the file's last 32 bytes are SHA-256 of
// the bytes before them.
func digestMatches(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() < int64(len(magic))+sha256.Size {
		return false, nil
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, fi.Size()-sha256.Size); err != nil {
		return false, err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, got); err != nil {
		return false, err
	}
	return bytes.Equal(got, h.Sum(nil)), nil
}

func parseChunk(c Chunk, fn func(seqno uint64, raw []byte) error) (last uint64, good int64, err error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	name := filepath.Base(c.Path)
	fr := &frameReader{r: bufio.NewReaderSize(f, 1<<20), h: sha256.New()}
	if err := fr.header(); err != nil {
		if !c.Committed && err == io.ErrUnexpectedEOF {
			return c.First - 1, 0, nil // torn before the header: empty
		}
		return 0, 0, fmt.Errorf("%w: %s has no chunk header", ErrDamaged, name)
	}
	good = fr.off
	seqno := c.First
	for {
		raw, n, err := fr.next()
		if errors.Is(err, errTooLong) {
			return 0, 0, fmt.Errorf("%w: %s: transaction %d claims %d bytes", ErrDamaged, name, seqno, n)
		}
		if err != nil {
			if !c.Committed {
				return seqno - 1, good, nil
			}
			if n == 0 {
				return 0, 0, fmt.Errorf("%w: %s ends after transaction %d, before its trailer", ErrTruncated, name, seqno-1)
			}
			return 0, 0, fmt.Errorf("%w: %s ends inside transaction %d", ErrTruncated, name, seqno)
		}
		if raw == nil {
			break // the trailer
		}
		// Only the seqno: whoever reads the record decodes it (a verifier
		// checks all of it); the chunk's digest covers the rest.
		if err := checkSeqno(name, seqno, raw); err != nil {
			return 0, 0, err
		}
		if err := fn(seqno, raw); err != nil {
			return 0, 0, err
		}
		seqno++
		good = fr.off
	}
	if !c.Committed {
		// A trailer in an open chunk: the writer crashed between writing
		// it and renaming the file. The chunk is complete up to it.
		return seqno - 1, good, nil
	}
	count, err := fr.uvarint()
	want := fr.h.Sum(nil)
	got := make([]byte, sha256.Size)
	if err == nil {
		_, err = io.ReadFull(fr.r, got)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s's trailer is cut short", ErrTruncated, name)
	}
	if !bytes.Equal(got, want) {
		return 0, 0, fmt.Errorf("%w: %s does not match its digest (a byte was changed)", ErrDamaged, name)
	}
	if count != seqno-c.First || seqno-1 != c.Last {
		return 0, 0, fmt.Errorf("%w: %s holds transactions %d to %d, its name says %d to %d", ErrGap, name, c.First, seqno-1, c.First, c.Last)
	}
	if _, err := fr.r.ReadByte(); err != io.EOF {
		return 0, 0, fmt.Errorf("%w: %s has bytes after its trailer", ErrDamaged, name)
	}
	return c.Last, 0, nil
}

// checkSeqno checks that raw, read where seqno belongs in chunk name, is
// the record of seqno.
func checkSeqno(name string, seqno uint64, raw []byte) error {
	got, ok := log.PeekSeqno(raw)
	if !ok {
		return fmt.Errorf("%w: %s: transaction %d is not a transaction record", ErrDamaged, name, seqno)
	}
	if got != seqno {
		return fmt.Errorf("%w: %s holds transaction %d where %d belongs", ErrGap, name, got, seqno)
	}
	return nil
}

// Scan reads every record of the ledger in dir in order, checking each
// chunk (see readChunk) and that they join up from seqno 1. It returns the
// last seqno read. An open chunk's torn tail is not an error: it was never
// a backup's promise.
func Scan(dir string, fn func(seqno uint64, raw []byte) error) (uint64, error) {
	chunks, err := List(dir)
	if err != nil {
		return 0, err
	}
	if len(chunks) == 0 {
		return 0, fmt.Errorf("%w in %s", ErrNoLedger, dir)
	}
	if chunks[0].First != 1 {
		return 0, fmt.Errorf("%w: 1 to %d (the first chunk is %s)", ErrGap, chunks[0].First-1, filepath.Base(chunks[0].Path))
	}
	var last uint64
	for _, c := range chunks {
		if last, _, err = readChunk(c, fn); err != nil {
			return 0, err
		}
	}
	return last, nil
}

// CheckChunk checks one complete chunk file on its own (its name, digest,
// count and records' seqnos), as a download does before keeping it.
func CheckChunk(path string) error {
	c, ok := ParseName(filepath.Base(path))
	if !ok || !c.Committed {
		return fmt.Errorf("%w: %s is not a complete chunk's name", ErrDamaged, filepath.Base(path))
	}
	c.Path = path
	_, _, err := readChunk(c, func(uint64, []byte) error { return nil })
	return err
}
