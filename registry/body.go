package registry

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/charterlog/charter/cose"
)

// readRequest reads a registration request (POST /entries, POST
// /entries/batch): its Content-Type must be mediaType and its body at most
// limit bytes, which tooLarge (a format with one %d) says when it is over.
// When it returns false it has answered the request with the problem.
func readRequest(w http.ResponseWriter, r *http.Request, mediaType string, limit int64, tooLarge string) ([]byte, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != mediaType {
		WriteProblem(w, &Problem{Status: http.StatusUnsupportedMediaType, Title: "UnsupportedMediaType",
			Detail: fmt.Sprintf("Content-Type must be %s, got %q", mediaType, r.Header.Get("Content-Type"))})
		return nil, false
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			WriteProblem(w, ProblemFor(fmt.Errorf("%w: "+tooLarge, cose.ErrTooLarge, limit)))
			return nil, false
		}
		WriteProblem(w, badRequest("InvalidInput", "reading the request body: "+err.Error()))
		return nil, false
	}
	return body, true
}

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
