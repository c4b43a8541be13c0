package gov

import (
	"errors"
	"github.com/charterlog/charter/internal/govwire"
	"strings"
	"testing"
)

// An ack names its digest as CCF's classic API does (state_digest) or as
// CCF 7's does (stateDigest), exactly once.
func TestAckPayloadNames(t *testing.T) {
	d := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		payload string
		ok      bool
	}{
		{`{"state_digest": "` + d + `"}`, true},
		{`{"stateDigest": "` + d + `"}`, true},
		{`{"state_digest": "` + d + `", "stateDigest": "` + d + `"}`, false},
		{`{}`, false},
		{`{"statedigest": "` + d + `"}`, false},
		{`{"stateDigest": "` + strings.ToUpper(d) + `"}`, false},
		{`{"stateDigest": 7}`, false},
	} {
		a, err := (&govwire.Request{Type: govwire.MsgAck, Payload: []byte(tc.payload)}).Ack()
		switch {
		case tc.ok && (err != nil || a.StateDigest != d):
			t.Errorf("%s: %v, %+v", tc.payload, err, a)
		case !tc.ok && !errors.Is(err, govwire.ErrMalformed):
			t.Errorf("%s: %v, want govwire.ErrMalformed", tc.payload, err)
		}
	}
}
