package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsOutsideEphemeralRange(t *testing.T) {
	elo, ehi := ephemeralRange()
	ports, err := Ports(8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p >= elo && p <= ehi {
			t.Errorf("port %d is in the ephemeral range %d–%d", p, elo, ehi)
		}
		if p < lowest || p > 65535 || seen[p] {
			t.Errorf("port %d out of bounds or repeated in %v", p, ports)
		}
		seen[p] = true
		// Released: the caller can bind it.
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d was not released: %v", p, err)
			continue
		}
		l.Close()
	}
	// A listener on 127.0.0.1:0 gets an ephemeral port, never one of these.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if p := l.Addr().(*net.TCPAddr).Port; p < elo || p > ehi {
		t.Errorf("the kernel gave 127.0.0.1:0 port %d, outside the range read, %d–%d", p, elo, ehi)
	}
}

func TestCandidateRange(t *testing.T) {
	for _, c := range []struct{ elo, ehi, lo, hi int }{
		{32768, 60999, 10000, 32768}, // Linux's default
		{49152, 65535, 10000, 49152}, // IANA's
		{1024, 20000, 20001, 65536},  // a range low down leaves the top
	} {
		if lo, hi := candidateRange(c.elo, c.ehi); lo != c.lo || hi != c.hi {
			t.Errorf("candidateRange(%d, %d) = [%d, %d), want [%d, %d)", c.elo, c.ehi, lo, hi, c.lo, c.hi)
		}
	}
}
