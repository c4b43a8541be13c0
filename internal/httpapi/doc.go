// Package httpapi is a node's HTTP edge: the router and its middleware
// (metrics, readiness, forwarding writes to the leader, peers only), the
// /node, /gov, /app and /node/join handlers, and the answers the packages
// below get for their errors (problems.go): apphost's in CCF's JSON error
// shape, governance's, join's refusals and the peers' as concise problem
// details (CCF's JSON on the classic governance routes). It mounts the
// SCRAPI routes (registry), which still answer their own errors.
//
// The node wires it (Config); it holds no state of its own beyond what
// Config gives it.
package httpapi
