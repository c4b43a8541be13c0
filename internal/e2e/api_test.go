package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/charterlog/charter/cose"
	"github.com/fxamacker/cbor/v2"
)

// wantCCFError checks that r is CCF's JSON error ({"error": {"code",
// "message"}}), as /gov and /node answer, with this status and code.
func wantCCFError(t *testing.T, what string, r *response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d (%s)", what, r.Status, status, describeProblem(r))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
		return
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Errorf("%s: error body %q: %v", what, r.Body, err)
		return
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: error %q: %q, want code %q and a message", what, e.Error.Code, e.Error.Message, code)
	}
}

// wantProblem checks that r is a problem with this status and title.
func wantProblem(t *testing.T, what string, r *response, status int, title string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d (%s)", what, r.Status, status, describeProblem(r))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/concise-problem-details+cbor" {
		t.Errorf("%s: Content-Type %q, want application/concise-problem-details+cbor", what, ct)
		return
	}
	p, err := decodeProblem(r.Body)
	if err != nil {
		t.Errorf("%s: problem body: %v", what, err)
		return
	}
	if p.Title != title {
		t.Errorf("%s: title %q, want %q (detail %q)", what, p.Title, title, p.Detail)
	}
	if p.Detail == "" {
		t.Errorf("%s: empty detail", what)
	}
}

func TestAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startNode(t, filepath.Join(dir, "node"))
	pub := newPublisher(t, "e2e api publisher")

	// Registrations made before the restart at the end, by id.
	var regs []*registration

	t.Run("duplicates", func(t *testing.T) {
		stmt := pub.unique(t)
		a := n.mustRegister(t, stmt)
		b := n.mustRegister(t, stmt)
		if a.Location != b.Location {
			t.Errorf("duplicate: Location %q then %q", a.Location, b.Location)
		}
		if a.LeafIndex != b.LeafIndex {
			t.Errorf("duplicate: leaf index %d then %d; a duplicate must return the existing entry", a.LeafIndex, b.LeafIndex)
		}
		if a.TxID == "" || b.TxID == "" {
			t.Fatalf("201 without X-Charter-Transaction-Id: %q, %q", a.TxID, b.TxID)
		}
		if a.TxID != b.TxID {
			t.Errorf("duplicate: transaction id %s then %s", a.TxID, b.TxID)
		}
		// A third registration lands right after: the duplicate took no leaf.
		c := n.mustRegister(t, pub.unique(t))
		if c.LeafIndex <= a.LeafIndex {
			t.Errorf("later registration at leaf %d, not after %d", c.LeafIndex, a.LeafIndex)
		}
		// Between the first registration and the next one there are only
		// checkpoints: the duplicate added no registration transaction.
		va, sa := parseTxID(t, a.TxID)
		vc, sc := parseTxID(t, c.TxID)
		if va != vc {
			t.Fatalf("view changed from %d to %d without a restart", va, vc)
		}
		for s := sa + 1; s < sc; s++ {
			id := fmt.Sprintf("%d.%d", va, s)
			if r := n.get(t, "/entries/"+id); r.Status != http.StatusNotFound {
				t.Errorf("transaction %s between the registration and the next is a registration (%d): the duplicate was appended", id, r.Status)
			}
		}
		regs = append(regs, a, c)
	})

	t.Run("statement verifies with charter verify", func(t *testing.T) {
		payload := []byte(`{"name":"api","version":"2.0"}`)
		stmt := pub.sign(t, payload)
		reg := n.mustRegister(t, stmt)
		regs = append(regs, reg)
		r := n.get(t, "/entries/"+reg.ID+"/statement")
		if r.Status != http.StatusOK {
			t.Fatalf("GET statement: %d %s", r.Status, describeProblem(r))
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/cose" {
			t.Errorf("statement Content-Type %q", ct)
		}
		stmtOut, receipts, err := cose.SplitTransparentStatement(r.Body)
		if err != nil {
			t.Fatalf("transparent statement: %v", err)
		}
		if len(receipts) != 1 || !bytes.Equal(receipts[0], reg.Receipt) {
			t.Errorf("transparent statement carries %d receipts, want the registration's one", len(receipts))
		}
		if entryID(stmtOut) != reg.ID {
			t.Errorf("transparent statement is not the registered statement")
		}
		work := t.TempDir()
		if err := os.WriteFile(filepath.Join(work, "ts.cose"), r.Body, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "payload.json"), payload, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, work, "keys", "--url", n.URL, "--cacert", n.CertPath, "--out", "keys.cbor"); err != nil {
			t.Fatalf("charter keys: %v\n%s", err, out)
		}
		out, err := runCLI(t, work, "verify", "--service-keys", "keys.cbor", "--payload", "payload.json", "ts.cose")
		if err != nil {
			t.Fatalf("charter verify: %v\n%s", err, out)
		}
		if !strings.Contains(out, "ok ") || strings.Contains(out, "FAIL") {
			t.Errorf("charter verify output:\n%s", out)
		}
		// And a different payload is refused: the check has teeth.
		if err := os.WriteFile(filepath.Join(work, "other.json"), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, work, "verify", "--service-keys", "keys.cbor", "--payload", "other.json", "ts.cose"); err == nil {
			t.Errorf("charter verify accepted the wrong payload:\n%s", out)
		}
	})

	t.Run("entry ids", func(t *testing.T) {
		wantProblem(t, "unknown entry", n.get(t, "/entries/"+strings.Repeat("ab", 32)), http.StatusNotFound, "NotFound")
		wantProblem(t, "entry zz", n.get(t, "/entries/zz"), http.StatusBadRequest, "InvalidEntryId")

		reg := n.mustRegister(t, pub.unique(t))
		regs = append(regs, reg)
		if reg.TxID == "" {
			t.Fatal("201 without X-Charter-Transaction-Id")
		}
		r := n.get(t, "/entries/"+reg.TxID)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /entries/%s: %d %s", reg.TxID, r.Status, describeProblem(r))
		}
		if !bytes.Equal(r.Body, reg.Receipt) {
			t.Errorf("GET /entries/%s: another receipt than POST returned", reg.TxID)
		}
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("receipt Cache-Control %q", cc)
		}
		view, seqno := parseTxID(t, reg.TxID)
		wantProblem(t, "tx id of another view", n.get(t, fmt.Sprintf("/entries/%d.%d", view+1, seqno)), http.StatusNotFound, "NotFound")

		txStatus := func(id string) string {
			r := n.get(t, "/node/tx?transaction_id="+id)
			if r.Status != http.StatusOK {
				t.Errorf("/node/tx %s: %d %s", id, r.Status, describeProblem(r))
				return ""
			}
			var v struct {
				ID     string `json:"transaction_id"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(r.Body, &v); err != nil {
				t.Errorf("/node/tx %s: %v", id, err)
			}
			return v.Status
		}
		if s := txStatus(reg.TxID); s != "Committed" {
			t.Errorf("/node/tx %s: %q, want Committed", reg.TxID, s)
		}
		if s := txStatus("1.999999"); s != "Unknown" {
			t.Errorf("/node/tx 1.999999: %q, want Unknown", s)
		}
		wantCCFError(t, "/node/tx abc", n.get(t, "/node/tx?transaction_id=abc"), http.StatusBadRequest, "InvalidQueryParameterValue")
	})

	// errors.md: InvalidEntryId when {id} is neither 64 *lowercase* hex
	// digits nor VIEW.SEQNO.
	t.Run("upper-case entry id is InvalidEntryId", func(t *testing.T) {
		wantProblem(t, "upper-case unknown entry id", n.get(t, "/entries/"+strings.Repeat("AB", 32)), http.StatusBadRequest, "InvalidEntryId")
		if len(regs) > 0 {
			id := strings.ToUpper(regs[0].ID)
			wantProblem(t, "upper-case id of a registered entry", n.get(t, "/entries/"+id), http.StatusBadRequest, "InvalidEntryId")
		}
	})

	t.Run("keys", func(t *testing.T) {
		ks := n.keys(t)
		for _, k := range ks {
			r := n.get(t, "/.well-known/scitt-keys/"+string(k.Kid))
			if r.Status != http.StatusOK {
				t.Errorf("key %s: %d %s", k.Kid, r.Status, describeProblem(r))
				continue
			}
			one, err := cose.ParseCOSEKey(r.Body)
			if err != nil {
				t.Errorf("key %s: %v", k.Kid, err)
				continue
			}
			if !bytes.Equal(one.Kid, k.Kid) {
				t.Errorf("key %s: served kid %s", k.Kid, one.Kid)
			}
		}
		wantProblem(t, "unknown kid", n.get(t, "/.well-known/scitt-keys/"+strings.Repeat("0", 64)), http.StatusNotFound, "NotFound")

		r := n.get(t, "/jwks")
		if r.Status != http.StatusOK {
			t.Fatalf("/jwks: %d", r.Status)
		}
		var jwks struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(r.Body, &jwks); err != nil {
			t.Fatalf("/jwks: %v", err)
		}
		if len(jwks.Keys) != 1 {
			t.Errorf("/jwks: %d keys, want 1", len(jwks.Keys))
		} else if kid, _ := jwks.Keys[0]["kid"].(string); kid != string(ks[0].Kid) {
			t.Errorf("/jwks kid %q, scitt-keys kid %q", kid, ks[0].Kid)
		}
	})

	t.Run("configuration and network", func(t *testing.T) {
		r := n.get(t, "/node/network")
		var network struct {
			Cert   string `json:"service_certificate"`
			Issuer string `json:"issuer"`
			Note   string `json:"note_verifier_key"`
		}
		if err := json.Unmarshal(r.Body, &network); err != nil {
			t.Fatalf("/node/network: %v", err)
		}
		pem, err := os.ReadFile(n.CertPath)
		if err != nil {
			t.Fatal(err)
		}
		if network.Cert != string(pem) {
			t.Errorf("/node/network service_certificate is not %s", n.CertPath)
		}
		if network.Issuer == "" {
			t.Fatal("/node/network: no issuer")
		}

		r = n.get(t, "/.well-known/transparency-configuration")
		if ct := r.Header.Get("Content-Type"); ct != "application/cbor" {
			t.Errorf("configuration Content-Type %q, want application/cbor", ct)
		}
		var conf map[string]any
		if err := cbor.Unmarshal(r.Body, &conf); err != nil {
			t.Fatalf("configuration CBOR: %v", err)
		}
		if conf["issuer"] != network.Issuer {
			t.Errorf("configuration issuer %v, want %q", conf["issuer"], network.Issuer)
		}
		if conf["checkpoint_note_verifier_key"] != network.Note {
			t.Errorf("configuration note key %v, network %q", conf["checkpoint_note_verifier_key"], network.Note)
		}
		r = n.get(t, "/.well-known/transparency-configuration", "Accept", "application/json")
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("configuration (JSON) Content-Type %q", ct)
		}
		var jconf map[string]any
		if err := json.Unmarshal(r.Body, &jconf); err != nil {
			t.Fatalf("configuration JSON: %v", err)
		}
		if jconf["issuer"] != network.Issuer {
			t.Errorf("configuration (JSON) issuer %v, want %q", jconf["issuer"], network.Issuer)
		}
		if cp := n.checkpoint(t); cp.Origin != network.Issuer {
			t.Errorf("checkpoint origin %q, issuer %q", cp.Origin, network.Issuer)
		}
		key := n.get(t, "/checkpoint/key")
		if strings.TrimSpace(string(key.Body)) != network.Note {
			t.Errorf("/checkpoint/key %q, network %q", key.Body, network.Note)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		r := n.get(t, "/metrics")
		if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte("\ncharter_ledger_size ")) {
			t.Errorf("/metrics: %d, charter_ledger_size missing", r.Status)
		}
		// The store's own accounting: the node has written (the
		// registrations above), so its WAL counter is above zero.
		wal := regexp.MustCompile(`\ncharter_store_wal_bytes_written_total ([0-9.e+]+)\n`).FindSubmatch(r.Body)
		if wal == nil {
			t.Errorf("/metrics has no charter_store_wal_bytes_written_total")
		} else if v, err := strconv.ParseFloat(string(wal[1]), 64); err != nil || v <= 0 {
			t.Errorf("charter_store_wal_bytes_written_total = %s after writes", wal[1])
		}
		for _, name := range []string{"charter_store_flushed_bytes_total", "charter_store_compacted_bytes_total", "charter_store_blob_bytes", "charter_store_write_stalls_total"} {
			if !bytes.Contains(r.Body, []byte("\n"+name+" ")) {
				t.Errorf("/metrics has no %s", name)
			}
		}
	})

	t.Run("restart keeps everything", func(t *testing.T) {
		if len(regs) == 0 {
			t.Skip("no registrations from the subtests above")
		}
		before := n.checkpoint(t)
		n.Stop()
		n = startNode(t, n.Dir)
		keys := n.keys(t)
		for _, reg := range regs {
			r := n.get(t, "/entries/"+reg.ID)
			if r.Status != http.StatusOK {
				t.Errorf("after restart, %s: %d %s", reg.ID, r.Status, describeProblem(r))
				continue
			}
			if !bytes.Equal(r.Body, reg.Receipt) {
				t.Errorf("after restart, %s: another receipt", reg.ID)
			}
			e := mustLeafEntry(t, reg.Statement)
			if _, err := cose.VerifyInclusion(r.Body, e[:], keys); err != nil {
				t.Errorf("after restart, %s: %v", reg.ID, err)
			}
		}
		after := n.checkpoint(t)
		if after.Size < before.Size {
			t.Errorf("checkpoint size went from %d to %d over a restart", before.Size, after.Size)
		}
		// Still accepting registrations.
		n.mustRegister(t, pub.unique(t))
	})
}

func mustLeafEntry(t testing.TB, stmt []byte) [32]byte {
	t.Helper()
	s, err := cose.ParseStatement(stmt, cose.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.LeafEntry()
}

func parseTxID(t testing.TB, id string) (view, seqno uint64) {
	t.Helper()
	if _, err := fmt.Sscanf(id, "%d.%d", &view, &seqno); err != nil || id != fmt.Sprintf("%d.%d", view, seqno) {
		t.Fatalf("transaction id %q is not VIEW.SEQNO", id)
	}
	return view, seqno
}
