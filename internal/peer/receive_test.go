package peer

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/replication"
)

// TestSnapshotMessage: the snapshot header is refused, before replication
// sees it, when it is missing, not standard base64, or longer than one raft
// message may be; the refusal names the header (the peer reads it in the
// 400's detail).
func TestSnapshotMessage(t *testing.T) {
	for name, h := range map[string]string{
		"missing":    "",
		"not base64": "!!",
		"too long":   base64.StdEncoding.EncodeToString(make([]byte, replication.MaxMessageBytes+1)),
	} {
		_, err := snapshotMessage(h)
		if !errors.Is(err, replication.ErrBadMessage) || !strings.Contains(err.Error(), headerSnapshotMessage) {
			t.Errorf("%s: %v, want ErrBadMessage naming %s", name, err, headerSnapshotMessage)
		}
	}
	raw := []byte("a message")
	if got, err := snapshotMessage(base64.StdEncoding.EncodeToString(raw)); err != nil || string(got) != string(raw) {
		t.Errorf("a well-formed header: %q, %v", got, err)
	}
}

// TestReadBody: a body is read whole into a buffer of its stated length;
// one shorter than it says is an error; one that states no length, or more
// than the limit, is read up to one byte past the limit, so the caller sees
// that it is over.
func TestReadBody(t *testing.T) {
	req := func(body string, length int64) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "https://node/", io.NopCloser(strings.NewReader(body)))
		r.ContentLength = length
		return r
	}
	got, err := readBody(req("abcdef", 6), 10)
	if err != nil || string(got) != "abcdef" || cap(got) != 6 {
		t.Fatalf("stated length: %q (cap %d), %v", got, cap(got), err)
	}
	if _, err := readBody(req("abc", 6), 10); err == nil {
		t.Fatal("a body shorter than its stated length was read")
	}
	for _, length := range []int64{-1, 11} {
		got, err := readBody(req(strings.Repeat("x", 20), length), 10)
		if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("x"), 11)) {
			t.Fatalf("length %d: read %d bytes (%v), want the limit and one more", length, len(got), err)
		}
	}
}
