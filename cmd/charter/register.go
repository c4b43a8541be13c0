package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
)

func init() {
	register(command{name: "register", summary: "register signed statements (several: in batches) and write the transparent statements", run: runRegister})
	register(command{name: "keys", summary: "download the service's receipt-signing keys (COSE_KeySet)", run: runKeys})
}

// serviceFlags are the flags every command that talks to a service shares.
type serviceFlags struct{ url, cacert string }

// bindServiceFlags adds --url and --cacert, which every command that talks
// to a service takes.
func bindServiceFlags(fs *flag.FlagSet) *serviceFlags {
	var sf serviceFlags
	fs.StringVar(&sf.url, "url", "", "service base URL")
	fs.StringVar(&sf.cacert, "cacert", "", "service certificate to trust (PEM); default: system roots")
	return &sf
}

func (f *serviceFlags) client() (*client.Client, error) {
	if f.url == "" {
		return nil, usageError("--url is required (the service's base URL, e.g. https://127.0.0.1:8000)")
	}
	var ca []byte
	if f.cacert != "" {
		var err error
		ca, err = os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
	}
	c, err := client.New(f.url, ca)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	return c, nil
}

func runRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("register", "--url URL --cacert SERVICE.pem [--out TS.cose] S.cose\n       charter register --url URL --cacert SERVICE.pem [--batch] [--batch-size N] S1.cose S2.cose …", stderr)
	sf := bindServiceFlags(fs)
	out := fs.String("out", "", "where to write the transparent statement (default: S.cose with .ts.cose); one statement only")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting for the receipt(s) after this long")
	batch := fs.Bool("batch", false, "register through POST /entries/batch even for one statement (several statements always are)")
	batchSize := fs.Int("batch-size", 1000, "statements per POST /entries/batch request (the service's bound is 1000 by default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError("want one or more signed statement files")
	}
	if fs.NArg() > 1 && *out != "" {
		return usageError("--out names one transparent statement; with several statements each is written beside its file")
	}
	if *batchSize < 1 {
		return usageError("--batch-size %d: need at least one", *batchSize)
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	files := fs.Args()
	stmts := make([][]byte, len(files))
	for i, in := range files {
		if stmts[i], err = os.ReadFile(in); err != nil {
			return err
		}
		// Catch a wrong file here, with the parser's own words, rather
		// than as a terse 400 from the service.
		if _, err := cose.ParseStatement(stmts[i], cose.ParseOptions{MaxSize: 64 << 20}); err != nil {
			return fmt.Errorf("%s is not a signed statement Charter accepts: %w", in, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if len(files) > 1 || *batch {
		return registerBatch(ctx, c, files, stmts, *batchSize, *out, stdout)
	}
	in := files[0]
	reg, err := c.Register(ctx, stmts[0])
	if err != nil {
		return fmt.Errorf("registering %s: %w", in, err)
	}
	if *out == "" {
		*out = tsPath(in)
	}
	if err := writeTransparent(*out, stmts[0], reg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "registered entry %s%s\nwrote transparent statement %s\n", reg.EntryID, at(reg), *out)
	return nil
}

// registerBatch registers stmts (read from files) through POST
// /entries/batch, size at a time, writes each registered one's
// transparent statement beside its file (or to out, for one statement),
// and prints one line per statement, in order. It fails if any statement
// was not registered, after printing every line.
func registerBatch(ctx context.Context, c *client.Client, files []string, stmts [][]byte, size int, out string, stdout io.Writer) error {
	failed := 0
	for start := 0; start < len(stmts); start += size {
		end := min(start+size, len(stmts))
		res, err := c.RegisterBatch(ctx, stmts[start:end])
		if err != nil {
			return fmt.Errorf("registering %s … %s: %w", files[start], files[end-1], err)
		}
		for j, r := range res {
			in := files[start+j]
			if r.Err != nil {
				failed++
				fmt.Fprintf(stdout, "%s: not registered: %v\n", in, r.Err)
				continue
			}
			dst := out
			if dst == "" {
				dst = tsPath(in)
			}
			if err := writeTransparent(dst, stmts[start+j], r.Registration); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: registered entry %s%s, wrote %s\n", in, r.Registration.EntryID, at(r.Registration), dst)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d statements were not registered", failed, len(stmts))
	}
	return nil
}

// tsPath is where a statement file's transparent statement goes by default.
func tsPath(in string) string { return strings.TrimSuffix(in, ".cose") + ".ts.cose" }

// writeTransparent writes stmt with reg's receipt attached to path.
func writeTransparent(path string, stmt []byte, reg *client.Registration) error {
	ts, err := cose.AttachReceipts(stmt, reg.Receipt)
	if err != nil {
		return fmt.Errorf("attaching the receipt: %w", err)
	}
	return os.WriteFile(path, ts, 0o644)
}

// at is " at VIEW.SEQNO" when the service named the transaction.
func at(reg *client.Registration) string {
	if reg.TxID == "" {
		return ""
	}
	return " at " + reg.TxID
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys", "--url URL --cacert SERVICE.pem --out KEYS.cbor", stderr)
	sf := bindServiceFlags(fs)
	out := fs.String("out", "", "where to write the COSE_KeySet (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError("--out is required")
	}
	if fs.NArg() != 0 {
		return usageError("unexpected arguments: %v", fs.Args())
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	raw, keys, err := c.ServiceKeys(ctx)
	if err != nil {
		return err
	}
	// A recovered service serves its previous keys too: each must be
	// endorsed, through its recoveries, by the service whose certificate
	// is pinned here. A single key needs no endorsement (and a SCITT
	// service that is not Charter serves no /node/network).
	previous := 0
	if len(keys) > 1 {
		network, err := c.Network(ctx)
		if err != nil {
			return fmt.Errorf("the key set holds %d keys, and their endorsements (/node/network) cannot be read: %w", len(keys), err)
		}
		if previous, err = client.CheckEndorsedKeys(network, keys); err != nil {
			return err
		}
	}
	if err := os.WriteFile(*out, raw, 0o644); err != nil {
		return err
	}
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s %s\n", k.Alg, k.Kid)
	}
	if previous > 0 {
		fmt.Fprintf(stdout, "%d previous service identit(ies), each endorsed by its successor: ok\n", previous)
	}
	fmt.Fprintf(stdout, "wrote %d key(s) to %s\n", len(keys), *out)
	return nil
}
