//go:build race

package e2e

// raceEnabled: the test binary runs under the race detector, so the node is
// built with -race too and `make test` exercises the server under it.
const raceEnabled = true
