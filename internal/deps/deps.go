package deps

import (
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/fxamacker/cbor/v2"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/google/go-sev-guest/abi"
	_ "github.com/grafana/sobek"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/transparency-dev/merkle"
	_ "github.com/transparency-dev/merkle/proof"
	_ "github.com/transparency-dev/merkle/rfc6962"
	_ "github.com/veraison/go-cose"
	_ "go.etcd.io/raft/v3"
	_ "golang.org/x/mod/sumdb/note"
	_ "golang.org/x/mod/sumdb/tlog"
	_ "golang.org/x/sync/errgroup"
)
