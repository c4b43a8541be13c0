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
	register(command{name: "register", summary: "register a signed statement and write the transparent statement", run: runRegister})
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
	fs := newFlagSet("register", "--url URL --cacert SERVICE.pem [--out TS.cose] S.cose", stderr)
	sf := bindServiceFlags(fs)
	out := fs.String("out", "", "where to write the transparent statement (default: S.cose with .ts.cose)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting for the receipt after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("want exactly one signed statement file, got %d arguments", fs.NArg())
	}
	in := fs.Arg(0)
	c, err := sf.client()
	if err != nil {
		return err
	}
	stmt, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	// Catch a wrong file here, with the parser's own words, rather than as
	// a terse 400 from the service.
	if _, err := cose.ParseStatement(stmt, cose.ParseOptions{MaxSize: 64 << 20}); err != nil {
		return fmt.Errorf("%s is not a signed statement Charter accepts: %w", in, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	reg, err := c.Register(ctx, stmt)
	if err != nil {
		return fmt.Errorf("registering %s: %w", in, err)
	}
	ts, err := cose.AttachReceipts(stmt, reg.Receipt)
	if err != nil {
		return fmt.Errorf("attaching the receipt: %w", err)
	}
	if *out == "" {
		*out = strings.TrimSuffix(in, ".cose") + ".ts.cose"
	}
	if err := os.WriteFile(*out, ts, 0o644); err != nil {
		return err
	}
	txid := ""
	if reg.TxID != "" {
		txid = " at " + reg.TxID
	}
	fmt.Fprintf(stdout, "registered entry %s%s\nwrote transparent statement %s\n", reg.EntryID, txid, *out)
	return nil
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
