package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// A LedgerChunk is one complete ledger chunk file a node serves.
type LedgerChunk struct {
	Name  string `json:"name"`
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
	Size  int64  `json:"size"`
}

// LedgerChunks lists the node's complete ledger chunks, in order
// (GET /node/ledger/chunks).
func (c *Client) LedgerChunks(ctx context.Context) ([]LedgerChunk, error) {
	b, err := c.get(ctx, "/node/ledger/chunks")
	if err != nil {
		return nil, err
	}
	var out struct {
		Chunks []LedgerChunk `json:"chunks"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("GET /node/ledger/chunks: %w", err)
	}
	return out.Chunks, nil
}

// DownloadChunk writes chunk name, of size bytes as LedgerChunks listed
// it, to w from byte offset on (a Range request, to resume a download),
// and returns how many bytes it wrote. It streams (a chunk may be larger
// than what the client buffers) and reads no more than the chunk's size:
// a server that sends more is refused, not written to disk.
func (c *Client) DownloadChunk(ctx context.Context, name string, size, offset int64, w io.Writer) (int64, error) {
	u, err := c.base.Parse("/node/ledger/chunks/" + url.PathEscape(name))
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && offset == 0, resp.StatusCode == http.StatusPartialContent && offset > 0:
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, problemFrom(resp, body)
	}
	want := size - offset
	n, err := io.Copy(w, io.LimitReader(resp.Body, want))
	if err != nil {
		return n, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	if n != want {
		return n, fmt.Errorf("GET %s: %d bytes, want %d", u.Redacted(), n, want)
	}
	if extra, _ := resp.Body.Read(make([]byte, 1)); extra > 0 {
		return n, fmt.Errorf("GET %s: more than the chunk's %d bytes", u.Redacted(), size)
	}
	return n, nil
}
