package main

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/internal/ledgerverify"
)

func init() {
	register(command{name: "ledger verify", summary: "check ledger files offline: every chunk, every transaction's entry, every checkpoint's root and signatures", run: runLedgerVerify})
}

func runLedgerVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger verify", "[--service-cert PEM] DIR", stderr)
	certPath := fs.String("service-cert", "", "a service certificate the ledger's genesis, or a recovery it endorses, must name (default: trust the genesis in DIR, and compare its key yourself)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("want the directory of ledger files (a node's DATA/ledger, or a download)")
	}
	dir := fs.Arg(0)
	var pinned []byte
	if *certPath != "" {
		b, err := os.ReadFile(*certPath)
		if err != nil {
			return fmt.Errorf("--service-cert: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return fmt.Errorf("--service-cert %s: not a PEM certificate", *certPath)
		}
		pinned = blk.Bytes
	}
	chunks, err := ledgerfiles.List(dir)
	if err != nil {
		return err
	}
	var total uint64
	if n := len(chunks); n > 0 {
		total = chunks[n-1].Last // an open last chunk: the committed ones' end
	}
	v := ledgerverify.New(pinned)
	start, progress := time.Now(), &progressLine{w: stderr, quiet: *quiet, last: time.Now()}
	_, err = ledgerfiles.Scan(dir, func(seqno uint64, raw []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		progress.update(false, "verified %d of %d+ transactions", seqno-1, total)
		return v.Add(seqno, raw)
	})
	progress.done()
	if err != nil {
		return err
	}
	rep, err := v.Finish()
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "%d transactions in %d chunks: every chunk whole, every entry the hash of its record: ok\n", rep.Transactions, len(chunks))
	fmt.Fprintf(stdout, "%d registrations, %d key-value transactions, %d checkpoints\n", rep.Registrations, rep.Writes, rep.Checkpoints)
	fmt.Fprintf(stdout, "service %s, key id %s", rep.Issuer, rep.ServiceKeyID)
	if pinned != nil {
		fmt.Fprintf(stdout, " (the certificate given)")
	}
	fmt.Fprintln(stdout)
	if rep.Recoveries > 0 {
		word := "recoveries"
		if rep.Recoveries == 1 {
			word = "recovery"
		}
		fmt.Fprintf(stdout, "%d %s: each new service identity endorses the one before it, and only it signs after: ok\n", rep.Recoveries, word)
	}
	if rep.Checkpoints == 0 {
		return errors.New("no checkpoint signs any of these transactions")
	}
	fmt.Fprintf(stdout, "every checkpoint's root is the records' and is signed by the service key and note key: ok (newest: size %d, root %s)\n", rep.CheckpointSize, hex.EncodeToString(rep.CheckpointRoot[:]))
	if uncovered := rep.Transactions - rep.CheckpointSize; uncovered > 0 {
		fmt.Fprintf(stdout, "%d transactions after the newest checkpoint are not signed yet\n", uncovered)
	}
	fmt.Fprintf(stdout, "root over all %d: %s (%.0f transactions/s)\n", rep.Transactions, hex.EncodeToString(rep.Root[:]), float64(rep.Transactions)/took.Seconds())
	return nil
}
