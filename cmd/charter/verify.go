package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
)

func init() {
	register(command{
		name:    "verify",
		summary: "verify a transparent statement offline with the service's public keys",
		run:     runVerify,
	})
}

const verifySynopsis = "--service-keys KEYS [--payload FILE] [--check-chain-time] TS.cose"

// runVerify checks a transparent statement with nothing but the service
// keys: the statement signature, every receipt, and the payload if given.
// It prints one line per check and exits 0 only if every check holds.
//
// The x5chain's validity period is not checked by default: a statement
// registered while its certificate was valid stays verifiable after the
// certificate expires (the receipt proves when it was registered).
func runVerify(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", verifySynopsis, stderr)
	keysPath := fs.String("service-keys", "", "service keys: COSE_KeySet (/.well-known/scitt-keys), JWKS (/jwks), CCF trust store JSON, or PEM")
	payloadPath := fs.String("payload", "", "the artifact; checked against the statement (bytes, or the hash-envelope digest)")
	chainTime := fs.Bool("check-chain-time", false, "also require the statement's x5chain to be valid now")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want one transparent statement file, got %d arguments", len(pos))
	}
	if *keysPath == "" {
		return usageError("--service-keys is required")
	}
	keyBytes, err := os.ReadFile(*keysPath)
	if err != nil {
		return err
	}
	keys, err := client.ParseServiceKeys(keyBytes)
	if err != nil {
		return fmt.Errorf("--service-keys %s: %w", *keysPath, err)
	}
	ts, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	opts := client.VerifyOptions{
		ServiceKeys:      keys,
		StatementOptions: cose.VerifyOptions{SkipChainTime: !*chainTime},
	}
	if *payloadPath != "" {
		if opts.Payload, err = os.ReadFile(*payloadPath); err != nil {
			return err
		}
	}
	rep, verr := client.VerifyTransparentStatement(ts, opts)
	for _, c := range rep.Checks {
		if c.OK {
			fmt.Fprintf(stdout, "ok   %s (%s)\n", c.Name, c.Detail)
		} else {
			fmt.Fprintf(stdout, "FAIL %s: %s\n", c.Name, c.Detail)
		}
	}
	if verr != nil {
		var names []string
		for _, c := range rep.Failed() {
			names = append(names, c.Name)
		}
		return fmt.Errorf("%s: not verified: %s failed", pos[0], strings.Join(names, ", "))
	}
	return nil
}
