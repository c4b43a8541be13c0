package identity

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/log"
	"golang.org/x/mod/sumdb/note"
)

// TestTreeHeadSigner: a checkpoint it signs gives a receipt that verifies
// under the service key and binds its tree size, and a signed note that
// verifies under the note verifier key and names the same tree.
func TestTreeHeadSigner(t *testing.T) {
	dir := t.TempDir()
	sealer, err := OpenSealer("virtual", dir, filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := LoadOrCreate(dir, "treehead.example", true, sealer)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewTreeHeadSigner(id, "treehead.example")
	if err != nil {
		t.Fatal(err)
	}
	entry := bytes.Repeat([]byte{7}, 32)
	root := sha256.Sum256(append([]byte{0}, entry...)) // a one-leaf tree
	at := time.Unix(1750000000, 0)
	cp, err := s.SignTreeHead(1, root, at)
	if err != nil {
		t.Fatal(err)
	}
	if cp.TreeSize != 1 || cp.Root != root || cp.IssuedAt != at.Unix() {
		t.Fatalf("checkpoint %+v", cp)
	}
	key, err := cose.NewKey(&id.ServiceKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cose.NewInclusionReceipt(cp.Protected, cp.Signature, 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cose.VerifyInclusion(rc, entry, cose.KeySet{key})
	if err != nil || !v.SizeBound || v.TreeSize != 1 || !bytes.Equal(v.Root, root[:]) {
		t.Fatalf("receipt under the signed tree head: %+v, %v", v, err)
	}
	verifier, err := note.NewVerifier(id.NoteVerifier)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := log.OpenCheckpointNote(cp.Note, verifier)
	if err != nil || pc.Size != 1 || pc.Root != root || pc.Origin != "treehead.example" {
		t.Fatalf("signed note: %+v, %v", pc, err)
	}
}
