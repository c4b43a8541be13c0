package govwire_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/govwire"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzParseRequest from freshly signed requests")

const seedDir = "testdata/fuzz/FuzzParseRequest"

// seedRequests signs one request of every type with every key kind the
// tests use, plus a few near misses, named by what they are.
func seedRequests(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{}
	for _, kind := range []string{"p256", "p384", "ed25519"} {
		m := newMember(t, kind)
		for _, typ := range allTypes {
			raw := mustSign(t, m, typ, t0, payloadFor(typ))
			seeds["valid-"+kind+"-"+string(typ)] = raw
		}
	}
	m := newMember(t, "ed25519")
	good := ballotHeader(m, -8)
	seeds["valid-kid-tstr"] = signRaw(t, m.signer, -8, encodeMap(t, set(good, int64(4), govwire.MemberIDOf(m.cert))...), payloadFor(govwire.MsgBallot))
	seeds["invalid-ballot-without-proposal-id"] = signRaw(t, m.signer, -8, encodeMap(t, del(good, "ccf.gov.msg.proposal_id")...), payloadFor(govwire.MsgBallot))
	seeds["invalid-duplicate-alg"] = signRaw(t, m.signer, -8, encodeMap(t, append(good, kv{int64(1), int64(-8)})...), payloadFor(govwire.MsgBallot))
	seeds["invalid-untagged"] = seeds["valid-ed25519-ballot"][1:]
	return seeds
}

// TestFuzzSeeds regenerates the checked-in corpus with -update-seeds, and
// otherwise checks it: every valid-* seed parses, every invalid-* seed is
// refused with ErrMalformed.
func TestFuzzSeeds(t *testing.T) {
	if *updateSeeds {
		if err := os.MkdirAll(seedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seedRequests(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if err := os.WriteFile(filepath.Join(seedDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(seedDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		valid := strings.HasPrefix(e.Name(), "valid-")
		if !valid && !strings.HasPrefix(e.Name(), "invalid-") {
			continue // found by fuzzing: only "does not panic" applies
		}
		n++
		b := readSeed(t, filepath.Join(seedDir, e.Name()))
		_, err := govwire.ParseRequest(b)
		if valid && err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
		if !valid && !errors.Is(err, govwire.ErrMalformed) {
			t.Errorf("%s: ParseRequest = %v, want ErrMalformed", e.Name(), err)
		}
	}
	if n < 18 {
		t.Errorf("%d named seeds in %s; regenerate with -update-seeds", n, seedDir)
	}
}

// readSeed reads a one-value []byte corpus file ("go test fuzz v1").
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		t.Fatalf("%s: not a []byte corpus file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// FuzzParseRequest: ParseRequest never panics and refuses only with
// ErrMalformed; whatever it accepts is its own Raw, and parsing Raw again
// gives the same request. The accessors, Verify and CheckFresh must not
// panic on anything it accepts, and Verify must not accept a request with a
// foreign kid.
func FuzzParseRequest(f *testing.F) {
	// The checked-in corpus in testdata/fuzz/FuzzParseRequest is added by
	// the fuzzing engine; a few fresh ones make the seeds independent of it.
	m := newMember(f, "p256")
	for _, typ := range allTypes {
		f.Add(mustSign(f, m, typ, t0, payloadFor(typ)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := govwire.ParseRequest(b)
		if err != nil {
			if r != nil || !errors.Is(err, govwire.ErrMalformed) {
				t.Fatalf("ParseRequest = %v, %v", r, err)
			}
			return
		}
		if !bytes.Equal(r.Raw, b) {
			t.Fatal("Raw differs from the input")
		}
		again, err := govwire.ParseRequest(r.Raw)
		if err != nil {
			t.Fatalf("re-parsing Raw: %v", err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("re-parsed %+v, first %+v", again, r)
		}
		_, _ = r.Proposal()
		_, _ = r.Ballot()
		_, _ = r.Ack()
		_ = r.CheckFresh(t0, time.Hour)
		if err := r.Verify(m.cert); err == nil && r.MemberID != govwire.MemberIDOf(m.cert) {
			t.Fatal("Verify accepted a request from another member")
		}
	})
}
