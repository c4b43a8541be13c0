package client

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// HeaderLeader is the response header with which a follower that forwarded
// a write to the leader names the leader's base URL. A client that sends
// its next writes there saves the follower the relay (it receives, sends
// on and relays back every byte) and the cluster that CPU; one that
// ignores the header is forwarded as before.
const HeaderLeader = "Charter-Leader"

// shunFor is how long a Router ignores a leader it could not reach: the
// node the client was given keeps forwarding meanwhile.
const shunFor = time.Minute

// leaderDialTimeout bounds a TCP connect to any node but home: a leader
// named in HeaderLeader at an address that drops the client's packets (one
// only the nodes can reach) costs this, once per shunFor, before the write
// goes home; Go's default, 30 s, would hold the write that long. Home keeps
// the default: it is the node the client was told to use.
var leaderDialTimeout = 3 * time.Second

// dialer connects to home with Go's default timeout and to any other node
// within leaderDialTimeout. dial is the connect itself (nil: a net.Dialer
// with keep-alives, as http.DefaultTransport's); it is given the deadline.
func dialer(home string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		timeout := 30 * time.Second
		if addr != home {
			timeout = leaderDialTimeout
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return dial(ctx, network, addr)
	}
}

// hostPort is u's host:port as a transport dials it, with the scheme's
// default port when u names none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// A Router picks where a client sends its writes: the leader its node named
// in HeaderLeader, else the node it was given (home). Reads stay with home.
// Following the header is safe because the client's TLS roots do not
// change: the named URL is trusted only if it presents a certificate the
// service issued, that is, if it is a node of the same service. Use it
// for idempotent writes only (registrations): Failed asks for a retry at
// home even when the write that failed may have reached the leader. A
// Router is safe for concurrent use.
type Router struct {
	home *url.URL
	now  func() time.Time

	mu          sync.Mutex
	leader      *url.URL
	shunned     string // a leader URL not to follow until shunnedTill
	shunnedTill time.Time
}

// NewRouter returns a Router whose writes go to home until a response
// names a leader.
func NewRouter(home *url.URL) *Router { return &Router{home: home, now: time.Now} }

// Home is the node the Router was given.
func (r *Router) Home() *url.URL { return r.home }

// Write returns the base URL for the next write.
func (r *Router) Write() *url.URL {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader != nil {
		return r.leader
	}
	return r.home
}

// Observe learns from the headers of an answer to a write: a HeaderLeader
// naming a usable base URL becomes the target of the next writes. An
// answer without it changes nothing: either the node answered as leader,
// or it is an older node that forwards without naming the leader.
func (r *Router) Observe(h http.Header) {
	v := h.Get(HeaderLeader)
	if v == "" {
		return
	}
	u, ok := r.usable(v)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if u.String() == r.shunned && r.now().Before(r.shunnedTill) {
		return
	}
	if u.String() == r.home.String() {
		r.leader = nil
		return
	}
	r.leader = u
}

// usable parses a HeaderLeader value: an absolute base URL with the home
// URL's scheme and nothing but a host. Anything else is ignored, as if the
// header were absent.
func (r *Router) usable(v string) (*url.URL, bool) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != r.home.Scheme || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, false
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, true
}

// Failed reports that a write to base got no answer (the connection failed).
// If base is the leader the Router follows, it goes back to home and
// ignores that leader for a minute, so that a leader the client cannot
// reach (an address only the nodes can dial) costs one failed attempt a
// minute, not one per write. It reports whether the write should be
// retried at home.
func (r *Router) Failed(base *url.URL) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader == nil || base.String() != r.leader.String() {
		return false
	}
	r.shunned, r.shunnedTill = r.leader.String(), r.now().Add(shunFor)
	r.leader = nil
	return true
}

// Send calls send with the base URL for a write (Write). If the call gets
// no answer from the leader the Router follows, the Router drops that
// leader (Failed) and, unless ctx has ended, calls send again with home.
// It returns the base of the last call and that call's error; the caller
// then Observes the answer's headers.
func (r *Router) Send(ctx context.Context, send func(base *url.URL) error) (*url.URL, error) {
	base := r.Write()
	err := send(base)
	if err != nil && ctx.Err() == nil && r.Failed(base) {
		base = r.Home()
		err = send(base)
	}
	return base, err
}
