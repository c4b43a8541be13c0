package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/log"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
)

// A snapshot image is this node's applied state, to bring a far-behind
// follower up to date without the raft entries that made it:
//
//	"CHARTER-SNAPSHOT-3\n"
//	uvarint(base) root                  the ledger prefix the follower holds
//	                                    (its size and 32-byte tree hash; 0 and
//	                                    zeros for none)
//	uvarint(floor)                      0 for a delta image; else the image
//	                                    is a state image without the history
//	                                    from base to floor
//	( uvarint(len(key)) key uvarint(len(value)) value )*
//	uvarint(0)
//	SHA-256 of all the bytes above
//
// An image of the older format, "CHARTER-SNAPSHOT-2\n", is the same
// without the floor (a delta image), and still parses.
//
// Every image holds the applied position and ConfState, every key of the
// key-value maps, and the ledger state. A delta image (floor 0) then holds
// the ledger beyond base: records after seqno base, stored hashes from
// tlog.StoredHashCount(base), and the index items those records added (the
// registrations' entries, the checkpoints' tree sizes). With base 0 that is
// the whole ledger.
//
// A ledger only grows and its committed prefix is the same on every node,
// so a follower that holds the prefix of size base with the same tree hash
// holds exactly the leader's first base transactions: the image need not
// repeat them, and what it costs grows with what the follower missed, not
// with the ledger's history. The follower asks for it by telling the leader
// its base (LedgerBase); the leader uses it only if its own tree has the
// same hash at that size, and the follower installs the image only if it
// still holds that prefix.
//
// A follower that missed more than stateImageAfter transactions (a new
// node, base 0, at 10^8 transactions) is sent a state image instead, whose
// floor is the tree size of the leader's newest checkpoint. It holds no
// history between base and floor: only the stored hashes of the complete
// subtrees that make the tree of size floor (its right edge: what
// appending, the root at floor and proofs for later leaves read), the
// stored hashes, records and checkpoint index items after floor, and the
// whole registrations' index (entry to seqno: 50 bytes a registration),
// and the genesis transaction (which a node reads as it starts).
// The index is whole because duplicate detection at apply is
// deterministic on every node: a node that could not tell an old entry
// from a new one would append a duplicate the others refuse, and fork.
// The follower records the gap (history.go) and fetches it from its peers
// afterwards (backfill), verifying each range against the hashes the image
// gave it; the ledger checks the root at floor against the signed
// checkpoint when it restores from the image.
//
// The receiver stages the whole image to a file and checks the digest and
// the base before raft is told about it, so a torn or altered transfer, or
// one relative to a prefix the node does not hold, is never installed.

const (
	snapshotMagic   = "CHARTER-SNAPSHOT-3\n"
	snapshotMagicV2 = "CHARTER-SNAPSHOT-2\n"
)

// stateImageAfter is how many transactions a follower may miss beyond its
// base and still be sent a delta image; one that misses more is sent a
// state image and backfills. A var for tests.
var stateImageAfter uint64 = 4096

// imageHeader is what an image says before its items.
type imageHeader struct {
	Base  Base
	Floor uint64
}

// maxSnapshotKey and maxSnapshotValue bound what a staged image may hold
// per item; a statement is at most a few MiB.
const (
	maxSnapshotKey   = 1 << 10
	maxSnapshotValue = 64 << 20
)

// ErrBadSnapshot reports a snapshot image that does not parse or whose
// digest does not match.
var ErrBadSnapshot = errors.New("store: bad snapshot image")

// ErrSnapshotBase reports an image relative to a ledger prefix this store
// does not hold.
var ErrSnapshotBase = errors.New("store: snapshot image is relative to a ledger prefix this node does not hold")

var keyInstalling = []byte{famMeta, 'i'}

// A Base is the ledger prefix a node holds: its first Size transactions,
// whose Merkle tree hash is Root.
type Base struct {
	Size uint64
	Root tlog.Hash
}

// baseBytes is the length of a Base on the wire.
const baseBytes = 8 + tlog.HashSize

// MarshalBinary encodes b as its size (8 bytes, big-endian) and root.
func (b Base) MarshalBinary() ([]byte, error) {
	return append(be64(b.Size), b.Root[:]...), nil
}

// UnmarshalBinary decodes what MarshalBinary encodes.
func (b *Base) UnmarshalBinary(p []byte) error {
	if len(p) != baseBytes {
		return fmt.Errorf("store: a ledger base is %d bytes, not %d", baseBytes, len(p))
	}
	b.Size = binary.BigEndian.Uint64(p[:8])
	copy(b.Root[:], p[8:])
	return nil
}

// LedgerBase returns the ledger prefix this store holds: all of its
// transactions, or with history incomplete those below the gap. A delta
// image from a leader is relative to it.
func (s *Store) LedgerBase() (Base, error) { return ledgerBase(s.db) }

func ledgerBase(r pebble.Reader) (Base, error) {
	size, err := ledgerBaseSize(r)
	if err != nil {
		return Base{}, err
	}
	if g, ok, err := readGap(r); err != nil {
		return Base{}, err
	} else if ok {
		size = g.Next
	}
	if size == 0 {
		return Base{}, nil
	}
	root, err := tlog.TreeHash(int64(size), hashReader{r})
	if err != nil {
		return Base{}, fmt.Errorf("store: tree hash at %d: %w", size, err)
	}
	return Base{Size: size, Root: root}, nil
}

// holds reports whether r holds the ledger prefix b: at least b.Size
// transactions, with tree hash b.Root at that size.
func holds(r pebble.Reader, b Base) (bool, error) {
	if b.Size == 0 {
		return true, nil
	}
	_, c, err := r.Get(recordKey(b.Size))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.Close()
	root, err := tlog.TreeHash(int64(b.Size), hashReader{r})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return root == b.Root, nil
}

// checkBase returns ErrSnapshotBase unless this store holds base.
func (s *Store) checkBase(base Base) error {
	ok, err := holds(s.db, base)
	if err == nil && !ok {
		err = fmt.Errorf("%w (size %d)", ErrSnapshotBase, base.Size)
	}
	return err
}

// OpenSnapshot returns a consistent image of the applied state (a Pebble
// snapshot read as one stream), relative to the follower's base if this
// store holds the same prefix, and else whole. It returns the image's
// metadata (the applied position it holds) and the base it is relative to.
func (s *Store) OpenSnapshot(follower Base) (*pb.SnapshotMetadata, Base, io.ReadCloser, error) {
	snap := s.db.NewSnapshot()
	fail := func(err error) (*pb.SnapshotMetadata, Base, io.ReadCloser, error) {
		snap.Close()
		return nil, Base{}, nil, err
	}
	get := func(k []byte) ([]byte, error) {
		v, c, err := snap.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return append([]byte(nil), v...), nil
	}
	av, err := get(keyApplied)
	if err != nil {
		return fail(fmt.Errorf("store: snapshot: applied position: %w", err))
	}
	index, term, err := decodeApplied(av)
	if err != nil {
		return fail(err)
	}
	cs := &pb.ConfState{}
	if cv, err := get(keyConfState); err == nil {
		if err := proto.Unmarshal(cv, cs); err != nil {
			return fail(err)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return fail(err)
	}
	base := follower
	if ok, err := holds(snap, base); err != nil {
		return fail(err)
	} else if !ok {
		base = Base{}
	}
	floor, err := imageFloor(snap, base)
	if err != nil {
		return fail(err)
	}
	if floor > 0 {
		s.log.Info("sending a state image without the history below its floor", "floor", floor, "follower_holds", base.Size)
	}
	meta := &pb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: cs}
	pr, pw := io.Pipe()
	go func() {
		defer snap.Close()
		pw.CloseWithError(s.writeImage(pw, snap, imageHeader{Base: base, Floor: floor}))
	}()
	return meta, base, pr, nil
}

// imageFloor decides between a delta image (0) and a state image (its
// floor, the newest checkpoint's tree size) for a follower that holds
// base. A state image when the follower misses more than stateImageAfter
// transactions, or when this node's own history has a gap above base (a
// delta would have to carry transactions this node does not hold); and
// only if the newest checkpoint is beyond base (else the delta is short).
func imageFloor(snap *pebble.Snapshot, base Base) (uint64, error) {
	cp, err := newestCheckpointSize(snap)
	if err != nil || cp <= base.Size {
		return 0, err
	}
	own, gap, err := readGap(snap)
	if err != nil {
		return 0, err
	}
	size, err := ledgerBaseSize(snap)
	if err != nil {
		return 0, err
	}
	if size-base.Size > stateImageAfter || (gap && base.Size < own.Floor) {
		return cp, nil
	}
	return 0, nil
}

// ledgerBaseSize is the seqno of the last record in r.
func ledgerBaseSize(r pebble.Reader) (uint64, error) { return lastNumberUnder(r, prefixRecord) }

// lastNumberUnder is the number (big-endian uint64) that ends the last key
// under prefix in r, 0 when there is none: the newest record's seqno, the
// newest checkpoint's tree size.
func lastNumberUnder(r pebble.Reader, prefix []byte) (uint64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	var n uint64
	if it.Last() {
		n = binary.BigEndian.Uint64(it.Key()[len(prefix):])
	}
	err = it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (s *Store) writeImage(w io.Writer, snap *pebble.Snapshot, hdr imageHeader) error {
	// An image carries whole records: a stub's locator means something
	// only on the node that wrote it (bodies.go).
	var last lastEntry
	record := func(k, v []byte) ([]byte, error) {
		if !isStub(v) {
			return v, nil
		}
		return s.resolveRecord(snap, binary.BigEndian.Uint64(k[len(prefixRecord):]), v, &last)
	}
	base, floor := hdr.Base, hdr.Floor
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	buf := binary.AppendUvarint(nil, base.Size)
	buf = append(buf, base.Root[:]...)
	buf = binary.AppendUvarint(buf, floor)
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	put := func(k, v []byte) error {
		buf = binary.AppendUvarint(buf[:0], uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		_, err := bw.Write(buf)
		if err == nil {
			_, err = bw.Write(v)
		}
		return err
	}
	for _, k := range [][]byte{keyApplied, keyConfState, keyLedgerState} {
		v, c, err := snap.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		err = put(k, v)
		c.Close()
		if err != nil {
			return err
		}
	}
	each := func(lower, upper []byte, fn func(k, v []byte) error) error {
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if err := fn(it.Key(), it.Value()); err != nil {
				it.Close()
				return err
			}
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		return err
	}
	ranges := [][2][]byte{{[]byte{famKV}, []byte{famKV + 1}}}
	if floor > 0 {
		// A state image: the whole registrations' index, the right edge of
		// floor's tree, and the stored hashes after floor.
		ranges = append(ranges, [2][]byte{prefixEntryHash, prefixEnd(prefixEntryHash)})
		var edge []int64
		for _, st := range frontier(floor) {
			edge = append(edge, tlog.StoredHashIndex(int(st[0]), st[1]))
		}
		hs, err := hashReader{snap}.ReadHashes(edge)
		if err != nil {
			return fmt.Errorf("store: snapshot: the tree's edge at %d: %w", floor, err)
		}
		for i, x := range edge {
			if err := put(hashKey(x), hs[i][:]); err != nil {
				return err
			}
		}
		ranges = append(ranges,
			[2][]byte{hashKey(tlog.StoredHashCount(int64(floor))), prefixEnd(prefixHash)})
		// The genesis transaction too, which a node reads as it starts
		// (the service's identity and configuration at creation).
		if base.Size == 0 {
			v, c, err := snap.Get(recordKey(1))
			if err != nil {
				return fmt.Errorf("store: snapshot: genesis record: %w", err)
			}
			if v, err = record(recordKey(1), v); err == nil {
				err = put(recordKey(1), v)
			}
			c.Close()
			if err != nil {
				return err
			}
		}
	} else if base.Size == 0 {
		ranges = append(ranges, [2][]byte{[]byte{famLedger}, []byte{famLedger + 1}})
	} else {
		ranges = append(ranges,
			[2][]byte{hashKey(tlog.StoredHashCount(int64(base.Size))), prefixEnd(prefixHash)})
	}
	for _, r := range ranges {
		if err := each(r[0], r[1], func(k, v []byte) error {
			if bytes.Equal(k, keyLedgerState) {
				return nil // written above
			}
			if bytes.HasPrefix(k, prefixRecord) {
				var err error
				if v, err = record(k, v); err != nil {
					return err
				}
			}
			return put(k, v)
		}); err != nil {
			return err
		}
	}
	if base.Size > 0 || floor > 0 {
		// The records after base (after floor for a state image), each
		// followed by the index item it added: a registration's entry, a
		// checkpoint's tree size. Both indexes are keyed by something
		// other than the seqno (a checkpoint after base may sign a tree no
		// larger than base), so their part beyond base is found through
		// the records. A state image has the whole entry index already.
		from := max(base.Size, floor)
		if err := each(recordKey(from+1), prefixEnd(prefixRecord), func(k, v []byte) error {
			v, err := record(k, v)
			if err != nil {
				return err
			}
			if err := put(k, v); err != nil {
				return err
			}
			rec, err := log.UnmarshalRecord(v)
			if err != nil {
				return fmt.Errorf("store: snapshot: record %x: %w", k, err)
			}
			switch rec.Type {
			case log.TxRegistration:
				if floor > 0 {
					return nil
				}
				return put(entryHashKey(rec.Entry), entryValue(rec.Seqno, rec.View))
			case log.TxCheckpoint:
				cp, err := log.UnmarshalCheckpoint(rec.Body)
				if err != nil {
					return fmt.Errorf("store: snapshot: checkpoint record %d: %w", rec.Seqno, err)
				}
				return put(checkpointKey(cp.TreeSize), be64(rec.Seqno))
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if _, err := bw.Write([]byte{0}); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(h.Sum(nil))
	return err
}

// StageSnapshot writes an incoming image to a file under dir and checks
// it (its digest, and that this store holds the ledger prefix it is
// relative to), returning the file's path. Nothing in the store changes.
func (s *Store) StageSnapshot(dir string, r io.Reader) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "incoming-*.snap")
	if err != nil {
		return "", err
	}
	path := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return "", fmt.Errorf("store: receiving snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	hdr, err := readImage(bufio.NewReaderSize(f, 1<<20), func(k, v []byte) error { return nil })
	if err != nil {
		return "", err
	}
	if err := s.checkBase(hdr.Base); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	// The install's marker names this file: its directory entry must be
	// durable before the marker is.
	if err := durable.SyncDir(dir); err != nil {
		return "", err
	}
	ok = true
	return path, nil
}

// hashingReader feeds every byte read to a hash.
type hashingReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashingReader) ReadByte() (byte, error) {
	b, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{b})
	}
	return b, err
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

// imageReader is what readHeader reads an image's header from: the
// hashing reader of a whole image, or the peeked bytes of one.
type imageReader interface {
	io.Reader
	io.ByteReader
}

// readHeader reads an image's header: its magic (this format's, or the
// older one without a floor), its base, and its floor.
func readHeader(r imageReader) (imageHeader, error) {
	var hdr imageHeader
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || (string(magic) != snapshotMagic && string(magic) != snapshotMagicV2) {
		return hdr, fmt.Errorf("%w: no snapshot header", ErrBadSnapshot)
	}
	size, err := binary.ReadUvarint(r)
	if err == nil {
		_, err = io.ReadFull(r, hdr.Base.Root[:])
	}
	if err != nil || size > math.MaxInt64 {
		return hdr, fmt.Errorf("%w: no ledger base", ErrBadSnapshot)
	}
	hdr.Base.Size = size
	if string(magic) == snapshotMagic {
		floor, err := binary.ReadUvarint(r)
		if err != nil || floor > math.MaxInt64 || (floor != 0 && floor <= size) {
			return hdr, fmt.Errorf("%w: bad floor", ErrBadSnapshot)
		}
		hdr.Floor = floor
	}
	return hdr, nil
}

// readImage parses an image, calling fn for each item, and checks the
// digest. It returns the image's header: the base it is relative to, and
// its floor.
func readImage(r *bufio.Reader, fn func(k, v []byte) error) (imageHeader, error) {
	hr := &hashingReader{r: r, h: sha256.New()}
	hdr, err := readHeader(hr)
	if err != nil {
		return hdr, err
	}
	for {
		kl, err := binary.ReadUvarint(hr)
		if err != nil {
			return hdr, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		if kl == 0 {
			break
		}
		if kl > maxSnapshotKey {
			return hdr, fmt.Errorf("%w: key of %d bytes", ErrBadSnapshot, kl)
		}
		k := make([]byte, kl)
		if _, err := io.ReadFull(hr, k); err != nil {
			return hdr, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		vl, err := binary.ReadUvarint(hr)
		if err != nil || vl > maxSnapshotValue {
			return hdr, fmt.Errorf("%w: bad value length", ErrBadSnapshot)
		}
		v := make([]byte, vl)
		if _, err := io.ReadFull(hr, v); err != nil {
			return hdr, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		if !snapshotKeyAllowed(k) {
			return hdr, fmt.Errorf("%w: key %x outside the snapshot's key families", ErrBadSnapshot, k)
		}
		if err := fn(k, v); err != nil {
			return hdr, err
		}
	}
	want := hr.h.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(r, got); err != nil {
		return hdr, fmt.Errorf("%w: missing digest", ErrBadSnapshot)
	}
	if !bytes.Equal(got, want) {
		return hdr, fmt.Errorf("%w: digest mismatch", ErrBadSnapshot)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return hdr, fmt.Errorf("%w: bytes after the digest", ErrBadSnapshot)
	}
	return hdr, nil
}

func snapshotKeyAllowed(k []byte) bool {
	return bytes.Equal(k, keyApplied) || bytes.Equal(k, keyConfState) || k[0] == famLedger || k[0] == famKV
}

// InstallSnapshot replaces the applied state with a staged image and makes
// the raft log start after it.
//
// Crash reasoning: a marker naming the staged image and its metadata is
// written (synced) first; until then nothing changed. The old state is then
// deleted and the image written in batches that are not atomic together;
// the last batch sets the raft snapshot metadata and applied position and
// deletes the marker, synced; only after it is the staged image removed.
// A crash in between leaves the marker and the image, and Open completes
// the install from them (recoverInstall), so a restarted node has either
// its previous state and log (crash before the marker) or the complete new
// state (any crash after it). It never comes back with less than it
// acknowledged: raft's leader may count on what this node had, and a node
// that lost it panics on the leader's next heartbeat.
func (l *RaftLog) InstallSnapshot(path string, meta *pb.SnapshotMetadata) error {
	hs, err := l.s.installImage(path, meta)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.snap = proto.Clone(meta).(*pb.SnapshotMetadata)
	l.hard = hs
	l.conf = proto.Clone(meta.GetConfState()).(*pb.ConfState)
	l.lastIndex, l.lastTerm = meta.GetIndex(), meta.GetTerm()
	l.forgetTail()
	return nil
}

// installMarkerVersion starts a marker that names the staged image. An
// older marker held the metadata alone.
const installMarkerVersion = 'P'

// installMarker is keyInstalling's value: the version, the staged image's
// path (uvarint length, bytes) and the snapshot metadata (protobuf).
func installMarker(path string, meta *pb.SnapshotMetadata) ([]byte, error) {
	metaBytes, err := proto.Marshal(meta)
	if err != nil {
		return nil, err
	}
	m := []byte{installMarkerVersion}
	m = binary.AppendUvarint(m, uint64(len(path)))
	m = append(m, path...)
	return append(m, metaBytes...), nil
}

func parseInstallMarker(b []byte) (string, *pb.SnapshotMetadata, bool) {
	if len(b) == 0 || b[0] != installMarkerVersion {
		return "", nil, false
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > uint64(len(b)-1-k) {
		return "", nil, false
	}
	path := string(b[1+k : 1+k+int(n)])
	meta := &pb.SnapshotMetadata{}
	if err := proto.Unmarshal(b[1+k+int(n):], meta); err != nil || meta.GetIndex() == 0 {
		return "", nil, false
	}
	return path, meta, true
}

// installImage installs the staged image at path: it checks the base,
// writes the marker that announces the install (synced), wipes, writes the
// image, then the final synced batch (position, metadata, marker deleted),
// then removes the staged image. InstallSnapshot runs it, and Open runs it
// again to complete an install a crash interrupted. It returns the hard
// state it wrote.
func (s *Store) installImage(path string, meta *pb.SnapshotMetadata) (*pb.HardState, error) {
	metaBytes, err := proto.Marshal(meta)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	hdr, err := peekHeader(br)
	if err != nil {
		return nil, err
	}
	base := hdr.Base
	// A backfilled range was verified for the gap this install replaces:
	// its batch goes before the install, or after it (and is refused).
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// A delta keeps the ledger prefix it is relative to. Checked again here
	// (as at staging) because the store may have changed since, and an
	// install completed after a crash runs on whatever the store then
	// holds (an install that had begun only overwrote that prefix with the
	// same bytes). Refused before the marker, a delta this node cannot take
	// leaves it with its previous state and log: raft sends a snapshot
	// again.
	if err := s.checkBase(base); err != nil {
		return nil, err
	}
	// The wipe deletes the raft log: a kept record must not still read its
	// body from it.
	if err := s.materializePinned(); err != nil {
		return nil, err
	}
	// The marker (again, when completing an interrupted install: the same
	// bytes) is durable before anything changes.
	marker, err := installMarker(path, meta)
	if err != nil {
		return nil, err
	}
	if err := s.db.Set(keyInstalling, marker, pebble.Sync); err != nil {
		return nil, err
	}
	fault.Point(fault.SnapshotMarked)
	if err := s.wipeState(base.Size == 0); err != nil {
		return nil, err
	}
	b := s.NewBatch()
	items := 0
	_, err = readImage(br, func(k, v []byte) error {
		b.Set(k, v)
		if items++; items == 100 && fault.Armed(fault.SnapshotHalfWritten) {
			if err := b.Commit(false); err != nil {
				return err
			}
			fault.Point(fault.SnapshotHalfWritten)
		}
		if b.Len() >= 32<<20 {
			if err := b.Commit(false); err != nil {
				return err
			}
			b = s.NewBatch()
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	hs := &pb.HardState{}
	if err := s.getProto(keyHardState, hs); err != nil && !errors.Is(err, ErrNotFound) {
		b.Close()
		return nil, err
	}
	if hs.GetCommit() < meta.GetIndex() {
		hs.Commit = proto.Uint64(meta.GetIndex())
	}
	hsBytes, err := proto.Marshal(hs)
	if err != nil {
		b.Close()
		return nil, err
	}
	csBytes, err := proto.Marshal(meta.GetConfState())
	if err != nil {
		b.Close()
		return nil, err
	}
	b.Set(keySnapMeta, metaBytes)
	b.Set(keyHardState, hsBytes)
	b.Set(keyConfState, csBytes)
	b.SetApplied(meta.GetIndex(), meta.GetTerm())
	// The gap, with the state it belongs to: a state image's, from what
	// the node holds (base) to the floor; a delta leaves none (it carries
	// everything after base, and base is all the node held below any gap
	// it had).
	gap := HistoryGap{Next: base.Size, Floor: hdr.Floor}
	if hdr.Floor > 0 {
		b.Set(keyHistory, encodeGap(gap))
	} else {
		b.Delete(keyHistory)
	}
	b.Delete(keyInstalling)
	if err := b.Commit(true); err != nil {
		return nil, err
	}
	s.publishHistory(gap, hdr.Floor > 0)
	fault.Point(fault.SnapshotInstalled)
	_ = os.Remove(path)
	return hs, nil
}

// peekHeader reads an image's header, leaving r where it was.
func peekHeader(r *bufio.Reader) (imageHeader, error) {
	head, err := r.Peek(len(snapshotMagic) + 2*binary.MaxVarintLen64 + tlog.HashSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return imageHeader{}, err
	}
	return readHeader(bytes.NewReader(head))
}

// wipeState deletes the key-value maps, the raft entries and the applied
// position, and the ledger too if withLedger.
func (s *Store) wipeState(withLedger bool) error {
	b := s.NewBatch()
	defer b.Close()
	if withLedger {
		b.DeleteRange([]byte{famLedger}, []byte{famLedger + 1})
	}
	b.DeleteRange([]byte{famKV}, []byte{famKV + 1})
	b.DeleteRange([]byte{famRaft, 'e'}, []byte{famRaft, 'e' + 1})
	b.Delete(keyApplied)
	return b.Commit(true)
}

// recoverInstall finishes what an interrupted InstallSnapshot left: it
// completes the install from the staged image the marker names. Only if
// that cannot be done (a marker of the older format, or the image is gone
// or damaged) does it fall back to wiping the half-written state and the
// raft position, keeping the hard state's term and vote with commit reset
// to zero, so that the node is sent a snapshot again; a leader that had
// counted on this node's log then fails to replicate to it until it does
// (and an etcd raft follower may refuse its heartbeat), which is why the
// image is kept until the install is complete.
func (s *Store) recoverInstall() error {
	marker, err := s.Get(keyInstalling)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if path, meta, ok := parseInstallMarker(marker); ok {
		s.log.Warn("completing a snapshot install that a crash interrupted", "index", meta.GetIndex(), "image", path)
		_, err := s.installImage(path, meta)
		if err == nil {
			return nil
		}
		s.log.Error("cannot complete the interrupted snapshot install; wiping its partial state", "err", err)
	} else {
		s.log.Warn("an interrupted snapshot install left partial state; wiping it so the node is sent a snapshot again")
	}
	if err := s.wipeState(true); err != nil {
		return err
	}
	b := s.NewBatch()
	defer b.Close()
	hs := &pb.HardState{}
	if err := s.getProto(keyHardState, hs); err == nil {
		hs.Commit = proto.Uint64(0)
		v, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		b.Set(keyHardState, v)
	}
	b.Delete(keySnapMeta)
	b.Delete(keyHistory) // the wipe took the ledger the gap was in
	b.Delete(keyInstalling)
	return b.Commit(true)
}

// RemoveStaged deletes the images staged in dir: those that raft never
// installed (a stale snapshot it ignored, a transfer cut by a crash).
// Call it after Open, which has completed any install a marker names.
func RemoveStaged(dir string) error {
	staged, err := filepath.Glob(filepath.Join(dir, "incoming-*.snap"))
	if err != nil {
		return err
	}
	for _, p := range staged {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// SnapshotDir is where a store's incoming snapshots are staged.
func SnapshotDir(dataDir string) string { return filepath.Join(dataDir, "snapshots") }
