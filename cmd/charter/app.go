package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/app"
)

func init() {
	register(command{name: "app deploy", summary: "propose a JS app bundle (set_js_app) and vote for it", run: runAppDeploy})
	register(command{name: "app call", summary: "call an app endpoint: METHOD PATH under /app", run: runAppCall})
}

// readBundle reads a bundle: a folder with app.json and src/ (built here,
// as CCF's build_bundle.js would), CCF's bundle.json {"metadata",
// "modules"}, or the samples' set_js_app.json {"actions": [{"name":
// "set_js_app", "args": {"bundle": …}}]}. It returns set_js_app's args.
func readBundle(file string) (json.RawMessage, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("--bundle: %w", err)
	}
	if st.IsDir() {
		b, err := app.BuildBundle(file)
		if err != nil {
			return nil, fmt.Errorf("--bundle %s: %w", file, err)
		}
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]json.RawMessage{"bundle": raw})
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--bundle: %w", err)
	}
	var shape struct {
		Metadata json.RawMessage `json:"metadata"`
		Modules  json.RawMessage `json:"modules"`
		Actions  []struct {
			Name string          `json:"name"`
			Args json.RawMessage `json:"args"`
		} `json:"actions"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		return nil, fmt.Errorf("--bundle %s is not JSON: %w", file, err)
	}
	switch {
	case shape.Metadata != nil && shape.Modules != nil && shape.Actions == nil:
		return json.Marshal(map[string]json.RawMessage{"bundle": raw})
	case shape.Actions != nil && shape.Metadata == nil:
		if len(shape.Actions) != 1 || shape.Actions[0].Name != "set_js_app" || shape.Actions[0].Args == nil {
			return nil, fmt.Errorf("--bundle %s is a proposal, but not one set_js_app action with args", file)
		}
		return shape.Actions[0].Args, nil
	}
	return nil, fmt.Errorf(`--bundle %s is neither a bundle {"metadata", "modules"} nor a set_js_app proposal {"actions": [...]}`, file)
}

func runAppDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("app deploy", "--bundle bundle.json  (and --url --cacert --member-key --member-cert)", stderr)
	var g govFlags
	g.add(fs, true)
	file := fs.String("bundle", "", "the built bundle (bundle.json, or the samples' set_js_app.json)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("unexpected arguments %q: the bundle goes in --bundle", fs.Args())
	}
	if *file == "" {
		return usageError("--bundle is required (a built bundle.json)")
	}
	a, err := readBundle(*file)
	if err != nil {
		return err
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	return proposeAndVote(ctx, c, stdout, action("set_js_app", a))
}

// headerFlags collects repeated --header NAME:VALUE.
type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("want NAME:VALUE, got %q", v)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

func runAppCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("app call", "METHOD PATH [--user-key KEY --user-cert CERT] [--data JSON|@FILE] [--header NAME:VALUE]...  (and --url --cacert)", stderr)
	var g govFlags
	g.add(fs, false)
	key := fs.String("user-key", "", "private key (PEM) of the client certificate: a user's or a member's")
	cert := fs.String("user-cert", "", "client certificate (PEM) to present")
	fs.StringVar(&g.pass.file, "key-passphrase-file", "", "file whose first line is the passphrase of an encrypted --user-key (else $"+passphraseEnv+", else a prompt)")
	data := fs.String("data", "", "request body, or @FILE (sent as application/json unless --header sets Content-Type)")
	headers := headerFlags{}
	fs.Var(headers, "header", "a request header NAME:VALUE (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("want METHOD and PATH, e.g. charter app call GET /account/alice --url ...")
	}
	method, path := strings.ToUpper(pos[0]), pos[1]
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if path != "/app" && !strings.HasPrefix(path, "/app/") {
		path = "/app" + path
	}
	if g.url == "" {
		return usageError("--url is required (the service's base URL)")
	}
	if (*key == "") != (*cert == "") {
		return usageError("give --user-key and --user-cert together, or neither")
	}
	var clientCert *tls.Certificate
	if *key != "" {
		signer, c, err := loadKeyPair(*key, *cert, "user", g.pass)
		if err != nil {
			return err
		}
		clientCert = &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: signer, Leaf: c}
	}
	var body []byte
	if *data != "" {
		body = []byte(*data)
		if (*data)[0] == '@' {
			if body, err = os.ReadFile((*data)[1:]); err != nil {
				return fmt.Errorf("--data: %w", err)
			}
		}
	}
	tr, err := serviceTransport(g.cacert, clientCert)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(g.url, "/")+path, rd)
	if err != nil {
		return usageError("%v", err)
	}
	for k, vs := range headers {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	fmt.Fprintf(stdout, "HTTP %s\n", resp.Status)
	if txid := resp.Header.Get("x-ms-ccf-transaction-id"); txid != "" {
		fmt.Fprintf(stdout, "x-ms-ccf-transaction-id: %s\n", txid)
	}
	fmt.Fprintln(stdout)
	if _, err := io.Copy(stdout, io.LimitReader(resp.Body, 64<<20)); err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	return nil
}
