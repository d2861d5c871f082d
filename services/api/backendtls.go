package api

import (
	"net/http"
	"sync"
)

// transports keeps one transport per (base transport, node) for app APIs served over https,
// so their connections are reused like plain ones.
var transports sync.Map // transportKey → *http.Transport

type transportKey struct {
	base *http.Transport
	node string
}

// over is how to reach b with base's settings: base itself for plain http, a copy of it that
// checks the node's certificate for https.
func (b AppsBackend) over(base *http.Transport) http.RoundTripper {
	if b.TLS == nil {
		return base
	}
	k := transportKey{base, string(b.Node)}
	if t, ok := transports.Load(k); ok {
		return t.(*http.Transport)
	}
	t := base.Clone()
	t.TLSClientConfig = b.TLS.Clone()
	got, _ := transports.LoadOrStore(k, t)
	return got.(*http.Transport)
}

// Client is an HTTP client for b's app API (no timeout of its own: pass a context).
func (b AppsBackend) Client() *http.Client {
	return &http.Client{Transport: b.over(http.DefaultTransport.(*http.Transport))}
}
