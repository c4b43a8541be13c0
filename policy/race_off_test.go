//go:build !race

package policy_test

// limitSlack: without the race detector a call stops within twice its
// limit, as the sandbox promises.
const limitSlack = 2
