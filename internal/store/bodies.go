package store

// Record bodies written once per node.
//
// A registration's statement arrives in a raft entry, which the store
// holds until it is applied and compacted, and the ledger files (package
// ledgerfiles) hold every record, statement and all. Storing the record
// whole in Pebble as well made three durable copies of every statement on
// every node, and the copies, not the bytes, were most of a follower's
// cost. So once a store is given its ledger files (AttachFiles), apply
// stores a registration's record as a stub: the record's bytes before and
// after its body, and where the body is in the raft entry that carried it.
// The body is then read from that entry until the ledger files have
// synced the record, and from the files after.
//
// The invariant that makes this safe: a stub whose record the files have
// not synced has its raft entry in the log. Apply pins the entry when the
// stub commits; RaftLog.Compact never discards a pinned entry; the pin
// goes when the files report the record synced (FilesSynced); an install,
// which deletes the whole raft log, first rewrites the stubs still pinned
// as whole records (materializePinned). After a crash, AttachFiles pins
// again every stub the files do not hold, before raft runs.
//
// Records that come from elsewhere (snapshot images, backfill, imports)
// and records of other types are stored whole; readers (Record,
// ScanRecords, snapshot images) resolve stubs, so a stub never leaves the
// node.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// RecordFiles reads records back from the node's ledger files (a
// ledgerfiles.Reader): whole stored records, by seqno.
type RecordFiles interface {
	ReadRecords(from, to uint64, fn func(seqno uint64, raw []byte) error) error
}

// stubMarker starts every stub. A whole record is a CBOR array (a first
// byte of 0x80–0x9f), so the two never collide; 0xff is CBOR's "break",
// which cannot start an item.
const (
	stubMarker  = 0xff
	stubVersion = 1
)

// A stub is what the store keeps of a record whose body is elsewhere.
type stub struct {
	raftIndex uint64 // the raft entry whose data holds the body
	dataOff   uint64 // the body's offset in that entry's data
	bodyLen   uint64
	crc       uint32 // CRC-32C of the body: a wrong locator is caught, not served
	prefix    []byte // the record's bytes before its body
	suffix    []byte // and after it
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendStub encodes a stub:
//
//	0xff 0x01 uvarint(raftIndex) uvarint(dataOff) uvarint(bodyLen)
//	crc32c(body)[4, big-endian] uvarint(len(prefix)) prefix suffix
func appendStub(dst []byte, raftIndex, dataOff uint64, rec []byte, bodyStart, bodyLen int) []byte {
	body := rec[bodyStart : bodyStart+bodyLen]
	dst = append(dst, stubMarker, stubVersion)
	dst = binary.AppendUvarint(dst, raftIndex)
	dst = binary.AppendUvarint(dst, dataOff)
	dst = binary.AppendUvarint(dst, uint64(bodyLen))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(body, castagnoli))
	dst = binary.AppendUvarint(dst, uint64(bodyStart))
	dst = append(dst, rec[:bodyStart]...)
	return append(dst, rec[bodyStart+bodyLen:]...)
}

// stubSize is appendStub's output length.
func stubSize(raftIndex, dataOff uint64, recLen, bodyStart, bodyLen int) int {
	return 2 + uvarintLen(raftIndex) + uvarintLen(dataOff) + uvarintLen(uint64(bodyLen)) + 4 +
		uvarintLen(uint64(bodyStart)) + recLen - bodyLen
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func isStub(v []byte) bool { return len(v) > 0 && v[0] == stubMarker }

// parseStub decodes a stub; its slices alias v.
func parseStub(v []byte) (stub, error) {
	var st stub
	if len(v) < 2 || v[0] != stubMarker || v[1] != stubVersion {
		return st, errors.New("store: not a record stub of a known version")
	}
	v = v[2:]
	var fields [4]uint64
	for i := range fields {
		if i == 3 {
			if len(v) < 4 {
				return st, errors.New("store: record stub truncated")
			}
			st.crc = binary.BigEndian.Uint32(v)
			v = v[4:]
		}
		x, n := binary.Uvarint(v)
		if n <= 0 {
			return st, errors.New("store: record stub truncated")
		}
		fields[i], v = x, v[n:]
	}
	st.raftIndex, st.dataOff, st.bodyLen = fields[0], fields[1], fields[2]
	if fields[3] > uint64(len(v)) {
		return st, errors.New("store: record stub's prefix overruns it")
	}
	st.prefix, st.suffix = v[:fields[3]], v[fields[3]:]
	return st, nil
}

// assemble returns the whole record, the stub's prefix, body and suffix,
// after checking the body against the stub.
func (st stub) assemble(seqno uint64, data []byte) ([]byte, error) {
	if st.dataOff > uint64(len(data)) || st.bodyLen > uint64(len(data))-st.dataOff {
		return nil, fmt.Errorf("store: record %d: its body at %d+%d is outside raft entry %d (%d bytes)", seqno, st.dataOff, st.bodyLen, st.raftIndex, len(data))
	}
	body := data[st.dataOff : st.dataOff+st.bodyLen]
	if crc32.Checksum(body, castagnoli) != st.crc {
		return nil, fmt.Errorf("store: record %d: the body in raft entry %d does not match its checksum", seqno, st.raftIndex)
	}
	rec := make([]byte, 0, len(st.prefix)+len(body)+len(st.suffix))
	return append(append(append(rec, st.prefix...), body...), st.suffix...), nil
}

// A pin keeps raft entries from compaction: the stubs of seqnos low..high
// point into entries from raftIndex on, and the files have not yet synced
// all of them.
type pin struct{ low, high, raftIndex uint64 }

// bodies is the store's side of the files: the reader, how far the files
// have synced, and the pins.
type bodies struct {
	mu     sync.Mutex
	files  RecordFiles
	synced uint64
	pins   []pin // in seqno order, as applied
}

// AttachFiles gives the store the node's ledger files, which have synced
// every record up to synced, so that apply may store registrations as
// stubs. Call it once, after Open and before raft runs: it pins again the
// raft entries of every stub the files do not yet hold (a crash lost the
// files' unsynced tail, or they were behind at shutdown).
func (s *Store) AttachFiles(files RecordFiles, synced uint64) error {
	size, err := lastNumberUnder(s.db, prefixRecord)
	if err != nil {
		return err
	}
	// One pin covers them all: raft indexes grow with seqnos, so the first
	// stub's entry is the lowest any of them needs.
	var pins []pin
	if synced < size {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: recordKey(synced + 1), UpperBound: prefixEnd(prefixRecord)})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if !isStub(it.Value()) {
				continue
			}
			seqno := binary.BigEndian.Uint64(it.Key()[len(prefixRecord):])
			if len(pins) > 0 {
				pins[0].high = seqno
				continue
			}
			st, err := parseStub(it.Value())
			if err != nil {
				it.Close()
				return fmt.Errorf("store: record %d: %w", seqno, err)
			}
			pins = []pin{{seqno, seqno, st.raftIndex}}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	s.bodies.mu.Lock()
	s.bodies.files, s.bodies.synced, s.bodies.pins = files, synced, pins
	s.bodies.mu.Unlock()
	if len(pins) > 0 {
		s.log.Info("ledger files behind the store: raft entries kept until they catch up", "files_synced", synced, "first_pinned", pins[0].low)
	}
	return nil
}

// StubsEnabled reports whether apply may store a registration as a stub:
// the store has its ledger files and its history is complete (a node
// that installed a state image writes no files above its gap until
// backfill fills it, and its raft log must not wait for that).
func (s *Store) StubsEnabled() bool {
	s.bodies.mu.Lock()
	ok := s.bodies.files != nil
	s.bodies.mu.Unlock()
	return ok && s.gap.Load() == nil
}

// FilesSynced tells the store that the ledger files hold every record up
// to seqno durably: the stubs up to it are read from the files from now
// on, and their raft entries may be compacted.
func (s *Store) FilesSynced(seqno uint64) {
	s.bodies.mu.Lock()
	defer s.bodies.mu.Unlock()
	if seqno <= s.bodies.synced {
		return
	}
	s.bodies.synced = seqno
	i := 0
	for i < len(s.bodies.pins) && s.bodies.pins[i].high <= seqno {
		i++
	}
	s.bodies.pins = s.bodies.pins[i:]
}

// pinnedRaftIndex returns the first raft entry a stub still needs.
func (s *Store) pinnedRaftIndex() (uint64, bool) {
	s.bodies.mu.Lock()
	defer s.bodies.mu.Unlock()
	if len(s.bodies.pins) == 0 {
		return 0, false
	}
	return s.bodies.pins[0].raftIndex, true
}

func (s *Store) addPin(p pin) {
	s.bodies.mu.Lock()
	defer s.bodies.mu.Unlock()
	if p.high <= s.bodies.synced {
		return
	}
	s.bodies.pins = append(s.bodies.pins, p)
}

// filesView is what a reader needs of the files: the reader, and up to
// which seqno a stub is read from it.
func (s *Store) filesView() (RecordFiles, uint64) {
	s.bodies.mu.Lock()
	defer s.bodies.mu.Unlock()
	return s.bodies.files, s.bodies.synced
}

// PutRecordStub stores the record rec at seqno as a stub: rec's bytes
// without its body, rec[bodyStart:bodyStart+bodyLen], which is at dataOff
// in the data of raft entry raftIndex. The entry stays pinned from the
// batch's commit until the files sync the record. Only apply calls it,
// and only when StubsEnabled.
func (b *Batch) PutRecordStub(seqno uint64, rec []byte, bodyStart, bodyLen int, raftIndex, dataOff uint64) {
	op := b.b.SetDeferred(len(prefixRecord)+8, stubSize(raftIndex, dataOff, len(rec), bodyStart, bodyLen))
	appendNumbered(op.Key[:0], prefixRecord, seqno)
	appendStub(op.Value[:0], raftIndex, dataOff, rec, bodyStart, bodyLen)
	_ = op.Finish()
	if !b.pinned {
		b.pin, b.pinned = pin{seqno, seqno, raftIndex}, true
	}
	b.pin.high = seqno
}

// lastEntry keeps the raft entry a resolution last read: consecutive
// stubs mostly point into the same entry (a batch of statements), which is
// then read and decoded once, not once per record.
type lastEntry struct {
	index uint64
	data  []byte
}

// resolveRecord returns the whole record stored at seqno as v, read
// through r (the database, or a snapshot of it, for the raft entry). last,
// if not nil, is reused and updated across calls.
func (s *Store) resolveRecord(r pebble.Reader, seqno uint64, v []byte, last *lastEntry) ([]byte, error) {
	if !isStub(v) {
		return v, nil
	}
	st, err := parseStub(v)
	if err != nil {
		return nil, fmt.Errorf("store: record %d: %w", seqno, err)
	}
	files, synced := s.filesView()
	if seqno > synced {
		if last != nil && last.data != nil && last.index == st.raftIndex {
			return st.assemble(seqno, last.data)
		}
		data, err := raftEntryData(r, st.raftIndex)
		if err == nil {
			if last != nil {
				*last = lastEntry{st.raftIndex, data}
			}
			return st.assemble(seqno, data)
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("store: record %d: %w", seqno, err)
		}
		// Compacted since: only once the files synced it.
	}
	rec, err := readFromFiles(files, seqno)
	if err != nil {
		return nil, err
	}
	return rec, st.matches(seqno, rec)
}

// matches checks a whole record read from the ledger files against the
// stub: the same bytes around the body, and a body of the right length and
// checksum. It catches a damaged or misread file, not a deliberate edit
// (the checksum is not a MAC): the Merkle tree is what authenticates a
// record (spec/security.md).
func (st stub) matches(seqno uint64, rec []byte) error {
	p, s := len(st.prefix), len(st.suffix)
	if uint64(len(rec)) != uint64(p+s)+st.bodyLen || !bytes.Equal(rec[:p], st.prefix) || !bytes.Equal(rec[len(rec)-s:], st.suffix) ||
		crc32.Checksum(rec[p:len(rec)-s], castagnoli) != st.crc {
		return fmt.Errorf("store: record %d in the ledger files does not match the store's record of it", seqno)
	}
	return nil
}

func errNoFiles(seqno uint64) error {
	return fmt.Errorf("store: record %d is kept in the ledger files, which the store was not given", seqno)
}

// readFromFiles reads one whole record from the ledger files.
func readFromFiles(files RecordFiles, seqno uint64) ([]byte, error) {
	if files == nil {
		return nil, errNoFiles(seqno)
	}
	var rec []byte
	err := files.ReadRecords(seqno, seqno, func(_ uint64, raw []byte) error {
		rec = append([]byte(nil), raw...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: record %d from the ledger files: %w", seqno, err)
	}
	return rec, nil
}

// raftEntryData reads the data of raft entry i, or ErrNotFound.
func raftEntryData(r pebble.Reader, i uint64) ([]byte, error) {
	v, c, err := r.Get(entryKey(i))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("raft entry %d: %w", i, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var e pb.Entry
	if err := proto.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("raft entry %d: %w", i, err)
	}
	return e.GetData(), nil
}

// materializePinned rewrites as whole records the stubs whose raft
// entries are pinned, in one synced batch, and drops the pins: an install
// is about to delete the raft log. Crash reasoning: a whole record is
// always a valid value for its key, so a crash before or after the batch
// leaves a readable ledger.
func (s *Store) materializePinned() error {
	s.bodies.mu.Lock()
	pins := append([]pin(nil), s.bodies.pins...)
	s.bodies.mu.Unlock()
	if len(pins) == 0 {
		return nil
	}
	b := s.NewBatch()
	defer b.Close()
	var last lastEntry
	for _, p := range pins {
		for seqno := p.low; seqno <= p.high; seqno++ {
			v, err := s.Get(recordKey(seqno))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !isStub(v) {
				continue
			}
			rec, err := s.resolveRecord(s.db, seqno, v, &last)
			if err != nil {
				return err
			}
			b.PutRecord(seqno, rec)
		}
	}
	if err := b.Commit(true); err != nil {
		return err
	}
	s.bodies.mu.Lock()
	s.bodies.pins = nil
	s.bodies.mu.Unlock()
	return nil
}
