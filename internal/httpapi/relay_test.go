package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// TestRelayFailuresAreAnswered: whatever becomes of the leader while a
// follower relays a write to it, the client gets 503 with Retry-After in
// the route's error shape, never a dropped connection; and a leader's
// answer is relayed intact.
func TestRelayFailuresAreAnswered(t *testing.T) {
	leaders := map[string]http.HandlerFunc{
		// The leader sends its status line and part of the body, and dies.
		"dies mid-answer": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		},
		// The leader reads the request and dies without answering.
		"dies before answering": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		},
		"answers": func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/x-test")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(append([]byte("echo:"), body...))
		},
	}
	type shape int
	const (
		cborShape shape = iota
		jsonShape
	)
	paths := map[string]shape{
		"/entries":                      cborShape,
		"/gov/members/proposals:create": jsonShape,
		"/node/join":                    jsonShape,
		"/gov/proposals":                jsonShape,
		"/gov/proposals/abc/ballots":    jsonShape,
		"/app/log/private":              jsonShape,
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL, _ := url.Parse(gone.URL)
	gone.Close()

	for name, h := range leaders {
		leader := httptest.NewServer(h)
		leader.Config.ErrorLog = nil
		target, _ := url.Parse(leader.URL)
		testRelay(t, name, target, paths, func(t *testing.T, path string, sh shape, resp *http.Response, body []byte) {
			if name == "answers" {
				if resp.StatusCode != http.StatusCreated || string(body) != "echo:request" || resp.Header.Get("Content-Type") != "application/x-test" {
					t.Errorf("relayed %d %q (%s), want 201 echo:request", resp.StatusCode, body, resp.Header.Get("Content-Type"))
				}
				// The leader as named (its recorded URL, not the address
				// this node dials), read by the client's Router by its own
				// name.
				if got, want := resp.Header.Get(client.HeaderLeader), "https://leader.example:8443"; got != want {
					t.Errorf("relayed answer names the leader %q, want %q", got, want)
				}
				return
			}
			checkRelay503(t, sh == jsonShape, resp, body, "outcome is unknown")
		})
		leader.Close()
	}
	testRelay(t, "unreachable", goneURL, paths, func(t *testing.T, path string, sh shape, resp *http.Response, body []byte) {
		checkRelay503(t, sh == jsonShape, resp, body, "not delivered")
	})
}

// testRelay serves relay to target behind chi's Recoverer, as the node
// does, and POSTs to each path through it.
func testRelay[S comparable](t *testing.T, name string, target *url.URL, paths map[string]S, check func(*testing.T, string, S, *http.Response, []byte)) {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.HandleFunc("/*", func(w http.ResponseWriter, req *http.Request) {
		relay(w, req, target, "https://leader.example:8443/", http.DefaultTransport.(*http.Transport).Clone(), 1, 2, slog.New(slog.DiscardHandler))
	})
	follower := httptest.NewServer(r)
	defer follower.Close()
	for path, sh := range paths {
		t.Run(name+path, func(t *testing.T) {
			resp, err := follower.Client().Post(follower.URL+path, "application/cose", strings.NewReader("request"))
			if err != nil {
				t.Fatalf("POST through the follower: %v (a dropped connection)", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the answer: %v (a dropped connection)", err)
			}
			check(t, path, sh, resp, body)
		})
	}
}

func checkRelay503(t *testing.T, json bool, resp *http.Response, body []byte, detail string) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("answered %d with Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	var title, got string
	if json {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := jsonUnmarshal(body, &e); err != nil || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("answer %q (%s) is not CCF's JSON error: %v", body, resp.Header.Get("Content-Type"), err)
		}
		title, got = e.Error.Code, e.Error.Message
	} else {
		if ct := resp.Header.Get("Content-Type"); ct != registry.ContentTypeProblem {
			t.Fatalf("Content-Type %q, want %s", ct, registry.ContentTypeProblem)
		}
		p := registry.DecodeProblem(resp.StatusCode, body)
		title, got = p.Title, p.Detail
	}
	if title != "ServiceUnavailable" || !strings.Contains(got, detail) {
		t.Errorf("answered %s %q, want ServiceUnavailable saying %q", title, got, detail)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.NewDecoder(bytes.NewReader(b)).Decode(v) }
