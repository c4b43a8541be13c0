package registry

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/charterlog/charter/log"
)

// getTile serves C2SP tlog-tiles (c2sp.org/tlog-tiles): the Merkle tree's
// tiles at tile/<L>/<N>[.p/<W>] and the leaves' entries as bundles at
// tile/entries/<N>[.p/<W>], for the tree of the newest checkpoint (served
// at /checkpoint). Every tile within that tree is served, partial ones of
// any width included: none of them can change.
func (s *Service) getTile(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	t, err := log.ParseTilePath(path)
	if err != nil {
		WriteProblem(w, badRequest("InvalidInput", fmt.Sprintf("%q is not a tile path: want tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>] (c2sp.org/tlog-tiles)", path)))
		return
	}
	cp := s.latestCheckpoint(w)
	if cp == nil {
		return
	}
	if !log.TileWithin(t, int64(cp.TreeSize)) {
		WriteProblem(w, &Problem{Status: http.StatusNotFound, Title: "NotFound",
			Detail: fmt.Sprintf("%s is not within the tree of the newest checkpoint (size %d)", path, cp.TreeSize)})
		return
	}
	var body []byte
	if t.L < 0 {
		var entries [][32]byte
		entries, err = s.Ledger.LeafEntries(uint64(t.N)<<log.TileHeight, t.W)
		body = log.EntryBundle(entries)
	} else {
		body, err = s.Ledger.ReadTile(t)
	}
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	// "This endpoint is immutable, so its caching headers SHOULD be
	// long-lived."
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(body)
}
