package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

// maxRelayedResponse bounds the leader's answer a follower holds before it
// relays it. Answers to writes are small (a receipt, problem details, a
// proposal's state, an app's reply); a larger one is streamed, and only its
// tail can then fail as a dropped connection.
const maxRelayedResponse = 16 << 20

// relay sends r to the leader at target through transport and relays the
// answer, naming the leader as named (headerLeader; none if named is not
// an absolute URL). Every failure is answered, never a dropped
// connection: 503 with Retry-After, in the shape of the route
// (relayProblem). The leader's
// answer is read whole before any of it is relayed, because
// httputil.ReverseProxy, once it has written the status line, can only
// abort (panic(http.ErrAbortHandler), which chi's Recoverer re-panics and
// net/http turns into an EOF or an HTTP/2 RST_STREAM) when the leader dies
// before the body is complete.
func relay(w http.ResponseWriter, r *http.Request, target *url.URL, named string, transport http.RoundTripper, leader uint64, self uint64, logger *slog.Logger) {
	var namedBase string
	if u, err := url.Parse(named); err == nil && u.Scheme != "" && u.Host != "" {
		namedBase = (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
	}
	// sent is set once the request's headers reached the wire: from then
	// on the leader may have acted on it.
	var sent atomic.Bool
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(headerForwarded, fmt.Sprint(self))
			pr.Out = pr.Out.WithContext(httptrace.WithClientTrace(pr.Out.Context(), &httptrace.ClientTrace{
				WroteHeaders: func() { sent.Store(true) },
			}))
		},
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			// Name the leader, so that a client may send its next writes
			// there and spare this node the relay (client.Router).
			if namedBase != "" {
				resp.Header.Set(headerLeader, namedBase)
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxRelayedResponse))
			if err != nil {
				resp.Body.Close()
				return fmt.Errorf("reading the leader's answer: %w", err)
			}
			if len(body) < maxRelayedResponse {
				resp.Body.Close()
				resp.Body = io.NopCloser(bytes.NewReader(body))
				resp.ContentLength = int64(len(body))
				return nil
			}
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			logger.Warn("forwarding to the leader failed", "leader", leader, "path", r.URL.Path, "sent", sent.Load(), "err", err)
			writeRelayFailure(w, r.URL.Path, sent.Load())
		},
	}
	proxy.ServeHTTP(w, r)
}
