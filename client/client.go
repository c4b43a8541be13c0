package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
)

// Client talks to one Charter service over HTTPS, through the node it was
// given. Registrations go to the service's leader once a follower has named
// it (HeaderLeader, Router); everything else stays with the given node.
type Client struct {
	base *url.URL
	http *http.Client
	// writes sends registrations to the leader once a follower names it
	// (HeaderLeader).
	writes *Router
	// MaxBackoff caps the wait between polls, whatever Retry-After says.
	MaxBackoff time.Duration
}

// New returns a client for the service at baseURL. With caPEM, the service
// certificate (the service's CA) is the only trusted root; without, the
// system roots are used.
func New(baseURL string, caPEM []byte) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("service URL %q: want https://HOST:PORT", baseURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the service certificate file holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	tr.MaxIdleConnsPerHost = 64
	tr.DialContext = dialer(hostPort(u), nil)
	return &Client{
		base:   u,
		writes: NewRouter(u),
		http: &http.Client{
			Transport: tr,
			Timeout:   2 * time.Minute,
			// Registration redirects are part of the protocol: the client
			// follows them itself, honouring Retry-After.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		MaxBackoff: 10 * time.Second,
	}, nil
}

// Error is a service's error response: RFC 9290 concise problem details
// (SCITT routes) or CCF's JSON error (/node routes). Status is 0 for a
// statement's problem inside a batch answer (RegisterBatch).
type Error struct {
	Status int
	Title  string
	Detail string
}

func (e *Error) Error() string {
	if e.Status == 0 {
		if e.Detail == "" {
			return e.Title
		}
		return e.Title + ": " + e.Detail
	}
	if e.Detail == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Title, e.Status)
	}
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Title, e.Detail, e.Status)
}

// ParseProblem decodes body as a service's error: RFC 9290 concise
// problem details (CBOR, title -1, detail -2; SCITT routes) or CCF's JSON
// error shape {"error": {"code", "message"}} (/gov, /node and /app
// routes); ok is false when it is neither. It is the one decoding of a
// service's errors for the client and Charter's tools.
func ParseProblem(body []byte) (title, detail string, ok bool) {
	var p struct {
		Title  string `cbor:"-1,keyasint"`
		Detail string `cbor:"-2,keyasint"`
	}
	if cbor.Unmarshal(body, &p) == nil && p.Title != "" {
		return p.Title, p.Detail, true
	}
	var ce struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &ce) == nil && ce.Error.Code != "" {
		return ce.Error.Code, ce.Error.Message, true
	}
	return "", "", false
}

func problemFrom(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	var ok bool
	ct := resp.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/concise-problem-details+cbor") || strings.HasPrefix(ct, "application/json") {
		e.Title, e.Detail, ok = ParseProblem(body)
	}
	if !ok {
		e.Title = http.StatusText(resp.StatusCode)
		e.Detail = strings.TrimSpace(string(body))
		if len(e.Detail) > 200 {
			e.Detail = e.Detail[:200] + "…"
		}
	}
	return e
}

// Registration is a registered statement's receipt.
type Registration struct {
	// EntryID is the service's id for the entry (its Location).
	EntryID string
	// TxID is the ledger transaction id, when the service said it.
	TxID    string
	Receipt []byte
}

// Register submits a signed statement and waits for its receipt. It accepts
// every answer SCRAPI drafts give a registration — 201 with the receipt,
// 202/303 (or 302/204 with a Location) to poll — and retries 503s and lost
// registrations (404 while polling), waiting as Retry-After says, with
// jitter and at most MaxBackoff, until ctx ends.
func (c *Client) Register(ctx context.Context, statement []byte) (*Registration, error) {
	var wait time.Duration
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, c.jitter(wait, attempt)); err != nil {
				return nil, fmt.Errorf("registration not complete: %w", err)
			}
		}
		base, resp, body, err := c.write(ctx, "/entries", "application/cose", statement)
		if err != nil {
			return nil, err
		}
		wait = retryAfter(resp)
		switch resp.StatusCode {
		case http.StatusCreated, http.StatusOK:
			if len(body) > 0 {
				return &Registration{EntryID: entryID(resp.Header.Get("Location")), TxID: resp.Header.Get("X-Charter-Transaction-Id"), Receipt: body}, nil
			}
			fallthrough
		case http.StatusAccepted, http.StatusSeeOther, http.StatusFound, http.StatusNoContent:
			loc := resp.Header.Get("Location")
			if loc == "" {
				return nil, fmt.Errorf("service answered %d without a Location to poll", resp.StatusCode)
			}
			reg, lost, err := c.poll(ctx, base, loc, wait)
			if err != nil || !lost {
				return reg, err
			}
			// The service no longer knows the entry (lost in a crash or a
			// leader change before it committed): submit it again.
			wait = 0
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			// Overloaded or electing a leader: retry.
		default:
			return nil, problemFrom(resp, body)
		}
	}
}

// poll fetches loc, relative to base (the node that took the
// registration), until it yields the receipt. lost reports a 404: the
// registration must be submitted again.
func (c *Client) poll(ctx context.Context, base *url.URL, loc string, wait time.Duration) (reg *Registration, lost bool, err error) {
	for attempt := 1; ; attempt++ {
		if err := sleepCtx(ctx, c.jitter(wait, attempt)); err != nil {
			return nil, false, fmt.Errorf("receipt not ready: %w", err)
		}
		resp, body, err := c.doAt(ctx, base, http.MethodGet, loc, "", nil)
		if err != nil {
			return nil, false, err
		}
		wait = retryAfter(resp)
		switch resp.StatusCode {
		case http.StatusOK:
			return &Registration{EntryID: entryID(loc), Receipt: body}, false, nil
		case http.StatusFound, http.StatusAccepted, http.StatusSeeOther, http.StatusServiceUnavailable:
			if l := resp.Header.Get("Location"); l != "" {
				loc = l
			}
		case http.StatusNotFound:
			return nil, true, nil
		default:
			return nil, false, problemFrom(resp, body)
		}
	}
}

// Receipt fetches the receipt of an entry (hex entry id or VIEW.SEQNO).
func (c *Client) Receipt(ctx context.Context, id string) ([]byte, error) {
	return c.get(ctx, "/entries/"+url.PathEscape(id))
}

// TransparentStatement fetches an entry's statement with its receipt.
func (c *Client) TransparentStatement(ctx context.Context, id string) ([]byte, error) {
	return c.get(ctx, "/entries/"+url.PathEscape(id)+"/statement")
}

// ServiceKeys fetches the COSE_KeySet of the keys that sign receipts.
func (c *Client) ServiceKeys(ctx context.Context) ([]byte, cose.KeySet, error) {
	b, err := c.get(ctx, "/.well-known/scitt-keys")
	if err != nil {
		return nil, nil, err
	}
	keys, err := cose.ParseKeySet(b)
	if err != nil {
		return nil, nil, fmt.Errorf("the service's key set does not parse: %w", err)
	}
	return b, keys, nil
}

// Checkpoint fetches the newest signed-note checkpoint.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) { return c.get(ctx, "/checkpoint") }

// CheckpointKey fetches the checkpoint note verifier key (one line).
func (c *Client) CheckpointKey(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/checkpoint/key")
}

// ConsistencyProof fetches a consistency receipt from size1 to the
// checkpoint of size2 (0: the newest).
func (c *Client) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([]byte, error) {
	q := "/proofs/consistency?from=" + strconv.FormatUint(size1, 10)
	if size2 > 0 {
		q += "&to=" + strconv.FormatUint(size2, 10)
	}
	return c.get(ctx, q)
}

func (c *Client) get(ctx context.Context, path string) ([]byte, error) {
	resp, body, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, problemFrom(resp, body)
	}
	return body, nil
}

// maxResponse bounds what the client reads from a service.
const maxResponse = 64 << 20

func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte) (*http.Response, []byte, error) {
	return c.doAt(ctx, c.base, method, path, contentType, body)
}

// write POSTs a registration where the Router says (the leader, once a
// follower named it) and learns from the answer. A leader that cannot be
// reached is dropped and the write sent to the client's own node, which
// forwards it: registration is idempotent, so a write the leader did take
// is answered there with its entry. base is where the answer came from.
func (c *Client) write(ctx context.Context, path, contentType string, body []byte) (base *url.URL, resp *http.Response, answer []byte, err error) {
	base, err = c.writes.Send(ctx, func(base *url.URL) error {
		var err error
		resp, answer, err = c.doAt(ctx, base, http.MethodPost, path, contentType, body)
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	c.writes.Observe(resp.Header)
	return base, resp, answer, nil
}

func (c *Client) doAt(ctx context.Context, base *url.URL, method, path, contentType string, body []byte) (*http.Response, []byte, error) {
	u, err := base.Parse(path)
	if err != nil {
		return nil, nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading the response: %w", method, u.Redacted(), err)
	}
	return resp, b, nil
}

// retryAfter reads Retry-After in seconds (HTTP-dates are rare for this
// API; they fall back to the default backoff).
func retryAfter(resp *http.Response) time.Duration {
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// jitter returns the wait before attempt: Retry-After if given, else an
// exponential backoff from 100 ms; capped at MaxBackoff; scaled by a random
// factor in [0.5, 1.5) so that many clients do not poll in step.
func (c *Client) jitter(retryAfter time.Duration, attempt int) time.Duration {
	d := retryAfter
	if d <= 0 {
		d = 100 * time.Millisecond << min(attempt, 8)
	}
	d = min(d, c.MaxBackoff)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func entryID(loc string) string {
	if i := strings.LastIndex(loc, "/entries/"); i >= 0 {
		return strings.TrimSuffix(loc[i+len("/entries/"):], "/statement")
	}
	return ""
}
