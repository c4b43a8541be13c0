// Package e2e holds Charter's end-to-end tests: they build cmd/charterd and
// cmd/charter, run the node as a real process on a loopback port with a
// temporary data directory, and talk to it over HTTPS as clients would
// (the README walkthrough, bad input, kill -9 durability, the HTTP API).
// The package has no non-test code.
package e2e
