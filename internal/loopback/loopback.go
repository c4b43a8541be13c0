// Package loopback picks the loopback TCP ports of a local network of
// child processes (`charterd cluster`, the end-to-end tests' clusters),
// whose addresses must be written into their configurations before they
// start.
//
// A port the kernel hands out for 127.0.0.1:0 comes from its ephemeral
// range, the same range every outgoing connection on the machine takes
// its local port from; between the pick and the node's bind, any
// connection (a test's client, another package's test) may take it, and
// the node then fails to start with "address already in use". Ports picks
// outside that range, where only a listener that asks for a port by
// number can take it.
package loopback

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port Ports picks: below it sit well-known services.
const lowest = 10000

// Ports returns n distinct loopback ports that were free when picked,
// chosen at random outside the kernel's ephemeral port range. They are
// released before Ports returns, so a listener that asks for one of them
// by number could still take it; nothing else will.
func Ports(n int) ([]int, error) {
	lo, hi := candidateRange(ephemeralRange())
	if hi-lo < 100*n {
		return nil, fmt.Errorf("loopback: only %d ports outside the ephemeral range", hi-lo)
	}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	var ports []int
	seen := map[int]bool{}
	for tries := 0; len(ports) < n; tries++ {
		if tries >= 100*n {
			return nil, errors.New("loopback: no free port found outside the ephemeral range")
		}
		p := lo + rand.IntN(hi-lo)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		held = append(held, l)
		ports = append(ports, p)
	}
	return ports, nil
}

// ephemeralRange is the kernel's range for automatically assigned ports:
// Linux's ip_local_port_range, else IANA's 49152–65535 (BSDs, macOS,
// Windows).
func ephemeralRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && 0 < l && l <= h && h <= 65535 {
				return l, h
			}
		}
	}
	return 49152, 65535
}

// candidateRange is the larger stretch [lo, hi) of ports from lowest to
// 65535 that the ephemeral range [elo, ehi] leaves.
func candidateRange(elo, ehi int) (lo, hi int) {
	below := max(0, elo-lowest)
	above := max(0, 65535-ehi)
	if below >= above {
		return lowest, max(lowest, elo)
	}
	return max(lowest, ehi+1), 65536
}
