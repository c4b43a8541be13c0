// Package apphost runs the JS application governance deployed
// (set_js_app) as ledger transactions: it keeps the deployed bundle
// compiled, runs a request's handler against the committed state, and
// commits what it wrote as one TxApp transaction whose reads are checked
// when it applies, running the request again when it lost a race. It
// encrypts the app's private maps under the ledger secret (cipher.go),
// and serves ccf.consensus and ccf.historical from the ledger.
//
// It speaks no HTTP: the edge authenticates a request, turns it into an
// app.Request, and maps this package's errors to CCF's error bodies.
// See spec/apps.md.
package apphost
