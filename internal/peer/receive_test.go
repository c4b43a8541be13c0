package peer

import (
	"encoding/base64"
	"errors"
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
