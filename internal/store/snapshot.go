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
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A snapshot image is this node's applied state, to bring a far-behind
// follower up to date without the raft entries that made it:
//
//	"CHARTER-SNAPSHOT-1\n"
//	( uvarint(len(key)) key uvarint(len(value)) value )*   every key of the ledger
//	                                                       and KV families, plus the
//	                                                       applied position and ConfState
//	uvarint(0)
//	SHA-256 of all the bytes above
//
// The receiver stages the whole image to a file and checks the digest before
// raft is told about it, so a torn or altered transfer is never installed.

const snapshotMagic = "CHARTER-SNAPSHOT-1\n"

// maxSnapshotKey and maxSnapshotValue bound what a staged image may hold
// per item; a statement is at most a few MiB.
const (
	maxSnapshotKey   = 1 << 10
	maxSnapshotValue = 64 << 20
)

// ErrBadSnapshot reports a snapshot image that does not parse or whose
// digest does not match.
var ErrBadSnapshot = errors.New("store: bad snapshot image")

var keyInstalling = []byte{famMeta, 'i'}

// OpenSnapshot returns a consistent image of the applied state: a Pebble
// snapshot read as one stream. The metadata is the applied position it holds.
func (s *Store) OpenSnapshot() (*pb.SnapshotMetadata, io.ReadCloser, error) {
	snap := s.db.NewSnapshot()
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
		snap.Close()
		return nil, nil, fmt.Errorf("store: snapshot: applied position: %w", err)
	}
	index, term, err := decodeApplied(av)
	if err != nil {
		snap.Close()
		return nil, nil, err
	}
	cs := &pb.ConfState{}
	if cv, err := get(keyConfState); err == nil {
		if err := proto.Unmarshal(cv, cs); err != nil {
			snap.Close()
			return nil, nil, err
		}
	} else if !errors.Is(err, ErrNotFound) {
		snap.Close()
		return nil, nil, err
	}
	meta := &pb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: cs}
	pr, pw := io.Pipe()
	go func() {
		defer snap.Close()
		pw.CloseWithError(writeImage(pw, snap))
	}()
	return meta, pr, nil
}

func writeImage(w io.Writer, snap *pebble.Snapshot) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	var buf []byte
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
	for _, k := range [][]byte{keyApplied, keyConfState} {
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
	for _, fam := range []byte{famLedger, famKV} {
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{fam}, UpperBound: []byte{fam + 1}})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if err := put(it.Key(), it.Value()); err != nil {
				it.Close()
				return err
			}
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
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
// it, returning the file's path. Nothing in the store changes.
func StageSnapshot(dir string, r io.Reader) (string, error) {
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
	if err := readImage(bufio.NewReaderSize(f, 1<<20), func(k, v []byte) error { return nil }); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
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

// readImage parses an image, calling fn for each item, and checks the digest.
func readImage(r *bufio.Reader, fn func(k, v []byte) error) error {
	hr := &hashingReader{r: r, h: sha256.New()}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(hr, magic); err != nil || string(magic) != snapshotMagic {
		return fmt.Errorf("%w: no snapshot header", ErrBadSnapshot)
	}
	for {
		kl, err := binary.ReadUvarint(hr)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		if kl == 0 {
			break
		}
		if kl > maxSnapshotKey {
			return fmt.Errorf("%w: key of %d bytes", ErrBadSnapshot, kl)
		}
		k := make([]byte, kl)
		if _, err := io.ReadFull(hr, k); err != nil {
			return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		vl, err := binary.ReadUvarint(hr)
		if err != nil || vl > maxSnapshotValue {
			return fmt.Errorf("%w: bad value length", ErrBadSnapshot)
		}
		v := make([]byte, vl)
		if _, err := io.ReadFull(hr, v); err != nil {
			return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		if !snapshotKeyAllowed(k) {
			return fmt.Errorf("%w: key %x outside the snapshot's key families", ErrBadSnapshot, k)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	want := hr.h.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(r, got); err != nil {
		return fmt.Errorf("%w: missing digest", ErrBadSnapshot)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: digest mismatch", ErrBadSnapshot)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: bytes after the digest", ErrBadSnapshot)
	}
	return nil
}

func snapshotKeyAllowed(k []byte) bool {
	return bytes.Equal(k, keyApplied) || bytes.Equal(k, keyConfState) || k[0] == famLedger || k[0] == famKV
}

// InstallSnapshot replaces the applied state with a staged image and makes
// the raft log start after it.
//
// Crash reasoning: a marker key is written (synced) first. The old state is
// deleted and the image written in batches that are not atomic together; the
// last batch sets the raft snapshot metadata and applied position and
// deletes the marker, synced. A crash in between leaves the marker, and Open
// then wipes the half-installed state (see recoverInstall) so that the node
// starts empty and is sent a snapshot again; it never serves a mixture.
func (l *RaftLog) InstallSnapshot(path string, meta *pb.SnapshotMetadata) error {
	s := l.s
	metaBytes, err := proto.Marshal(meta)
	if err != nil {
		return err
	}
	if err := s.db.Set(keyInstalling, metaBytes, pebble.Sync); err != nil {
		return err
	}
	if err := s.wipeState(); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b := s.NewBatch()
	err = readImage(bufio.NewReaderSize(f, 1<<20), func(k, v []byte) error {
		b.Set(k, v)
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
		return err
	}
	hs := l.HardState()
	if hs.GetCommit() < meta.GetIndex() {
		hs.Commit = proto.Uint64(meta.GetIndex())
	}
	hsBytes, err := proto.Marshal(hs)
	if err != nil {
		b.Close()
		return err
	}
	csBytes, err := proto.Marshal(meta.GetConfState())
	if err != nil {
		b.Close()
		return err
	}
	b.Set(keySnapMeta, metaBytes)
	b.Set(keyHardState, hsBytes)
	b.Set(keyConfState, csBytes)
	b.SetApplied(meta.GetIndex(), meta.GetTerm())
	b.Delete(keyInstalling)
	if err := b.Commit(true); err != nil {
		return err
	}
	_ = os.Remove(path)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.snap = proto.Clone(meta).(*pb.SnapshotMetadata)
	l.hard = hs
	l.conf = proto.Clone(meta.GetConfState()).(*pb.ConfState)
	l.lastIndex, l.lastTerm = meta.GetIndex(), meta.GetTerm()
	return nil
}

// wipeState deletes the ledger, the key-value maps and the raft entries.
func (s *Store) wipeState() error {
	b := s.NewBatch()
	defer b.Close()
	b.DeleteRange([]byte{famLedger}, []byte{famLedger + 1})
	b.DeleteRange([]byte{famKV}, []byte{famKV + 1})
	b.DeleteRange([]byte{famRaft, 'e'}, []byte{famRaft, 'e' + 1})
	b.Delete(keyApplied)
	return b.Commit(true)
}

// recoverInstall finishes what an interrupted InstallSnapshot left: it
// wipes the half-written state and the raft position, keeping the hard
// state's term and vote (raft's promises) with commit reset to zero.
func (s *Store) recoverInstall() error {
	if _, err := s.Get(keyInstalling); errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	s.log.Warn("an interrupted snapshot install left partial state; wiping it so the node is sent a snapshot again")
	if err := s.wipeState(); err != nil {
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
	b.Delete(keyInstalling)
	return b.Commit(true)
}

// SnapshotDir is where a store's incoming snapshots are staged.
func SnapshotDir(dataDir string) string { return filepath.Join(dataDir, "snapshots") }
