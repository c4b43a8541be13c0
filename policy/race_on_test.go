//go:build race

package policy_test

// limitSlack widens the tests' bounds on how far past its time limit a
// call may run: the race detector slows every step the interrupt waits
// for several times, and the process's CPU time that the tests read also
// counts its instrumentation on other threads.
const limitSlack = 3
