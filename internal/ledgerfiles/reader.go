package ledgerfiles

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
)

// indexEvery is how sparse a Reader's index is: it keeps the offset of
// every indexEvery-th frame, 8 bytes per 64 records (12.5 MB for 10^8),
// and a read skips at most indexEvery-1 frames to the one it wants.
const indexEvery = 64

// readBuffer is a Reader's buffer: it holds the up to indexEvery frames
// of small records a read skips, and a frame that fits is read in place.
const readBuffer = 64 << 10

// openAttempts bounds how often a read lists the directory again for a
// chunk that its last listing did not show where it looked: the open chunk
// renamed in between, or a listing that raced with the rename.
const openAttempts = 5

// A Reader reads records from the ledger files in one directory by seqno,
// concurrently with one Writer appending to them (in this process or not).
//
// It keeps, per chunk, a sparse index of frame offsets, built by scanning
// the chunk's frames the first time a read needs it and extended as the
// open chunk grows (committed chunks are immutable). It returns only whole
// frames, and checks each record's seqno, so a record still being written,
// cut short by a crash or misplaced is an error, never returned. It does
// not check the chunks' digests (Scan and CheckChunk do): the Writer wrote
// these files, and the Merkle tree authenticates each record.
//
// It is safe for concurrent use.
type Reader struct {
	dir string

	// listMu is held while listing the directory, so that listings are
	// applied in the order they were made.
	listMu sync.Mutex

	mu      sync.RWMutex
	gen     uint64                 // counts listings
	chunks  []*chunkIndex          // the last listing, by first seqno
	byFirst map[uint64]*chunkIndex // every chunk indexed, kept if a listing misses it
}

// A chunkIndex is what a Reader knows of one chunk. It is keyed by the
// chunk's first seqno, which survives the rename from the open name to the
// committed one.
type chunkIndex struct {
	first uint64

	// scan is held while scanning the chunk to extend the index: one
	// goroutine scans it, and the others wait for what it finds.
	scan sync.Mutex

	mu       sync.RWMutex
	named    bool    // listed under its committed name
	complete bool    // last is final: from the committed name or the trailer
	last     uint64  // if complete
	next     uint64  // frames first..next-1 are indexed (whole in the file)
	end      int64   // the offset after frame next-1; 0 before the header is read
	offs     []int64 // offs[i] is the offset of frame first+i*indexEvery
}

// NewReader returns a Reader of the ledger files in dir. The directory
// need not exist yet: chunks are found when a read asks for them.
func NewReader(dir string) *Reader {
	return &Reader{dir: dir, byFirst: map[uint64]*chunkIndex{}}
}

// ReadRecords calls fn with the stored record of each seqno from `from`
// to `to`, in order; raw is valid only during the call. Nothing is read if
// to < from. It is an error, wrapping ErrGap and naming the seqno, if one
// of them is not (or not yet) whole in the files; damage found on the way
// is ErrDamaged or ErrTruncated, and a record where another seqno's
// belongs is ErrGap. fn has then been called for the seqnos before. An
// error of fn is returned as it is.
func (r *Reader) ReadRecords(from, to uint64, fn func(seqno uint64, raw []byte) error) error {
	if from == 0 {
		return r.notInFiles(0)
	}
	for s := from; s <= to; {
		next, err := r.readFrom(s, to, fn)
		if err != nil {
			return err
		}
		s = next
	}
	return nil
}

// readFrom reads seqnos s to at most to from the chunk that holds s, and
// returns the seqno after the last it read (more than s).
func (r *Reader) readFrom(s, to uint64, fn func(seqno uint64, raw []byte) error) (uint64, error) {
	ci, f, err := r.open(s)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	name := filepath.Base(f.Name())
	ci.mu.RLock()
	i := (s - ci.first) / indexEvery
	q, off := ci.first+i*indexEvery, ci.offs[i]
	ci.mu.RUnlock()

	br := getReader(f, off)
	defer putReader(br)
	fr := &frameReader{r: br, off: off}
	for ; q <= to; q++ {
		raw, _, err := fr.next()
		ended := err != nil || raw == nil // a short or damaged frame, or the trailer
		switch {
		case err != nil && !isShort(err) && !errors.Is(err, ErrDamaged) && !errors.Is(err, errTooLong):
			return 0, fmt.Errorf("ledgerfiles: reading %s: %w", name, err)
		case ended && q <= s:
			// The index says frames up to s are whole in this file: it
			// was cut or changed since.
			r.forget(ci)
			if isShort(err) {
				return 0, fmt.Errorf("%w: %s ends before transaction %d, which was indexed in it", ErrTruncated, name, q)
			}
			if err == nil {
				err = errors.New("the trailer comes first")
			}
			return 0, fmt.Errorf("%w: %s: indexed transaction %d cannot be read: %v", ErrDamaged, name, q, err)
		case ended:
			// The end of the chunk, or of its whole frames so far, or
			// damage after s: the next call finds which.
			return q, nil
		case q < s:
			continue
		}
		if err := checkSeqno(name, q, raw); err != nil {
			r.forget(ci)
			return 0, err
		}
		if err := fn(q, raw); err != nil {
			return 0, err
		}
	}
	return q, nil
}

// open opens the chunk that holds s, with s indexed in it. A chunk that
// the Reader's listing misses or places wrongly (renamed since, or a
// listing that raced with the rename) is found by listing again, up to
// openAttempts times.
func (r *Reader) open(s uint64) (*chunkIndex, *os.File, error) {
	for attempt := 1; ; attempt++ {
		ci, gen := r.lookup(s)
		if ci != nil {
			f, err := r.openFile(ci)
			if err == nil {
				ok, err := r.extend(ci, f, s)
				if ok {
					return ci, f, nil
				}
				f.Close()
				if err != nil {
					r.forget(ci) // the next read rescans it
					return nil, nil, fmt.Errorf("transaction %d: %w", s, err)
				}
				ci.mu.RLock()
				complete := ci.complete
				ci.mu.RUnlock()
				if !complete {
					// The open chunk does not (yet) hold s whole, and no
					// chunk after it exists until it is complete.
					return nil, nil, r.notInFiles(s)
				}
				// s is past a complete chunk: the next one holds it.
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, nil, err
			}
		}
		if attempt == openAttempts {
			return nil, nil, r.notInFiles(s)
		}
		if err := r.relist(gen); err != nil {
			return nil, nil, err
		}
	}
}

func (r *Reader) notInFiles(s uint64) error {
	return fmt.Errorf("%w: transaction %d is not (or not yet) in the ledger files in %s", ErrGap, s, r.dir)
}

// lookup returns the listed chunk that may hold s, if any, and which
// listing it saw.
func (r *Reader) lookup(s uint64) (*chunkIndex, uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i := sort.Search(len(r.chunks), func(i int) bool { return r.chunks[i].first > s }) - 1
	if i < 0 {
		return nil, r.gen
	}
	ci := r.chunks[i]
	ci.mu.RLock()
	defer ci.mu.RUnlock()
	if ci.complete && s > ci.last {
		return nil, r.gen
	}
	return ci, r.gen
}

// openFile opens ci's file under the name it was listed with, or, for an
// open chunk whose trailer the Reader has seen, the committed name it is
// being renamed to.
func (r *Reader) openFile(ci *chunkIndex) (*os.File, error) {
	ci.mu.RLock()
	named, complete, last := ci.named, ci.complete, ci.last
	ci.mu.RUnlock()
	if !named {
		f, err := os.Open(filepath.Join(r.dir, openName(ci.first)))
		if err == nil || !complete {
			return f, err
		}
	}
	return os.Open(filepath.Join(r.dir, committedName(ci.first, last)))
}

// relist lists the directory again, unless another call did since the
// caller's lookup saw listing gen.
func (r *Reader) relist(gen uint64) error {
	r.listMu.Lock()
	defer r.listMu.Unlock()
	r.mu.RLock()
	listedSince := r.gen != gen
	r.mu.RUnlock()
	if listedSince {
		return nil
	}
	ents, err := os.ReadDir(r.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ledgerfiles: listing %s: %w", r.dir, err)
	}
	// A listing that races with a rename may show both names of a chunk
	// (or neither): the committed one wins.
	found := map[uint64]Chunk{}
	for _, e := range ents {
		c, ok := ParseName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		if prev, ok := found[c.First]; !ok || !prev.Committed {
			found[c.First] = c
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.chunks = r.chunks[:0]
	for first, c := range found {
		ci := r.byFirst[first]
		if ci == nil || !ci.agrees(c) {
			// New, or not the chunk that was indexed under this first
			// seqno (the directory was replaced): index it afresh.
			ci = &chunkIndex{first: first, next: first}
			r.byFirst[first] = ci
		}
		if c.Committed {
			ci.mu.Lock()
			ci.named, ci.complete, ci.last = true, true, c.Last
			ci.mu.Unlock()
		}
		r.chunks = append(r.chunks, ci)
	}
	slices.SortFunc(r.chunks, func(a, b *chunkIndex) int { return cmp.Compare(a.first, b.first) })
	r.gen++
	return nil
}

// agrees reports whether the listed chunk c can be the one ci indexed.
func (ci *chunkIndex) agrees(c Chunk) bool {
	ci.mu.RLock()
	defer ci.mu.RUnlock()
	if !c.Committed {
		return !ci.named
	}
	return ci.next-1 <= c.Last && (!ci.complete || ci.last == c.Last)
}

// forget drops ci, whose file did not hold what its index said: the next
// read indexes the chunk afresh.
func (r *Reader) forget(ci *chunkIndex) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byFirst[ci.first] == ci {
		delete(r.byFirst, ci.first)
	}
	r.chunks = slices.DeleteFunc(r.chunks, func(c *chunkIndex) bool { return c == ci })
	r.gen++
}

// extend indexes ci up to s by scanning f, its file, from where the index
// ends, and reports whether s is indexed: whole in the file. A chunk not
// indexed that far is scanned by one goroutine at a time; the others then
// find s indexed (or not there).
func (r *Reader) extend(ci *chunkIndex, f *os.File, s uint64) (bool, error) {
	ci.mu.RLock()
	ok := s < ci.next
	ci.mu.RUnlock()
	if ok {
		return true, nil
	}
	ci.scan.Lock()
	defer ci.scan.Unlock()
	ci.mu.RLock()
	next, end, complete, last := ci.next, ci.end, ci.complete, ci.last
	ci.mu.RUnlock()
	if s < next {
		return true, nil
	}
	if complete && (s > last || next > last) {
		return false, nil
	}

	name := filepath.Base(f.Name())
	br := getReader(f, end)
	defer putReader(br)
	fr := &frameReader{r: br, off: end}
	if end == 0 {
		switch err := fr.header(); {
		case err == io.ErrUnexpectedEOF && !complete:
			return false, nil // just created: the header is coming
		case err == io.ErrUnexpectedEOF || err == errNoHeader:
			return false, fmt.Errorf("%w: %s has no chunk header", ErrDamaged, name)
		case err != nil:
			return false, fmt.Errorf("ledgerfiles: reading %s: %w", name, err)
		}
		end = fr.off
	}
	var offs []int64
	trailer := false
	for next <= s {
		start := fr.off
		raw, n, err := fr.next()
		if errors.Is(err, errTooLong) {
			return false, fmt.Errorf("%w: %s: transaction %d claims %d bytes", ErrDamaged, name, next, n)
		}
		if errors.Is(err, ErrDamaged) {
			return false, fmt.Errorf("%s: transaction %d: %w", name, next, err)
		}
		if isShort(err) {
			break // the end of the whole frames, for now
		}
		if err != nil {
			return false, fmt.Errorf("ledgerfiles: reading %s: %w", name, err)
		}
		if raw == nil {
			trailer = true
			break
		}
		if (next-ci.first)%indexEvery == 0 {
			// Checking the indexed frames finds a file that is not
			// what its name says before a read is misled by it.
			if err := checkSeqno(name, next, raw); err != nil {
				return false, err
			}
			offs = append(offs, start)
		}
		next++
		end = fr.off
	}

	if !trailer && next <= s && complete && s <= last {
		return false, fmt.Errorf("%w: %s ends before transaction %d", ErrTruncated, name, next)
	}

	ci.mu.Lock()
	defer ci.mu.Unlock()
	if trailer {
		if ci.complete && ci.last != next-1 {
			return false, fmt.Errorf("%w: %s ends at transaction %d", ErrGap, name, next-1)
		}
		ci.complete, ci.last = true, next-1
	}
	if ci.offs == nil && ci.complete && ci.last >= ci.first {
		ci.offs = make([]int64, 0, (ci.last-ci.first)/indexEvery+1)
	}
	ci.offs = append(ci.offs, offs...)
	if ci.complete && next > ci.last && cap(ci.offs) > len(ci.offs) {
		ci.offs = slices.Clone(ci.offs) // it grows no more: drop append's spare room
	}
	ci.next, ci.end = next, end
	return s < next, nil
}

// isShort says a read found the file ending: before a frame or inside it.
func isShort(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }

var bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBuffer) }}

// getReader returns a buffered reader of f from offset off. It reads with
// ReadAt, so that no two reads share a file offset.
func getReader(f *os.File, off int64) *bufio.Reader {
	br := bufReaders.Get().(*bufio.Reader)
	br.Reset(io.NewSectionReader(f, off, math.MaxInt64-off))
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	bufReaders.Put(br)
}
