package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func answerWith(leader string) http.Header {
	h := http.Header{}
	if leader != "" {
		h.Set(HeaderLeader, leader)
	}
	return h
}

// TestRouterFollowsTheNamedLeader: writes go home until an answer names a
// leader; only a plain base URL of the home scheme is followed; naming home
// again, or failing to reach the leader, sends writes home, and a leader
// that failed is not followed again for a minute.
func TestRouterFollowsTheNamedLeader(t *testing.T) {
	home := mustURL(t, "https://10.0.0.1:8000")
	r := NewRouter(home)
	now := time.Unix(1_000_000, 0)
	r.now = func() time.Time { return now }

	if got := r.Write(); got != home {
		t.Fatalf("a new Router writes to %s, want home", got)
	}
	r.Observe(answerWith(""))
	if got := r.Write(); got != home {
		t.Fatalf("after an answer without %s, writes go to %s, want home", HeaderLeader, got)
	}
	for _, bad := range []string{
		"http://10.0.0.2:8000",          // another scheme than home's
		"https://10.0.0.2:8000/entries", // not a base URL
		"https://u:p@10.0.0.2:8000",     // credentials
		"https://10.0.0.2:8000?x=1",
		"https://",
		"10.0.0.2:8000",
		"%zz",
	} {
		r.Observe(answerWith(bad))
		if got := r.Write(); got != home {
			t.Errorf("%s: %q was followed (writes go to %s)", HeaderLeader, bad, got)
		}
	}
	r.Observe(answerWith("https://10.0.0.2:8000/"))
	if got := r.Write().String(); got != "https://10.0.0.2:8000" {
		t.Fatalf("writes go to %s after the leader was named, want https://10.0.0.2:8000", got)
	}
	if r.Failed(home) {
		t.Error("a failed write to home asks for a retry at home")
	}
	r.Observe(answerWith("https://10.0.0.1:8000"))
	if got := r.Write(); got != home {
		t.Fatalf("naming home as the leader leaves writes at %s", got)
	}
	r.Observe(answerWith("https://10.0.0.3:8000"))
	leader := r.Write()
	if !r.Failed(leader) {
		t.Fatal("a failed write to the leader does not ask for a retry at home")
	}
	if got := r.Write(); got != home {
		t.Fatalf("after the leader failed, writes go to %s, want home", got)
	}
	r.Observe(answerWith("https://10.0.0.3:8000"))
	if got := r.Write(); got != home {
		t.Fatalf("a leader that failed was followed again at once (writes go to %s)", got)
	}
	now = now.Add(shunFor + time.Second)
	r.Observe(answerWith("https://10.0.0.3:8000"))
	if got := r.Write().String(); got != "https://10.0.0.3:8000" {
		t.Fatalf("a minute after it failed, the leader is not followed (writes go to %s)", got)
	}
}

// TestRegisterGoesToTheNamedLeader: a registration answered by a follower
// naming the leader sends the next one to the leader, whose Location is
// polled at the leader; when the leader stops answering, the registration
// is sent home again and succeeds there.
func TestRegisterGoesToTheNamedLeader(t *testing.T) {
	var leaderPosts, leaderPolls, homePosts atomic.Int32
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/entries":
			leaderPosts.Add(1)
			w.Header().Set("Location", "/entries/pending")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodGet && r.URL.Path == "/entries/pending":
			leaderPolls.Add(1)
			_, _ = w.Write([]byte("receipt from the leader"))
		default:
			http.Error(w, "unexpected", http.StatusTeapot)
		}
	}))
	defer leader.Close()
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/entries" {
			// The pending entry is unknown here: a poll sent home would
			// find it lost.
			http.NotFound(w, r)
			return
		}
		homePosts.Add(1)
		answerFromHome(w, leader.URL)
	}))
	defer home.Close()

	c, err := New(home.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := c.Register(ctx, []byte("statement 1"))
	if err != nil || string(reg.Receipt) != "receipt relayed home" {
		t.Fatalf("first registration: %v %+v", err, reg)
	}
	reg, err = c.Register(ctx, []byte("statement 2"))
	if err != nil || string(reg.Receipt) != "receipt from the leader" {
		t.Fatalf("second registration: %v %+v, want the leader's receipt", err, reg)
	}
	if homePosts.Load() != 1 || leaderPosts.Load() != 1 || leaderPolls.Load() != 1 {
		t.Fatalf("home took %d, the leader %d (polled %d), want 1, 1 and 1", homePosts.Load(), leaderPosts.Load(), leaderPolls.Load())
	}
	leader.Close()
	reg, err = c.Register(ctx, []byte("statement 3"))
	if err != nil || string(reg.Receipt) != "receipt relayed home" {
		t.Fatalf("with the leader gone: %v %+v, want the registration taken home", err, reg)
	}
	if _, err := c.Register(ctx, []byte("statement 4")); err != nil || homePosts.Load() != 3 {
		t.Fatalf("the next registration: %v, home took %d in all, want 3 (the failed leader is not followed again)", err, homePosts.Load())
	}
}

// TestUnreachableLeaderCostsAShortConnect: a leader named at an address
// that drops the client's packets (the connect never answers) holds a
// registration for leaderDialTimeout, not Go's default 30 s, and the
// registration is then taken home. Home's connects keep the default.
func TestUnreachableLeaderCostsAShortConnect(t *testing.T) {
	defer func(d time.Duration) { leaderDialTimeout = d }(leaderDialTimeout)
	leaderDialTimeout = 200 * time.Millisecond
	const blackHole = "192.0.2.1:8443" // TEST-NET-1: never dialled for real here
	// The home server is plain HTTP, so the leader is named in http too
	// (Router.usable wants home's scheme).
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerFromHome(w, "http://"+blackHole)
	}))
	defer home.Close()
	c, err := New(home.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	budgets := map[string]time.Duration{}
	real := (&net.Dialer{}).DialContext
	c.http.Transport.(*http.Transport).DialContext = dialer(hostPort(c.base), func(ctx context.Context, network, addr string) (net.Conn, error) {
		deadline, ok := ctx.Deadline()
		mu.Lock()
		budgets[addr] = time.Until(deadline)
		mu.Unlock()
		if !ok {
			t.Errorf("connect to %s without a deadline", addr)
		}
		if addr == blackHole {
			<-ctx.Done() // the packets are dropped
			return nil, ctx.Err()
		}
		return real(ctx, network, addr)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 2 {
		reg, err := c.Register(ctx, []byte(fmt.Sprintf("statement %d", i)))
		if err != nil || string(reg.Receipt) != "receipt relayed home" {
			t.Fatalf("registration %d: %v %+v, want it taken home", i, err, reg)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if b, ok := budgets[blackHole]; !ok || b > leaderDialTimeout {
		t.Errorf("the named leader's connect had %v (tried: %v); want at most %v", b, ok, leaderDialTimeout)
	}
	if b := budgets[hostPort(c.base)]; b < 20*time.Second {
		t.Errorf("home's connect had %v; want Go's default of 30 s", b)
	}
}

// answerFromHome answers a write as a follower that forwarded it: the
// relayed receipt, and the leader named.
func answerFromHome(w http.ResponseWriter, leader string) {
	w.Header().Set(HeaderLeader, leader)
	w.Header().Set("Location", "/entries/from-home")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte("receipt relayed home"))
}
