package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
	"github.com/fxamacker/cbor/v2"
	gocose "github.com/veraison/go-cose"
)

// ledgerBuilder makes a ledger as the service records it.
type ledgerBuilder struct {
	t    *testing.T
	recs []*log.Record
}

func (b *ledgerBuilder) add(typ log.TxType, body []byte, pol [32]byte, entry *[32]byte) *log.Record {
	seq := uint64(len(b.recs) + 1)
	r := &log.Record{Type: typ, View: 2, Seqno: seq, Body: body, Policy: pol}
	if entry != nil {
		r.Entry = *entry
	} else {
		r.Entry = log.ComputeEntry(typ, r.View, seq, body)
	}
	b.recs = append(b.recs, r)
	return r
}

// setPolicy records governance setting the registration policy (src ""
// clears it, as set_registration_policy with an empty policy does).
func (b *ledgerBuilder) setPolicy(src string) [32]byte {
	return b.writes(log.Write{Map: govwire.MapSCITTPolicy, Key: []byte("policy"), Value: []byte(src)})
}

func (b *ledgerBuilder) writes(ws ...log.Write) [32]byte {
	body, err := log.MarshalWriteSet(&log.WriteSet{Writes: ws, Claims: []byte("test")})
	if err != nil {
		b.t.Fatal(err)
	}
	b.add(log.TxWrites, body, [32]byte{}, nil)
	if v := ws[len(ws)-1].Value; len(v) > 0 {
		return sha256.Sum256(v)
	}
	return [32]byte{}
}

// register records a registration accepted under pol (zero: none) and
// returns its entry id.
func (b *ledgerBuilder) register(statement []byte, pol [32]byte) string {
	st, err := cose.ParseStatement(statement, cose.ParseOptions{})
	if err != nil {
		b.t.Fatal(err)
	}
	e := st.LeafEntry()
	r := b.add(log.TxRegistration, statement, pol, &e)
	return r.TxID().String() + " " + hex.EncodeToString(e[:])
}

func (b *ledgerBuilder) file() string {
	data, err := marshalLedger(b.recs)
	if err != nil {
		b.t.Fatal(err)
	}
	return writeTemp(b.t, "ledger.cbor", data)
}

const (
	svnPolicy = `export function apply(phdr) { return phdr.cwt.svn >= 2 || "svn " + phdr.cwt.svn + " < 2"; }`
	subPolicy = `export function apply(phdr) { return phdr.cwt.sub.startsWith("pkg:") || "subject " + phdr.cwt.sub; }`
)

func TestReplayPolicyClean(t *testing.T) {
	is := newTestIssuer(t, gocose.AlgorithmES256, "replay")
	b := &ledgerBuilder{t: t}
	b.add(log.TxGenesis, []byte("genesis"), [32]byte{}, nil)
	b.register(is.sign(t, stmt{sub: "before any policy"}, spdx), [32]byte{})
	a := b.setPolicy(svnPolicy)
	b.register(is.sign(t, stmt{svn: svn(2)}, spdx), a)
	b.register(is.sign(t, stmt{svn: svn(9)}, spdx), a)
	b.add(log.TxCheckpoint, []byte("checkpoint"), [32]byte{}, nil)
	// A write set touching other maps, and the policy key of no other map.
	b.writes(log.Write{Map: govwire.MapIssuerKeys, Key: []byte("policy"), Value: []byte("not a policy")})
	c := b.setPolicy(subPolicy)
	b.register(is.sign(t, stmt{sub: "pkg:x"}, spdx), c)
	b.setPolicy("")
	b.register(is.sign(t, stmt{sub: "after the policy was cleared"}, spdx), [32]byte{})

	code, out, errOut := runCLI(t, "ledger", "replay-policy", b.file())
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if out != "checked 3 registrations under 2 policy versions: 0 not accepted\n2 registrations were recorded without a policy\n" {
		t.Fatalf("output:\n%s", out)
	}
}

func TestReplayPolicyFindings(t *testing.T) {
	is := newTestIssuer(t, gocose.AlgorithmES256, "replay")
	b := &ledgerBuilder{t: t}
	b.add(log.TxGenesis, []byte("genesis"), [32]byte{}, nil)
	a := b.setPolicy(svnPolicy)
	ok := b.register(is.sign(t, stmt{svn: svn(3)}, spdx), a)
	low := b.register(is.sign(t, stmt{svn: svn(1)}, spdx), a)
	none := b.register(is.sign(t, stmt{svn: svn(0)}, spdx), [32]byte{})
	unknown := sha256.Sum256([]byte("a policy this ledger never had"))
	missing := b.register(is.sign(t, stmt{svn: svn(5)}, spdx), unknown)
	thrower := `export function apply(phdr) { if (phdr.cwt.svn === 4) throw new Error("four"); return true; }`
	th := b.setPolicy(thrower)
	threw := b.register(is.sign(t, stmt{svn: svn(4)}, spdx), th)
	// Recorded under the old policy after the change (a registration
	// proposed before the change): noted, and checked under its own policy.
	stale := b.register(is.sign(t, stmt{svn: svn(8)}, spdx), a)

	code, out, _ := runCLI(t, "ledger", "replay-policy", b.file())
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	short := func(d [32]byte) string { return hex.EncodeToString(d[:8]) }
	want := []string{
		"not accepted  " + low + ": policy " + short(a) + " rejects: svn 1 < 2",
		"note          " + none + ": registered without a policy while policy " + short(a) + " had been set at 2.2",
		"missing       " + missing + ": policy " + short(unknown) + " not found in the ledger",
		"not accepted  " + threw + ": policy " + short(th) + " failed: policy: registration policy failed: apply failed:",
		"note          " + stale + ": recorded policy " + short(a) + ", while policy " + short(th) + " had been set at 2.7",
		"checked 4 registrations under 2 policy versions: 2 not accepted",
		"1 registrations name a policy not found in the ledger",
		"1 registrations were recorded without a policy",
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	if strings.Contains(out, ok) {
		t.Errorf("the accepted registration %s is reported", ok)
	}
	if !strings.Contains(lines[3], "four") {
		t.Errorf("the policy error does not say what was thrown: %s", lines[3])
	}
}

// A missing policy alone fails the audit, and a policy set only after the
// registration that names it is noted.
func TestReplayPolicyMissingAndLate(t *testing.T) {
	is := newTestIssuer(t, gocose.AlgorithmES256, "replay")
	b := &ledgerBuilder{t: t}
	late := sha256.Sum256([]byte(svnPolicy))
	early := b.register(is.sign(t, stmt{svn: svn(3)}, spdx), late)
	b.setPolicy(svnPolicy)
	code, out, _ := runCLI(t, "ledger", "replay-policy", b.file())
	if code != 0 || !strings.Contains(out, "note          "+early+": recorded policy "+hex.EncodeToString(late[:8])+" is first set later, at 2.2") {
		t.Fatalf("exit %d\n%s", code, out)
	}

	b = &ledgerBuilder{t: t}
	b.register(is.sign(t, stmt{svn: svn(3)}, spdx), sha256.Sum256([]byte("gone")))
	code, out, _ = runCLI(t, "ledger", "replay-policy", b.file())
	if code != 1 || !strings.Contains(out, "checked 0 registrations under 0 policy versions: 0 not accepted\n1 registrations name a policy not found") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestReplayPolicyBadFiles(t *testing.T) {
	if code, _, _ := runCLI(t, "ledger", "replay-policy"); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
	code, _, errOut := runCLI(t, "ledger", "replay-policy", writeTemp(t, "x.cbor", []byte("nope")))
	if code != 1 || !strings.Contains(errOut, "is not a CBOR array of records") {
		t.Errorf("not CBOR: exit %d, %s", code, errOut)
	}
	b := &ledgerBuilder{t: t}
	b.add(log.TxGenesis, []byte("g"), [32]byte{}, nil)
	b.add(log.TxCheckpoint, []byte("c"), [32]byte{}, nil)
	b.recs[1].Seqno = 3
	code, _, errOut = runCLI(t, "ledger", "replay-policy", b.file())
	if code != 1 || !strings.Contains(errOut, "records must be consecutive") {
		t.Errorf("a gap: exit %d, %s", code, errOut)
	}
}

// export pages through a TLS service's /node/ledger/range and writes a file
// that replay-policy reads back record for record.
func TestLedgerExport(t *testing.T) {
	is := newTestIssuer(t, gocose.AlgorithmES256, "export")
	b := &ledgerBuilder{t: t}
	a := b.setPolicy(svnPolicy)
	for i := range 2400 {
		if i%600 == 0 {
			b.register(is.sign(t, stmt{svn: svn(int64(i / 600 % 2 * 2))}, spdx), a)
		} else {
			b.add(log.TxCheckpoint, []byte("checkpoint "+strconv.Itoa(i)), [32]byte{}, nil)
		}
	}
	var calls int
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
		size := uint64(len(b.recs))
		if r.URL.Path != "/node/ledger/range" || from == 0 || to < from || from > size {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		to = min(to, from+999, size)
		data, err := cbor.Marshal(b.recs[from-1 : to])
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Charter-Ledger-Size", strconv.FormatUint(size, 10))
		_, _ = w.Write(data)
	}))
	defer srv.Close()
	ca := writeTemp(t, "service.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	out := filepath.Join(t.TempDir(), "ledger.cbor")

	code, stdout, errOut := runCLI(t, "ledger", "export", "--url", srv.URL, "--cacert", ca, "--out", out)
	if code != 0 || calls != 3 || stdout != "wrote "+out+": 2401 transactions, seqnos 1 to 2401\n" {
		t.Fatalf("exit %d after %d calls: %s%s", code, calls, stdout, errOut)
	}
	got, err := readLedger(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := marshalLedger(b.recs)
	if data, _ := os.ReadFile(out); string(data) != string(want) || len(got) != len(b.recs) {
		t.Fatalf("the export differs from the ledger (%d records)", len(got))
	}
	// svn 0, 2, 0, 2 at i = 0, 600, 1200, 1800: two not accepted.
	code, stdout, _ = runCLI(t, "ledger", "replay-policy", out)
	if code != 1 || !strings.Contains(stdout, "checked 4 registrations under 1 policy versions: 2 not accepted\n") {
		t.Fatalf("replay of the export: exit %d\n%s", code, stdout)
	}

	// A sub-range; the replay says it cannot know earlier policies.
	calls = 0
	code, stdout, errOut = runCLI(t, "ledger", "export", "--url", srv.URL, "--cacert", ca, "--out", out, "--from", "1000", "--to", "1300")
	if code != 0 || calls != 1 || !strings.Contains(stdout, "301 transactions, seqnos 1000 to 1300") {
		t.Fatalf("sub-range: exit %d after %d calls: %s%s", code, calls, stdout, errOut)
	}
	if _, stdout, _ = runCLI(t, "ledger", "replay-policy", out); !strings.Contains(stdout, "starts at seqno 1000; policies set before it are not known") ||
		!strings.Contains(stdout, "1 registrations name a policy not found") {
		t.Fatalf("replay of a sub-range:\n%s", stdout)
	}

	// Without --cacert the test server's certificate is not trusted.
	if code, _, errOut := runCLI(t, "ledger", "export", "--url", srv.URL, "--out", out); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("untrusted service: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "ledger", "export", "--url", srv.URL, "--cacert", ca); code != 2 {
		t.Errorf("no --out: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "ledger", "export", "--url", srv.URL, "--cacert", ca, "--out", out, "--from", "5", "--to", "4"); code != 2 {
		t.Errorf("--to before --from: exit %d, want 2", code)
	}
}
