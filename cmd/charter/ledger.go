package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/policy"
	"github.com/charterlog/charter/registry/policyinput"
	"golang.org/x/mod/sumdb/note"
)

func init() {
	register(command{name: "ledger export", summary: "download ledger records (a CBOR array of transaction records)", run: runLedgerExport})
	register(command{name: "ledger replay-policy", summary: "re-run the recorded registration policies over an exported ledger", run: runLedgerReplayPolicy})
	register(command{name: "ledger audit", summary: "check the log through its tiles: the checkpoint's signature and root, growth since an earlier checkpoint, every entry", run: runLedgerAudit})
}

func runLedgerExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger export", "--url URL --cacert PEM --out LEDGER.cbor [--from N] [--to M]", stderr)
	sf := bindServiceFlags(fs)
	out := fs.String("out", "", "where to write the records (one CBOR array)")
	from := fs.Uint64("from", 1, "first seqno")
	to := fs.Uint64("to", 0, "last seqno (default: the ledger's size when the export starts)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return usageError("want --out LEDGER.cbor and no arguments")
	}
	if *from == 0 || (*to != 0 && *to < *from) {
		return usageError("want 1 ≤ --from ≤ --to")
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	recs, err := c.FetchLedger(ctx, *from, *to, func(done, target uint64) {
		fmt.Fprintf(stderr, "\rfetched %d of %d", done, target)
	})
	if err != nil {
		fmt.Fprintln(stderr)
		return fmt.Errorf("exporting the ledger: %w", err)
	}
	fmt.Fprintln(stderr)
	b, err := marshalLedger(recs)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d transactions, seqnos %d to %d\n", *out, len(recs), recs[0].Seqno, recs[len(recs)-1].Seqno)
	return nil
}

// marshalLedger encodes records as one CBOR array of canonical records.
func marshalLedger(recs []*log.Record) ([]byte, error) {
	raws := make([]cbor.RawMessage, len(recs))
	for i, r := range recs {
		b, err := log.MarshalRecord(r)
		if err != nil {
			return nil, err
		}
		raws[i] = b
	}
	return cbor.Marshal(raws)
}

// ledgerDecMode reads exported ledgers: the CBOR policy with the ledger's
// bounds (each record is decoded by log.UnmarshalRecord), but an outer
// array as long as the ledger, beyond any bound meant for one message.
var ledgerDecMode = func() cbor.DecMode {
	o := cbor.LedgerOptions()
	o.MaxArrayElements = math.MaxInt32
	return cbor.NewDecMode(o)
}()

// readLedger reads a file written by ledger export.
func readLedger(path string) ([]*log.Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raws []cbor.RawMessage
	if err := ledgerDecMode.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("%s is not a CBOR array of records (charter ledger export): %w", path, err)
	}
	recs := make([]*log.Record, len(raws))
	for i, raw := range raws {
		if recs[i], err = log.UnmarshalRecord(raw); err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", path, i, err)
		}
		if i > 0 && recs[i].Seqno != recs[i-1].Seqno+1 {
			return nil, fmt.Errorf("%s: record %d has seqno %d after %d: records must be consecutive", path, i, recs[i].Seqno, recs[i-1].Seqno)
		}
	}
	return recs, nil
}

// policyVersion is one registration policy source found in the ledger.
type policyVersion struct {
	source []byte
	setAt  log.TxID // the first transaction that set it
	prog   *policy.RegistrationPolicy
	err    error // compile error
	used   bool
}

// replayReport counts what replay-policy found.
type replayReport struct {
	registrations int // all registrations
	checked       int // registrations evaluated under a policy found in the ledger
	notAccepted   int
	missing       int
	notes         int
	versions      int // distinct policies the checked registrations name
}

// runLedgerReplayPolicy re-runs, offline, the policy each registration
// records (Record.Policy, SHA-256 of the source) on its statement, and
// reports those the policy would not accept. It checks what the service's
// policy decided, not that the records are in the ledger: verify the
// records' receipts (charter tx verify) for that.
func runLedgerReplayPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger replay-policy", "LEDGER.cbor", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("want one ledger file (from charter ledger export)")
	}
	recs, err := readLedger(fs.Arg(0))
	if err != nil {
		return err
	}
	rep, err := replayPolicies(ctx, recs, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checked %d registrations under %d policy versions: %d not accepted\n", rep.checked, rep.versions, rep.notAccepted)
	if rep.missing > 0 {
		fmt.Fprintf(stdout, "%d registrations name a policy not found in the ledger\n", rep.missing)
	}
	if n := rep.registrations - rep.checked - rep.missing; n > 0 {
		fmt.Fprintf(stdout, "%d registrations were recorded without a policy\n", n)
	}
	if rep.notAccepted > 0 || rep.missing > 0 {
		return fmt.Errorf("%d registrations not accepted by their recorded policy, %d with a policy not in the ledger", rep.notAccepted, rep.missing)
	}
	return nil
}

func replayPolicies(ctx context.Context, recs []*log.Record, w io.Writer) (*replayReport, error) {
	rep := &replayReport{}
	if len(recs) > 0 && recs[0].Seqno > 1 {
		fmt.Fprintf(w, "note: the ledger file starts at seqno %d; policies set before it are not known\n", recs[0].Seqno)
	}
	// First pass: every policy source the ledger holds, so that a
	// registration naming a policy set only later is told apart from one
	// naming a policy the ledger never had.
	versions := map[[32]byte]*policyVersion{}
	err := eachWriteSet(recs, func(r *log.Record, ws *log.WriteSet) error {
		for _, x := range ws.Writes {
			if isPolicyWrite(x) && !x.Delete && len(x.Value) > 0 {
				d := sha256.Sum256(x.Value)
				if versions[d] == nil {
					versions[d] = &policyVersion{source: x.Value, setAt: r.TxID()}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Second pass, in ledger order: the policy in force and each registration.
	var (
		inForce   [32]byte // zero: none
		inForceAt log.TxID
	)
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch r.Type {
		case log.TxWrites:
			ws, _ := log.UnmarshalWriteSet(r.Body) // decoded in the first pass
			for _, x := range ws.Writes {
				if !isPolicyWrite(x) {
					continue
				}
				inForceAt = r.TxID()
				if x.Delete || len(x.Value) == 0 {
					inForce = [32]byte{}
				} else {
					inForce = sha256.Sum256(x.Value)
				}
			}
			continue
		case log.TxRegistration:
		default:
			continue
		}
		rep.registrations++
		line := func(kind, msg string) {
			fmt.Fprintf(w, "%-13s %s %s: %s\n", kind, r.TxID(), hex.EncodeToString(r.Entry[:]), oneLine(msg))
		}
		if r.Policy == ([32]byte{}) {
			if inForce != ([32]byte{}) {
				rep.notes++
				line("note", fmt.Sprintf("registered without a policy while policy %s had been set at %s", short(inForce), inForceAt))
			}
			continue
		}
		v := versions[r.Policy]
		if v == nil {
			rep.missing++
			line("missing", fmt.Sprintf("policy %s not found in the ledger", short(r.Policy)))
			continue
		}
		rep.checked++
		if !v.used {
			v.used = true
			rep.versions++
			v.prog, v.err = policy.NewRegistrationPolicy(string(v.source), policy.Limits{})
		}
		if v.setAt.Seqno > r.Seqno {
			rep.notes++
			line("note", fmt.Sprintf("recorded policy %s is first set later, at %s", short(r.Policy), v.setAt))
		} else if r.Policy != inForce {
			rep.notes++
			line("note", fmt.Sprintf("recorded policy %s, while policy %s had been set at %s", short(r.Policy), shortOrNone(inForce), inForceAt))
		}
		reason := ""
		if v.err != nil {
			reason = fmt.Sprintf("policy %s does not compile: %v", short(r.Policy), v.err)
		} else if st, err := cose.ParseStatement(r.Body, cose.ParseOptions{MaxSize: maxStatementFile}); err != nil {
			reason = fmt.Sprintf("the statement does not parse: %v", err)
		} else if verdict, err := evaluate(ctx, v.prog, policyinput.Of(st)); err != nil {
			reason = fmt.Sprintf("policy %s failed: %v", short(r.Policy), err)
		} else if !verdict.Accepted {
			reason = fmt.Sprintf("policy %s rejects: %s", short(r.Policy), verdict.Reason)
		}
		if reason != "" {
			rep.notAccepted++
			line("not accepted", reason)
		}
	}
	return rep, nil
}

func isPolicyWrite(x log.Write) bool {
	return x.Map == govwire.MapSCITTPolicy && string(x.Key) == "policy"
}

// short names a policy version by the first 8 bytes of its digest.
func short(d [32]byte) string { return hex.EncodeToString(d[:8]) }

func shortOrNone(d [32]byte) string {
	if d == ([32]byte{}) {
		return "(none)"
	}
	return short(d)
}

func runLedgerAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger audit", "--url URL --cacert PEM [--note-key KEY] [--since CHECKPOINT] [--save CHECKPOINT] [--entries]", stderr)
	sf := bindServiceFlags(fs)
	noteKey := fs.String("note-key", "", "the log's checkpoint note verifier key (name+hash+key, as /checkpoint/key serves it); default: the one the service sends, trusted on first use")
	since := fs.String("since", "", "a checkpoint saved by an earlier audit (--save): the newest must extend it")
	save := fs.String("save", "", "where to write the newest checkpoint once it has passed, for the next --since")
	entries := fs.Bool("entries", false, "also download the entry bundles and check each entry against its leaf: the whole log, or with --since what was added after that checkpoint")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("want no arguments")
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	var previous []byte
	if *since != "" {
		if previous, err = os.ReadFile(*since); err != nil {
			return fmt.Errorf("--since: %w", err)
		}
	}
	key := strings.TrimSpace(*noteKey)
	if key == "" {
		b, err := c.CheckpointKey(ctx)
		if err != nil {
			return fmt.Errorf("fetching /checkpoint/key: %w", err)
		}
		key = strings.TrimSpace(string(b))
		fmt.Fprintf(stderr, "trusting the note key the service sent: %s\n(pin it with --note-key to detect a swapped key)\n", key)
	}
	verifier, err := note.NewVerifier(key)
	if err != nil {
		return fmt.Errorf("the note key %q: %w", key, err)
	}
	opts := client.AuditOptions{Previous: previous, Entries: *entries}
	if *entries {
		opts.Progress = func(done, total uint64) { fmt.Fprintf(stderr, "\rchecked %d of %d entries", done, total) }
	}
	a, err := c.AuditTiles(ctx, verifier, opts)
	if *entries {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	cp := a.Checkpoint
	fmt.Fprintf(stdout, "checkpoint %s, size %d, root %s: signed by %s\n", cp.Origin, cp.Size, hex.EncodeToString(cp.Root[:]), verifier.Name())
	fmt.Fprintf(stdout, "root rebuilt from the tiles: ok\n")
	if previous != nil {
		fmt.Fprintf(stdout, "extends the checkpoint of size %d in %s: ok\n", a.PreviousSize, *since)
	}
	if *entries {
		fmt.Fprintf(stdout, "%d entries (leaves %d to %d) hash to their leaves: ok\n", a.EntriesChecked, a.EntriesFrom, a.EntriesFrom+a.EntriesChecked-1)
	}
	if *save != "" {
		if err := durable.WriteFile(*save, a.Note, 0o644); err != nil {
			return fmt.Errorf("--save: %w", err)
		}
		fmt.Fprintf(stdout, "saved the checkpoint to %s\n", *save)
	}
	return nil
}

// eachWriteSet calls f with each write-set transaction of recs and its
// decoded write set, in ledger order, and stops at the first error (a
// write set that does not decode names its transaction).
func eachWriteSet(recs []*log.Record, f func(*log.Record, *log.WriteSet) error) error {
	for _, r := range recs {
		if r.Type != log.TxWrites {
			continue
		}
		ws, err := log.UnmarshalWriteSet(r.Body)
		if err != nil {
			return fmt.Errorf("transaction %s: %w", r.TxID(), err)
		}
		if err := f(r, ws); err != nil {
			return err
		}
	}
	return nil
}
