package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/log"
	"golang.org/x/mod/sumdb/note"
)

// TestKill9DuringRegistrations kills the node with SIGKILL while 16
// publishers register, three times, and checks after each restart that
// every receipt the node ever returned still holds: the entry is there at
// the same leaf index with the same receipt, the receipt verifies with the
// published keys, and the tree only grew (consistency from every
// checkpoint seen before a kill).
func TestKill9DuringRegistrations(t *testing.T) {
	t.Parallel()
	const (
		publishers = 16
		cycles     = 3
		loadFor    = 3 * time.Second // publishers stop after this at the latest
	)
	dir := filepath.Join(t.TempDir(), "node")
	n := startNode(t, dir)
	pubs := make([]*publisher, 4)
	for i := range pubs {
		pubs[i] = newPublisher(t, fmt.Sprintf("e2e durability publisher %d", i))
	}

	var (
		all         []*registration // every receipt returned, over all cycles
		checkpoints []checkpoint    // every checkpoint seen before a kill
	)
	for cycle := 1; cycle <= cycles; cycle++ {
		ctx, cancel := context.WithTimeout(context.Background(), loadFor)
		var (
			mu      sync.Mutex
			got     []*registration
			failed  []string
			wg      sync.WaitGroup
			served  = n // the node this cycle's publishers talk to
			started = time.Now()
		)
		for w := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pub := pubs[w%len(pubs)]
				for ctx.Err() == nil {
					stmt, err := pub.tryUnique()
					if err != nil {
						mu.Lock()
						failed = append(failed, err.Error())
						mu.Unlock()
						return
					}
					reg, err := served.register(stmt)
					var se *statusError
					switch {
					case err == nil:
						mu.Lock()
						got = append(got, reg)
						mu.Unlock()
					case errors.As(err, &se) && se.Status == http.StatusServiceUnavailable:
						time.Sleep(50 * time.Millisecond) // overloaded: retry later
					case !served.running():
						return // killed under us: this one has no receipt
					default:
						if errors.As(err, &se) {
							// A status the API does not allow for a good statement.
							mu.Lock()
							failed = append(failed, err.Error())
							mu.Unlock()
						}
						return
					}
				}
			}()
		}

		// Watch the checkpoint until the kill; keep the newest seen.
		killAt := time.Duration(1000+rand.IntN(1000)) * time.Millisecond
		var last *checkpoint
		for time.Since(started) < killAt {
			r, err := n.do(http.MethodGet, "/checkpoint", "", nil)
			if err == nil && r.Status == http.StatusOK {
				cp, err := parseCheckpoint(r.Body)
				if err != nil {
					t.Fatalf("cycle %d: %v", cycle, err)
				}
				last = &cp
			}
			time.Sleep(100 * time.Millisecond) // pacing the watch until the kill: not a wait
		}
		n.Kill9()
		wg.Wait()
		cancel()
		if len(failed) > 0 {
			t.Fatalf("cycle %d: %d registrations failed, e.g. %s", cycle, len(failed), failed[0])
		}
		if len(got) == 0 {
			t.Fatalf("cycle %d: no registration succeeded in %v", cycle, killAt)
		}
		if last == nil {
			t.Fatalf("cycle %d: no checkpoint seen before the kill", cycle)
		}
		t.Logf("cycle %d: killed after %v with %d receipts returned; last checkpoint seen: size %d", cycle, killAt, len(got), last.Size)
		all = append(all, got...)
		checkpoints = append(checkpoints, *last)

		n = startNode(t, dir)
		keys := n.keys(t)
		noteKey := strings.TrimSpace(string(n.get(t, "/checkpoint/key").Body))
		verifier, err := note.NewVerifier(noteKey)
		if err != nil {
			t.Fatalf("/checkpoint/key %q: %v", noteKey, err)
		}

		// Every receipt ever returned still holds, and every statement is
		// in the ledger whole: the newest from the raft entries the node
		// kept because its ledger files had not synced them, the older
		// from the files (store/bodies.go).
		checkAll(t, n, keys, all)
		checkStatementsStored(t, n, all)
		if t.Failed() {
			t.FailNow()
		}

		// The tree only grew: one more registration makes a newer
		// checkpoint, which must be consistent with every one seen before.
		n.mustRegister(t, pubs[0].unique(t))
		newest := n.checkpoint(t)
		for _, cp := range checkpoints {
			if _, err := note.Open(cp.Note, note.VerifierList(verifier)); err != nil {
				t.Errorf("checkpoint of size %d seen before a kill does not verify with /checkpoint/key: %v", cp.Size, err)
			}
			if cp.Size > newest.Size {
				t.Errorf("checkpoint of size %d seen before a kill, newest after restart is %d: the tree shrank", cp.Size, newest.Size)
				continue
			}
			r := n.get(t, fmt.Sprintf("/proofs/consistency?from=%d&to=%d", cp.Size, newest.Size))
			if r.Status != http.StatusOK {
				t.Errorf("consistency %d→%d: %d %s", cp.Size, newest.Size, r.Status, describeProblem(r))
				continue
			}
			vr, err := cose.VerifyConsistency(r.Body, cp.Size, cp.Root, keys)
			if err != nil {
				t.Errorf("consistency %d→%d: %v", cp.Size, newest.Size, err)
				continue
			}
			if !bytes.Equal(vr.Root, newest.Root) {
				t.Errorf("consistency %d→%d leads to root %x, the newest checkpoint has %x", cp.Size, newest.Size, vr.Root, newest.Root)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// checkStatementsStored reads node n's whole ledger through
// /node/ledger/range and checks that each registration's statement is a
// record's body, byte for byte.
func checkStatementsStored(t *testing.T, n *node, regs []*registration) {
	t.Helper()
	bodies := map[string]bool{}
	for from := uint64(1); ; {
		r, err := n.do(http.MethodGet, fmt.Sprintf("/node/ledger/range?from=%d&to=%d", from, from+999), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == http.StatusNotFound {
			break // past the ledger's size
		}
		if r.Status != http.StatusOK {
			t.Fatalf("GET /node/ledger/range from %d: %d %s", from, r.Status, describeProblem(r))
		}
		var recs []*log.Record
		if err := cbor.Unmarshal(r.Body, &recs); err != nil {
			t.Fatalf("GET /node/ledger/range from %d: %v", from, err)
		}
		if len(recs) == 0 {
			t.Fatalf("GET /node/ledger/range from %d: no records", from)
		}
		for _, rec := range recs {
			bodies[string(rec.Body)] = true
		}
		from += uint64(len(recs))
	}
	missing := 0
	for _, reg := range regs {
		if !bodies[string(reg.Statement)] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d registered statements are not a record's body in the ledger after the restart", missing, len(regs))
	}
}

// checkAll checks every registration against node n, 8 at a time.
func checkAll(t *testing.T, n *node, keys cose.KeySet, regs []*registration) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
		next = make(chan *registration)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reg := range next {
				if err := checkOne(n, keys, reg); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	for _, reg := range regs {
		next <- reg
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		if len(errs) > 10 {
			errs = append(errs[:10], fmt.Sprintf("… and %d more", len(errs)-10))
		}
		t.Errorf("%d of %d receipts returned before a kill do not hold after the restart:\n%s", len(errs), len(regs), strings.Join(errs, "\n"))
	}
}

func checkOne(n *node, keys cose.KeySet, reg *registration) error {
	r, err := n.do(http.MethodGet, "/entries/"+reg.ID, "", nil)
	if err != nil {
		return fmt.Errorf("%s: %v", reg.ID, err)
	}
	if r.Status != http.StatusOK {
		return fmt.Errorf("%s (leaf %d): GET %d %s", reg.ID, reg.LeafIndex, r.Status, describeProblem(r))
	}
	rc, err := cose.ParseReceipt(r.Body)
	if err != nil {
		return fmt.Errorf("%s: %v", reg.ID, err)
	}
	if len(rc.Inclusion) != 1 || rc.Inclusion[0].LeafIndex != reg.LeafIndex {
		return fmt.Errorf("%s: leaf index %v after restart, %d before", reg.ID, rc.Inclusion, reg.LeafIndex)
	}
	if !bytes.Equal(r.Body, reg.Receipt) {
		return fmt.Errorf("%s: the receipt changed over the restart (api.md: a receipt never changes once issued)", reg.ID)
	}
	s, err := cose.ParseStatement(reg.Statement, cose.ParseOptions{})
	if err != nil {
		return err
	}
	e := s.LeafEntry()
	if _, err := cose.VerifyInclusion(r.Body, e[:], keys); err != nil {
		return fmt.Errorf("%s: %v", reg.ID, err)
	}
	return nil
}
