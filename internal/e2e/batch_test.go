package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
)

// batchAnswer is one statement's result in a POST /entries/batch answer.
type batchAnswer struct {
	EntryID string `cbor:"1,keyasint,omitempty"`
	Receipt []byte `cbor:"2,keyasint,omitempty"`
	TxID    string `cbor:"3,keyasint,omitempty"`
	Title   string `cbor:"-1,keyasint,omitempty"`
	Detail  string `cbor:"-2,keyasint,omitempty"`
}

// TestBatchRegistration: on a three-node network, a batch sent to a
// follower is forwarded to the leader (a follower cannot sequence, so a 200
// with receipts in its first answer is the leader's) and answered per
// statement in order: good statements with receipts that verify offline
// with the client, a tampered one with its problem, a duplicate with the
// same entry. The Go client's RegisterBatch and `charter register` with
// several files go the same way. A batch over the statement bound is
// refused as a whole, through the follower and at the leader, and writes
// nothing.
func TestBatchRegistration(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	leader, _ := c.leader()
	follower := c.node(leader%3 + 1)
	keys := c.keys()
	pub := newPublisher(t, "e2e batch publisher")

	verify := func(what string, stmt, receipt []byte) {
		t.Helper()
		ts, err := cose.AttachReceipts(stmt, receipt)
		if err != nil {
			t.Fatalf("%s: attaching the receipt: %v", what, err)
		}
		if _, err := client.VerifyTransparentStatement(ts, client.VerifyOptions{ServiceKeys: keys}); err != nil {
			t.Fatalf("%s: the receipt does not verify offline: %v", what, err)
		}
	}

	// A raw batch to the follower: 20 good statements, a tampered one and
	// a duplicate of the first.
	var stmts [][]byte
	for range 20 {
		stmts = append(stmts, pub.unique(t))
	}
	tampered := bytes.Clone(pub.unique(t))
	tampered[len(tampered)-1] ^= 1
	stmts = append(stmts, tampered, stmts[0])
	body, err := cbor.Marshal(stmts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := follower.doWithin(30*time.Second, http.MethodPost, "/entries/batch", "application/cbor", body)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/cbor" {
		t.Fatalf("POST /entries/batch to follower %d: %d %s", follower.id, r.Status, describeProblem(r))
	}
	if got, want := r.Header.Get(client.HeaderLeader), c.node(leader).URL; got != want {
		t.Fatalf("the follower's relayed answer names the leader %q, want %q", got, want)
	}
	var answers []batchAnswer
	if err := cbor.Unmarshal(r.Body, &answers); err != nil || len(answers) != len(stmts) {
		t.Fatalf("the answer holds %d results for %d statements (%v)", len(answers), len(stmts), err)
	}
	for i, a := range answers {
		if i == 20 {
			if a.Title != "InvalidSignature" || a.Receipt != nil {
				t.Fatalf("the tampered statement: %+v, want InvalidSignature", a)
			}
			continue
		}
		if a.Title != "" || a.EntryID != entryID(stmts[i]) || len(a.Receipt) == 0 {
			t.Fatalf("statement %d: %+v, want entry %s with its receipt in the first answer", i, a, entryID(stmts[i]))
		}
		verify(fmt.Sprintf("statement %d", i), stmts[i], a.Receipt)
	}
	if answers[21].TxID != answers[0].TxID {
		t.Fatalf("the duplicate is at %s, the original at %s", answers[21].TxID, answers[0].TxID)
	}

	// The Go client, to the same follower: new statements and
	// one registered above, answered with its existing entry.
	cert, err := os.ReadFile(c.certPath)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(follower.URL, cert)
	if err != nil {
		t.Fatal(err)
	}
	more := [][]byte{pub.unique(t), stmts[5], pub.unique(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cl.RegisterBatch(ctx, more)
	if err != nil {
		t.Fatalf("RegisterBatch: %v", err)
	}
	for i, x := range res {
		if x.Err != nil {
			t.Fatalf("RegisterBatch result %d: %v", i, x.Err)
		}
		if x.Registration.EntryID != entryID(more[i]) {
			t.Fatalf("RegisterBatch result %d names entry %s, want %s", i, x.Registration.EntryID, entryID(more[i]))
		}
		verify(fmt.Sprintf("RegisterBatch result %d", i), more[i], x.Registration.Receipt)
	}
	if res[1].Registration.TxID != answers[5].TxID {
		t.Fatalf("a statement registered before is at %s, was at %s", res[1].Registration.TxID, answers[5].TxID)
	}
	// The follower named the leader in its answer: the client's next batch
	// goes to the leader directly, not through the follower.
	viaFollower, atLeader := batchPosts(t, follower), batchPosts(t, c.node(leader))
	again, err := cl.RegisterBatch(ctx, [][]byte{pub.unique(t)})
	if err != nil || again[0].Err != nil {
		t.Fatalf("a second RegisterBatch: %v %+v", err, again)
	}
	if d1, d2 := batchPosts(t, follower)-viaFollower, batchPosts(t, c.node(leader))-atLeader; d1 != 0 || d2 != 1 {
		t.Fatalf("the client's second batch reached the follower %d times and the leader %d, want 0 and 1", d1, d2)
	}

	// charter register with several files: one line per statement.
	work := t.TempDir()
	files := writeStatements(t, work, "s", pub, 3)
	out, err := runCLI(t, work, append([]string{"register", "--url", follower.URL, "--cacert", c.certPath, "--timeout", "30s"}, files...)...)
	if err != nil {
		t.Fatalf("charter register with 3 files: %v\n%s", err, out)
	}
	ls := lines(out)
	if len(ls) != 3 {
		t.Fatalf("charter register printed %d lines for 3 statements:\n%s", len(ls), out)
	}
	for i, f := range files {
		if !strings.HasPrefix(ls[i], f+": registered entry ") {
			t.Fatalf("line %d: %q, want %s registered", i, ls[i], f)
		}
		ts, err := os.ReadFile(strings.TrimSuffix(f, ".cose") + ".ts.cose")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.VerifyTransparentStatement(ts, client.VerifyOptions{ServiceKeys: keys}); err != nil {
			t.Fatalf("%s's transparent statement does not verify: %v", f, err)
		}
	}

	// charter register split into one request per file (--batch-size 1),
	// through the follower: only the first request is relayed; the
	// follower names the leader and the next two go there.
	split := writeStatements(t, work, "split", pub, 3)
	viaFollower, atLeader = batchPosts(t, follower), batchPosts(t, c.node(leader))
	out, err = runCLI(t, work, append([]string{"register", "--url", follower.URL, "--cacert", c.certPath, "--timeout", "30s", "--batch-size", "1"}, split...)...)
	if err != nil || len(lines(out)) != 3 {
		t.Fatalf("charter register --batch-size 1 with 3 files: %v\n%s", err, out)
	}
	if d1, d2 := batchPosts(t, follower)-viaFollower, batchPosts(t, c.node(leader))-atLeader; d1 != 1 || d2 != 3 {
		t.Fatalf("charter register's 3 requests reached the follower %d times and the leader %d, want 1 and 3 (the first relayed)", d1, d2)
	}

	// Over the bound (1000 statements by default): refused as a whole, at
	// the follower (forwarded) and at the leader, and nothing is written.
	before := c.waitSettled(30 * time.Second)
	var over [][]byte
	for range 1001 {
		over = append(over, pub.unique(t))
	}
	overBody, err := cbor.Marshal(over)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{follower, c.node(leader)} {
		r, err := m.doWithin(30*time.Second, http.MethodPost, "/entries/batch", "application/cbor", overBody)
		if err != nil {
			t.Fatal(err)
		}
		p, perr := decodeProblem(r.Body)
		if r.Status != http.StatusRequestEntityTooLarge || perr != nil || p.Title != "BatchTooLarge" {
			t.Fatalf("1001 statements to node %d: %d %s, want 413 BatchTooLarge", m.id, r.Status, describeProblem(r))
		}
	}
	_, err = cl.RegisterBatch(ctx, over)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusRequestEntityTooLarge || ce.Title != "BatchTooLarge" {
		t.Fatalf("RegisterBatch of 1001: %v, want 413 BatchTooLarge", err)
	}
	after := c.waitSettled(30 * time.Second)
	if after.LedgerSize != before.LedgerSize {
		t.Fatalf("the refused batches changed the ledger: %d transactions before, %d after", before.LedgerSize, after.LedgerSize)
	}
	for _, s := range over[:3] {
		if r := c.node(leader).get(t, "/entries/"+entryID(s)); r.Status != http.StatusNotFound {
			t.Fatalf("a statement of the refused batch: GET /entries/%s answered %d, want 404", entryID(s), r.Status)
		}
	}
}

// writeStatements writes n new statements of pub to dir as
// PREFIXi.cose and returns their paths, in order.
func writeStatements(t *testing.T, dir, prefix string, pub *publisher, n int) []string {
	t.Helper()
	var files []string
	for i := range n {
		f := filepath.Join(dir, fmt.Sprintf("%s%d.cose", prefix, i))
		if err := os.WriteFile(f, pub.unique(t), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// batchOf is a POST /entries/batch body holding stmts.
func batchOf(t testing.TB, stmts ...[]byte) []byte {
	t.Helper()
	b, err := cbor.Marshal(stmts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// batchPosts is how many POST /entries/batch n has answered, from its
// /metrics.
func batchPosts(t *testing.T, n *member) int {
	t.Helper()
	r := n.get(t, "/metrics")
	total := 0
	for _, m := range regexp.MustCompile(`\ncharter_http_request_duration_seconds_count\{code="\d+",method="POST",route="/entries/batch"\} (\d+)`).FindAllSubmatch(r.Body, -1) {
		v, _ := strconv.Atoi(string(m[1]))
		total += v
	}
	return total
}
