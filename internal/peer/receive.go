package peer

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"

	"github.com/charterlog/charter/internal/replication"
)

// The receiving side of the peer routes: what a request carries where
// (headers, body) and how much of it is read. The edge (internal/httpapi)
// routes the requests here, once it has identified the calling node, and
// answers the errors; replication decides what the messages do.

// ReceiveRaft reads a POST to PathRaft, a batch of raft messages from the
// peer from, and hands it to n.
func ReceiveRaft(n *replication.Node, r *http.Request, from replication.Sender) error {
	body, err := readBody(r, replication.MaxRequestBytes)
	if err != nil {
		return fmt.Errorf("%w: reading the body: %v", replication.ErrBadMessage, err)
	}
	return n.ReceiveRaft(r.Context(), body, r.Header.Get(headerPeerURL), from)
}

// ReceiveSnapshot reads a POST to PathSnapshot, a MsgSnap in a header and
// the image as the body, and hands both to n, which checks the sender
// before it reads a byte of the image.
func ReceiveSnapshot(n *replication.Node, r *http.Request, from replication.Sender) error {
	msg, err := snapshotMessage(r.Header.Get(headerSnapshotMessage))
	if err != nil {
		return err
	}
	return n.ReceiveSnapshot(r.Context(), msg, r.Header.Get(headerPeerURL), r.Body, from)
}

// snapshotMessage decodes the header that carries a snapshot's MsgSnap,
// bounded as one raft message is.
func snapshotMessage(h string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil || len(raw) == 0 || len(raw) > replication.MaxMessageBytes {
		return nil, fmt.Errorf("%w: missing or malformed %s header", replication.ErrBadMessage, headerSnapshotMessage)
	}
	return raw, nil
}

// readBody reads r's body, up to limit+1 bytes so that the caller sees a
// body over the limit. A body that states its length within the limit is
// read into one buffer of that size: a leader's appends are hundreds of
// KiB under load, and io.ReadAll, growing from 512 bytes, allocated and
// copied each about twice over. A length the body does not match is an
// error.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength < 0 || r.ContentLength > limit {
		return io.ReadAll(io.LimitReader(r.Body, limit+1))
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return nil, err
	}
	return body, nil
}
