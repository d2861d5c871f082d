package api

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// streaming prepares a forwarded app request, or an image upload or download, to outlive the
// server's ReadTimeout and WriteTimeout. Those suit the meta API's quick answers but would cut
// a deploy's upload (up to 256 MiB) and its progress stream, a followed log, the wait for new
// instances behind env, scale and rollback, and an image of gigabytes with its conversion. So
// the connection's deadlines are cleared, and instead each read of the body and each write of
// the answer must make progress within those timeouts: a client that keeps up is never cut,
// one that stalls still is. done ends the arrangement, leaving the server's final write
// bounded too.

func streaming(w http.ResponseWriter, r *http.Request) (_ http.ResponseWriter, done func()) {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return w, func() {}
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // errors: a writer without a connection, nothing to cut
	sw := &stallWriter{ResponseWriter: w, rc: rc, idle: srv.WriteTimeout}
	var body *stallReader
	if r.Body == nil || r.Body == http.NoBody {
		_ = rc.SetReadDeadline(time.Time{}) // net/http does too, waiting for the client to leave
	} else {
		body = &stallReader{ReadCloser: r.Body, rc: rc, idle: srv.ReadTimeout}
		r.Body = body
	}
	return sw, func() {
		if body != nil {
			body.done.Store(true) // the transport may still hold it; the connection is no longer its
		}
		sw.extend()
	}
}

// stallWriter gives each write of a response idle time to complete.
type stallWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *stallWriter) extend() {
	if w.idle > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	}
}

func (w *stallWriter) WriteHeader(code int)        { w.extend(); w.ResponseWriter.WriteHeader(code) } // 1xx go out at once
func (w *stallWriter) Write(b []byte) (int, error) { w.extend(); return w.ResponseWriter.Write(b) }
func (w *stallWriter) FlushError() error           { w.extend(); return w.rc.Flush() }
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// stallReader gives each read of a request body idle time to complete, and clears the read
// deadline when the body ends.
type stallReader struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	done atomic.Bool
}

func (b *stallReader) Read(p []byte) (int, error) {
	if b.idle > 0 && !b.done.Load() {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done.Load() {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
