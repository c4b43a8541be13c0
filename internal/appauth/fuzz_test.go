package appauth_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/appauth"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/veraison/go-cose"
)

// FuzzAuthenticateCOSE feeds arbitrary bodies to user_cose_sign1. Nothing
// may panic; a body is accepted only as the registered user, and then the
// caller's content is the message's payload. Seeds: a valid request, one
// with a flipped signature bit, one with extra headers, and broken
// envelopes.
func FuzzAuthenticateCOSE(f *testing.F) {
	s := fakeState{}
	user := valid(f)
	s.set(govwire.MapUserCerts, user.id, user.pem)
	a := &appauth.Authenticator{State: s, Now: func() time.Time { return now }}
	ps := []appauth.Policy{{Name: appauth.UserCOSESign1}}

	good := signCOSE(f, user.key, cose.AlgorithmES256, []byte(user.id), nil, []byte(`{"a":1}`))
	flipped := append([]byte{}, good...)
	flipped[len(flipped)-1] ^= 0x80
	f.Add(good)
	f.Add(flipped)
	f.Add(signCOSE(f, user.key, cose.AlgorithmES256, []byte(user.id), map[any]any{"ccf.msg.type": "x", "ccf.msg.created_at": int64(1)}, []byte{}))
	f.Add(good[1:])
	f.Add(good[:len(good)/2])
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, body []byte) {
		r := request(nil)
		r.Header.Set("Content-Type", "application/cose")
		caller, err := a.Authenticate(r, body, ps)
		if err != nil {
			var ae *appauth.Error
			if !errors.As(err, &ae) {
				t.Fatalf("not an authentication error: %v", err)
			}
			return
		}
		if caller["id"] != user.id {
			t.Fatalf("accepted as %v", caller["id"])
		}
		var msg cose.Sign1Message
		if err := msg.UnmarshalCBOR(body); err != nil {
			t.Fatalf("accepted a body go-cose refuses: %v", err)
		}
		if got := caller["cose"].(map[string]any)["content"].([]byte); !bytes.Equal(got, msg.Payload) {
			t.Fatalf("content %q, payload %q", got, msg.Payload)
		}
	})
}
