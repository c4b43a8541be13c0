// Package fault owns Charter's crash points: named places in the node's
// write paths where a test can have the process die at once, as kill -9
// would, to check what a crash there leaves (the crash reasoning at each
// write). Nothing happens unless the CHARTER_CRASH_AT environment variable
// names the point when the process starts; production never sets it.
//
// A point is reached at most once per process: the first time, the process
// sends itself SIGKILL, so nothing after the point runs (no deferred code,
// no flushed buffers), exactly as a crash.
package fault

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
)

// EnvCrashAt names the crash point, read once at start.
const EnvCrashAt = "CHARTER_CRASH_AT"

// The crash points.
const (
	// SnapshotStaged: an incoming snapshot image is staged and verified,
	// before raft sees it.
	SnapshotStaged = "snapshot-staged"
	// SnapshotMarked: the install's marker is durable; nothing else
	// changed yet.
	SnapshotMarked = "snapshot-marked"
	// SnapshotHalfWritten: the old state is wiped and part of the image
	// written.
	SnapshotHalfWritten = "snapshot-half-written"
	// SnapshotInstalled: the install's final batch is durable; the ledger
	// has not reloaded from it yet.
	SnapshotInstalled = "snapshot-installed"
	// StorageWriteError is not a crash: armed, the store's file system
	// fails every write after the first StorageWritesBeforeError (a disk
	// that goes bad under load), and the node must stop rather than go on
	// with raft and the disk disagreeing.
	StorageWriteError = "storage-write-error"
	// RecoverImportHalf: `charterd recover` imported part of the ledger
	// into its staging store.
	RecoverImportHalf = "recover-import-half"
	// RecoverImported: the staging store is complete and synced and the
	// recovery marker written; the store is not renamed into place yet.
	RecoverImported = "recover-imported"
	// RecoverRenamed: the imported store is in place; no node ran on it.
	RecoverRenamed = "recover-renamed"
	// RecoverBeforeRecord: the recovered node runs (new identity, raft
	// started) and has not proposed the recovery transaction yet.
	RecoverBeforeRecord = "recover-before-record"
	// RekeyBeforePropose: the primary made a new ledger secret version and
	// keeps it sealed on disk, and has not proposed the write set that
	// records it.
	RekeyBeforePropose = "rekey-before-propose"
	// BackfillHalf: a node that installed a state image has backfilled
	// (verified and written) at least half of the history it lacked.
	BackfillHalf = "backfill-half"
)

// StorageWritesBeforeError is how many file writes succeed before an armed
// StorageWriteError fails them all.
const StorageWritesBeforeError = 500

var crashAt = os.Getenv(EnvCrashAt)

// points are every crash point a node has.
var points = []string{SnapshotStaged, SnapshotMarked, SnapshotHalfWritten, SnapshotInstalled, StorageWriteError,
	RecoverImportHalf, RecoverImported, RecoverRenamed, RecoverBeforeRecord, RekeyBeforePropose, BackfillHalf}

// Check returns an error if the environment names a crash point that does
// not exist: a misspelt point would otherwise arm nothing, and the test
// that set it would pass without its crash.
func Check() error {
	if crashAt == "" || slices.Contains(points, crashAt) {
		return nil
	}
	return fmt.Errorf("%s=%q names no crash point (want one of %s)", EnvCrashAt, crashAt, strings.Join(points, ", "))
}

// Armed reports whether name is the configured crash point, for a write
// path that must shape itself so the point falls where it says (between two
// batches, say).
func Armed(name string) bool { return crashAt != "" && crashAt == name }

// Point crashes the process if it is the configured crash point.
func Point(name string) {
	if crashAt == "" || crashAt != name {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not delivered synchronously; never return
}
