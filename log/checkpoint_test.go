package log_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	clog "github.com/charterlog/charter/log"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "charter.example/log"

type noteKeys struct {
	signer   note.Signer
	verifier note.Verifier
}

func newNoteKeys(t testing.TB, name string) noteKeys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return noteKeys{s, v}
}

// signText signs arbitrary note text, for notes SignCheckpointNote would
// never produce.
func signText(t testing.TB, k noteKeys, text string) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: text}, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckpointNote(t *testing.T) {
	k := newNoteKeys(t, testOrigin)
	root := sha256.Sum256([]byte("root"))
	for _, size := range []uint64{0, 1, 12345, 1<<64 - 1} {
		msg, err := clog.SignCheckpointNote(testOrigin, size, root, k.signer)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(msg, []byte(clog.FormatCheckpointNote(testOrigin, size, root)+"\n")) {
			t.Fatalf("signed note does not start with its text and a blank line:\n%s", msg)
		}
		p, err := clog.OpenCheckpointNote(msg, k.verifier)
		if err != nil {
			t.Fatalf("OpenCheckpointNote(size %d): %v", size, err)
		}
		if p.Origin != testOrigin || p.Size != size || p.Root != root {
			t.Fatalf("opened %+v, want %s %d %x", p, testOrigin, size, root)
		}
	}
}

func TestCheckpointNoteRejects(t *testing.T) {
	k := newNoteKeys(t, testOrigin)
	root := sha256.Sum256([]byte("root"))
	b64 := base64.StdEncoding.EncodeToString(root[:])
	good, err := clog.SignCheckpointNote(testOrigin, 7, root, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	other := newNoteKeys(t, testOrigin)         // same name, other key
	otherName := newNoteKeys(t, "other.origin") // signs its own origin
	textSig := func(text string) []byte { return signText(t, k, text) }
	// A root whose base64 has non-zero padding bits: decodes to the same
	// 32 bytes under Go's lenient decoder but is not the canonical text.
	last := b64[len(b64)-2]
	i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", last)
	nonCanon := b64[:len(b64)-2] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i^1]) + "="
	if got, err := base64.StdEncoding.DecodeString(nonCanon); err != nil || !bytes.Equal(got, root[:]) {
		t.Fatalf("test setup: %q should decode to the root leniently (%v)", nonCanon, err)
	}

	for _, c := range []struct {
		name string
		msg  []byte
		v    note.Verifier
	}{
		{"wrong key", good, other.verifier},
		{"signed by another origin's key", func() []byte {
			b, _ := clog.SignCheckpointNote("other.origin", 7, root, otherName.signer)
			return b
		}(), k.verifier},
		{"altered size", bytes.Replace(good, []byte("\n7\n"), []byte("\n8\n"), 1), k.verifier},
		{"altered root", bytes.Replace(good, []byte(b64[:4]), []byte("AAAA"), 1), k.verifier},
		{"altered origin", bytes.Replace(good, []byte("charter.example"), []byte("charter.exampl3"), 1), k.verifier},
		{"size with a leading zero", textSig(testOrigin + "\n07\n" + b64 + "\n"), k.verifier},
		{"size 00", textSig(testOrigin + "\n00\n" + b64 + "\n"), k.verifier},
		{"size with a sign", textSig(testOrigin + "\n+7\n" + b64 + "\n"), k.verifier},
		{"negative size", textSig(testOrigin + "\n-7\n" + b64 + "\n"), k.verifier},
		{"empty size", textSig(testOrigin + "\n\n" + b64 + "\n"), k.verifier},
		{"size beyond uint64", textSig(testOrigin + "\n18446744073709551616\n" + b64 + "\n"), k.verifier},
		{"size with a space", textSig(testOrigin + "\n 7\n" + b64 + "\n"), k.verifier},
		{"non-canonical base64 root", textSig(testOrigin + "\n7\n" + nonCanon + "\n"), k.verifier},
		{"unpadded base64 root", textSig(testOrigin + "\n7\n" + strings.TrimRight(b64, "=") + "\n"), k.verifier},
		{"url base64 root", textSig(testOrigin + "\n7\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)) + "\n"), k.verifier},
		{"short root", textSig(testOrigin + "\n7\n" + base64.StdEncoding.EncodeToString(root[:31]) + "\n"), k.verifier},
		{"long root", textSig(testOrigin + "\n7\n" + base64.StdEncoding.EncodeToString(append(root[:], 0)) + "\n"), k.verifier},
		{"extension line", textSig(testOrigin + "\n7\n" + b64 + "\nextension\n"), k.verifier},
		{"two lines", textSig(testOrigin + "\n7\n"), k.verifier},
		{"origin is not the key name", textSig("charter.example/other\n7\n" + b64 + "\n"), k.verifier},
		{"oversize", textSig(testOrigin + "\n7\n" + b64 + "\n" + strings.Repeat("x", 17<<10) + "\n"), k.verifier},
		{"empty", nil, k.verifier},
		{"text only", []byte(clog.FormatCheckpointNote(testOrigin, 7, root)), k.verifier},
		{"signature removed", good[:bytes.Index(good, []byte("\n\n"))+2], k.verifier},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := clog.OpenCheckpointNote(c.msg, c.v)
			if err == nil {
				t.Fatalf("OpenCheckpointNote accepted %q as %+v", c.msg, p)
			}
			if !errors.Is(err, clog.ErrBadCheckpoint) {
				t.Fatalf("error %v is not ErrBadCheckpoint", err)
			}
		})
	}
}

// TestCheckpointNoteMangled changes every byte of a signed note to every
// other value and expects each result to be refused. Changes to the text or
// to the signature line's name, hash or signature bits all break the
// signature or the parse.
func TestCheckpointNoteMangled(t *testing.T) {
	t.Parallel()
	k := newNoteKeys(t, testOrigin)
	root := sha256.Sum256([]byte("mangle"))
	good, err := clog.SignCheckpointNote(testOrigin, 300, root, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	sigLine := bytes.LastIndex(good[:len(good)-1], []byte("\n")) + 1
	var malleable []string
	for i := range good {
		for d := 1; d < 256; d++ {
			bad := append([]byte(nil), good...)
			bad[i] ^= byte(d)
			p, err := clog.OpenCheckpointNote(bad, k.verifier)
			if err != nil {
				continue
			}
			if i >= sigLine {
				// Only the signature's base64 can change without the
				// signed text changing; record it for the test below.
				malleable = append(malleable, string(bad))
				continue
			}
			t.Fatalf("byte %d changed from %q to %q: note still opens as %+v", i, good[i], bad[i], p)
		}
	}
	t.Run("signature base64", func(t *testing.T) {
		if len(malleable) > 0 {
			t.Errorf("%d one-byte changes of the signature line still open, e.g.\n%s\nwas\n%s"+
				"(a signed checkpoint must have exactly one accepted byte form)",
				len(malleable), malleable[0], good)
		}
	})
}

// FuzzOpenCheckpointNote: never panics; whatever opens re-formats to the
// same text, so a checkpoint note has one accepted text per tree head.
func FuzzOpenCheckpointNote(f *testing.F) {
	// A fixed key so that the corpus stays valid between runs.
	k := fuzzKeys(f)
	root := sha256.Sum256([]byte("fuzz"))
	for _, size := range []uint64{0, 1, 77, 1<<64 - 1} {
		msg, err := clog.SignCheckpointNote(testOrigin, size, root, k.signer)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	f.Add(signText(f, k, testOrigin+"\n07\n"+base64.StdEncoding.EncodeToString(root[:])+"\n"))
	f.Add(signText(f, k, testOrigin+"\n7\n"+base64.StdEncoding.EncodeToString(root[:])+"\nx\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		p, err := clog.OpenCheckpointNote(msg, k.verifier)
		if err != nil {
			if p != nil {
				t.Fatal("error with a non-nil checkpoint")
			}
			return
		}
		text := clog.FormatCheckpointNote(p.Origin, p.Size, p.Root)
		if !bytes.HasPrefix(msg, []byte(text+"\n")) {
			t.Fatalf("opened note\n%q\ndoes not start with its re-formatted text\n%q", msg, text)
		}
		if p.Origin != k.verifier.Name() {
			t.Fatalf("origin %q is not the key's name", p.Origin)
		}
	})
}

// fuzzKeys derives a note key pair deterministically, so that seeds signed
// in one run verify in the next.
func fuzzKeys(t testing.TB) noteKeys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(zeroReader{}, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return noteKeys{s, v}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0x42
	}
	return len(p), nil
}
