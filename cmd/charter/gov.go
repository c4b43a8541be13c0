package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/internal/govwire"
)

func init() {
	register(command{name: "gov ack", summary: "activate a member: fetch the state digest and sign it", run: runGovAck})
	register(command{name: "gov propose", summary: "propose governance actions", run: runGovPropose})
	register(command{name: "gov vote", summary: "vote on a proposal", run: runGovVote})
	register(command{name: "gov withdraw", summary: "withdraw one's own open proposal", run: runGovWithdraw})
	register(command{name: "gov show", summary: "show a proposal (or the service's state)", run: runGovShow})
	register(command{name: "gov members", summary: "list the members", run: runGovMembers})
	register(command{name: "gov constitution", summary: "print the constitution", run: runGovConstitution})
}

// govFlags are the flags every governance command takes.
type govFlags struct {
	url, cacert, key, cert string
	pass                   passphraseSource
}

func (g *govFlags) add(fs *flag.FlagSet, signing bool) {
	fs.StringVar(&g.url, "url", "", "service base URL")
	fs.StringVar(&g.cacert, "cacert", "", "service certificate to trust (PEM)")
	fs.StringVar(&g.cacert, "service-cert", "", "the same as --cacert")
	if signing {
		fs.StringVar(&g.key, "member-key", "", "the member's private key (PEM)")
		fs.StringVar(&g.cert, "member-cert", "", "the member's certificate (PEM)")
		fs.StringVar(&g.pass.file, "key-passphrase-file", "", "file whose first line is the passphrase of an encrypted --member-key (else $"+passphraseEnv+", else a prompt)")
	}
}

// govClient sends members' requests to one service.
type govClient struct {
	base   string
	http   *http.Client
	signer crypto.Signer
	cert   *x509.Certificate
	id     string
}

func (g *govFlags) client(signing bool) (*govClient, error) {
	if g.url == "" {
		return nil, usageError("--url is required")
	}
	tr, err := serviceTransport(g.cacert, nil)
	if err != nil {
		return nil, err
	}
	c := &govClient{base: strings.TrimRight(g.url, "/"), http: &http.Client{Transport: tr, Timeout: time.Minute}}
	if !signing {
		return c, nil
	}
	if g.key == "" || g.cert == "" {
		return nil, usageError("--member-key and --member-cert are required")
	}
	signer, cert, err := loadKeyPair(g.key, g.cert, "member", g.pass)
	if err != nil {
		return nil, err
	}
	c.signer, c.cert, c.id = signer, cert, govwire.MemberIDOf(cert)
	return c, nil
}

// serviceTransport is an HTTP transport that trusts the service
// certificate in the PEM file cacert (system roots if ""), and presents
// clientCert if not nil.
func serviceTransport(cacert string, clientCert *tls.Certificate) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		b, err := os.ReadFile(cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--cacert %s holds no PEM certificate", cacert)
		}
		cfg.RootCAs = pool
	}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	tr.TLSClientConfig = cfg
	return tr, nil
}

// loadKeyPair reads a private key (any form keyfile.go reads) and its
// certificate (PEM); who ("member", "user") names the flags in errors.
func loadKeyPair(keyFile, certFile, who string, pass passphraseSource) (crypto.Signer, *x509.Certificate, error) {
	signer, err := readPrivateKey(keyFile, pass)
	if err != nil {
		return nil, nil, fmt.Errorf("--%s-key: %w", who, err)
	}
	cert, err := readCertFile(certFile, "--"+who+"-cert")
	if err != nil {
		return nil, nil, err
	}
	return signer, cert, nil
}

// readCertFile reads the first PEM certificate of file; flagName names it
// in errors.
func readCertFile(file, flagName string) (*x509.Certificate, error) {
	cb, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	cblk, _ := pem.Decode(cb)
	if cblk == nil || cblk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s %s holds no PEM certificate", flagName, file)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	return cert, nil
}

// sendAndPrint sends a request as send does and prints the answer.
func (c *govClient) sendAndPrint(ctx context.Context, stdout io.Writer, path string, t govwire.MsgType, proposalID string, payload []byte) error {
	out, err := c.send(ctx, path, t, proposalID, payload)
	if err != nil {
		return err
	}
	printJSON(stdout, out)
	return nil
}

// send signs payload as a request of type t and POSTs it to path.
func (c *govClient) send(ctx context.Context, path string, t govwire.MsgType, proposalID string, payload []byte) (map[string]any, error) {
	body, err := govwire.SignRequest(rand.Reader, c.signer, c.cert, t, time.Now(), proposalID, payload)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, http.MethodPost, path, body)
}

func (c *govClient) do(ctx context.Context, method, path string, body []byte) (map[string]any, error) {
	raw, hdr, err := c.rawHeader(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return nil, fmt.Errorf("%s %s: answer is not JSON: %w", method, path, err)
		}
	}
	// A write's transaction is CCF's response header; an answer without a
	// body (an ack's 204) has no other place for it.
	if _, ok := out["transactionId"]; !ok {
		if txid := hdr.Get("x-ms-ccf-transaction-id"); txid != "" {
			out["transactionId"] = txid
		}
	}
	return out, nil
}

func (c *govClient) raw(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	b, _, err := c.rawHeader(ctx, method, path, body)
	return b, err
}

func (c *govClient) rawHeader(ctx context.Context, method, path string, body []byte) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+withAPIVersion(path), rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/cose")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		if title, detail, ok := client.ParseProblem(b); ok {
			return nil, nil, fmt.Errorf("%s: %s (HTTP %d)", title, detail, resp.StatusCode)
		}
		return nil, nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, resp.Header, nil
}

// govAPIVersion is the version of CCF's governance API the CLI speaks
// (spec/governance.md): CCF 7's API takes it on every call.
const govAPIVersion = "2024-07-01"

// withAPIVersion adds api-version to a path of CCF 7's governance API
// (/gov/members/… and /gov/service/…); the classic routes take none.
func withAPIVersion(path string) string {
	if !strings.HasPrefix(path, "/gov/members/") && !strings.HasPrefix(path, "/gov/service/") {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "api-version=" + govAPIVersion
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func runGovAck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gov ack", "--url URL --cacert PEM --member-key KEY --member-cert CERT", stderr)
	var g govFlags
	g.add(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	upd, err := c.send(ctx, "/gov/members/state-digests/"+c.id+":update", govwire.MsgStateDigest, "", []byte("{}"))
	if err != nil {
		return fmt.Errorf("asking for the state digest: %w", err)
	}
	digest, _ := upd["stateDigest"].(string)
	payload, _ := json.Marshal(govwire.Ack{StateDigest: digest})
	ack, err := c.send(ctx, "/gov/members/state-digests/"+c.id+":ack", govwire.MsgAck, "", payload)
	if err != nil {
		return fmt.Errorf("acknowledging state digest %s: %w", digest, err)
	}
	fmt.Fprintf(stdout, "member %s acknowledged state digest %s and is active (transactions %v and %v)\n", c.id, digest, upd["transactionId"], ack["transactionId"])
	return nil
}

func runGovPropose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gov propose", "--action NAME [--args JSON|@FILE] | --proposal FILE  (and --url --cacert --member-key --member-cert)", stderr)
	var g govFlags
	g.add(fs, true)
	action := fs.String("action", "", "the action's name, e.g. set_scitt_configuration")
	argsFlag := fs.String("args", "", "the action's arguments as JSON, or @FILE")
	file := fs.String("proposal", "", "a proposal file {\"actions\": [...]} for several actions")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var payload []byte
	switch {
	case *file != "" && *action == "":
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		payload = b
	case *action != "" && *file == "":
		a := govwire.Action{Name: *action}
		if *argsFlag != "" {
			raw := []byte(*argsFlag)
			if strings.HasPrefix(*argsFlag, "@") {
				b, err := os.ReadFile((*argsFlag)[1:])
				if err != nil {
					return fmt.Errorf("--args: %w", err)
				}
				raw = b
			}
			if !json.Valid(raw) {
				return usageError("--args is not valid JSON")
			}
			a.Args = raw
		}
		b, err := json.Marshal(govwire.Proposal{Actions: []govwire.Action{a}})
		if err != nil {
			return err
		}
		payload = b
	default:
		return usageError("give --action (with --args) or --proposal, not both")
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	return c.sendAndPrint(ctx, stdout, "/gov/members/proposals:create", govwire.MsgProposal, "", payload)
}

func runGovVote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gov vote", "ID --accept|--reject|--ballot FILE.js  (and --url --cacert --member-key --member-cert)", stderr)
	var g govFlags
	g.add(fs, true)
	accept := fs.Bool("accept", false, "vote for")
	reject := fs.Bool("reject", false, "vote against")
	ballotFile := fs.String("ballot", "", "a JS ballot module exporting vote(proposal, proposerId)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want exactly one proposal id")
	}
	var ballot string
	switch {
	case *accept && !*reject && *ballotFile == "":
		ballot = "export function vote(proposal, proposerId) { return true }"
	case *reject && !*accept && *ballotFile == "":
		ballot = "export function vote(proposal, proposerId) { return false }"
	case *ballotFile != "" && !*accept && !*reject:
		b, err := os.ReadFile(*ballotFile)
		if err != nil {
			return err
		}
		ballot = string(b)
	default:
		return usageError("give exactly one of --accept, --reject and --ballot")
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	id := pos[0]
	payload, _ := json.Marshal(govwire.Ballot{Ballot: ballot})
	return c.sendAndPrint(ctx, stdout, "/gov/members/proposals/"+id+"/ballots/"+c.id+":submit", govwire.MsgBallot, id, payload)
}

func runGovWithdraw(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gov withdraw", "ID  (and --url --cacert --member-key --member-cert)", stderr)
	var g govFlags
	g.add(fs, true)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want exactly one proposal id")
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	id := pos[0]
	return c.sendAndPrint(ctx, stdout, "/gov/members/proposals/"+id+":withdraw", govwire.MsgWithdrawal, id, []byte("{}"))
}

func runGovShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gov show", "[ID]  (and --url --cacert)", stderr)
	var g govFlags
	g.add(fs, false)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("want at most one proposal id")
	}
	c, err := g.client(false)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		out, err := c.do(ctx, http.MethodGet, "/gov/service/info", nil)
		if err != nil {
			return err
		}
		printJSON(stdout, out)
		return nil
	}
	id := pos[0]
	info, err := c.do(ctx, http.MethodGet, "/gov/members/proposals/"+id, nil)
	if err != nil {
		return err
	}
	actions, err := c.do(ctx, http.MethodGet, "/gov/members/proposals/"+id+"/actions", nil)
	if err != nil {
		return err
	}
	info["actions"] = actions["actions"]
	printJSON(stdout, info)
	return nil
}

func runGovMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return govGet(ctx, "gov members", "/gov/service/members", args, stdout, stderr)
}

func runGovConstitution(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return govGet(ctx, "gov constitution", "/gov/service/constitution", args, stdout, stderr)
}

// govGet prints what a read-only governance endpoint answers.
func govGet(ctx context.Context, name, path string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(name, "--url URL --cacert PEM", stderr)
	var g govFlags
	g.add(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := g.client(false)
	if err != nil {
		return err
	}
	b, err := c.raw(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}
