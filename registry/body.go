package registry

import (
	"io"
	"net/http"
)

// readBody reads a request body of at most max bytes. When the client
// declared its length (within max), the buffer is that size from the
// start: a statement is then read with one allocation and no copy, where
// io.ReadAll grows its buffer and copies it several times for a 1 KiB
// statement. A declared length is only a hint, never trusted: the
// MaxBytesReader bounds what is read, and a body longer or shorter than
// declared is read as it is.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, max)
	n := r.ContentLength
	if n <= 0 || n > max {
		return io.ReadAll(body)
	}
	buf := make([]byte, n, n+1)
	got, err := io.ReadFull(body, buf)
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		return buf[:got], nil // shorter than declared
	default:
		return nil, err
	}
	// Declared length read: anything after it is read too (and bounded).
	more, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	return append(buf, more...), nil
}
