package apphost

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"enjin"
)

// Log rotation: an app's log file is rotated to log.1 when it passes maxLogBytes; one old
// file is kept.
const maxLogBytes = 8 << 20

// logBook keeps each app's log file and its followers.
type logBook struct {
	dir string

	mu        sync.Mutex
	files     map[string]*os.File
	sizes     map[string]int64
	followers map[string]map[chan LogLine]struct{}
	// Publish, if set, also sends every line on (the tenant's log subject on the bus).
	publish func(tenant, app string, l LogLine)
}

func newLogBook(dir string) *logBook {
	return &logBook{dir: dir, files: map[string]*os.File{}, sizes: map[string]int64{}, followers: map[string]map[chan LogLine]struct{}{}}
}

// SetInstanceStopped makes the host call fn after an instance has stopped for good.
func (h *Host) SetInstanceStopped(fn func(tenant, app, instance string)) {
	h.logs.mu.Lock()
	h.stopped = fn
	h.logs.mu.Unlock()
}

// SetLogPublisher makes the host publish every log line with fn too (ring 1 sends them on
// the tenant's log subject).
func (h *Host) SetLogPublisher(fn func(tenant, app string, l LogLine)) {
	h.logs.mu.Lock()
	h.logs.publish = fn
	h.logs.mu.Unlock()
}

func (h *Host) logLine(a *app, l LogLine) {
	b := h.logs
	k := a.tenant + "/" + a.name
	enc, _ := json.Marshal(l)
	enc = append(enc, '\n')
	b.mu.Lock()
	publish := b.publish
	defer func() {
		b.mu.Unlock()
		if publish != nil { // outside the lock: it may dial the bus the first time
			publish(a.tenant, a.name, l)
		}
	}()
	f := b.files[k]
	if f == nil || b.sizes[k] > maxLogBytes {
		if f != nil {
			f.Close()
			p := filepath.Join(b.dir, a.tenant, a.name, "log")
			os.Rename(p, p+".1")
		}
		var err error
		f, err = os.OpenFile(filepath.Join(b.dir, a.tenant, a.name, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return
		}
		fi, _ := f.Stat()
		b.files[k], b.sizes[k] = f, fi.Size()
	}
	n, _ := f.Write(enc)
	b.sizes[k] += int64(n)
	for ch := range b.followers[k] {
		select {
		case ch <- l:
		default: // a slow follower misses lines rather than stalling the app
		}
	}
}

// Logs returns the app's last lines (up to n) and, if follow is set, a channel of new lines
// and a function to stop following.
func (h *Host) Logs(tenant enjin.TenantID, name string, n int, follow bool) ([]LogLine, <-chan LogLine, func(), error) {
	a, err := h.existing(tenant, name)
	if err != nil {
		return nil, nil, nil, err
	}
	k := a.tenant + "/" + a.name
	lines, err := tail(filepath.Join(h.logs.dir, a.tenant, a.name, "log"), n)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, err
	}
	if !follow {
		return lines, nil, func() {}, nil
	}
	ch := make(chan LogLine, 256)
	b := h.logs
	b.mu.Lock()
	if b.followers[k] == nil {
		b.followers[k] = map[chan LogLine]struct{}{}
	}
	b.followers[k][ch] = struct{}{}
	b.mu.Unlock()
	stop := func() {
		b.mu.Lock()
		delete(b.followers[k], ch)
		b.mu.Unlock()
	}
	return lines, ch, stop, nil
}

func tail(path string, n int) ([]LogLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []LogLine
	for _, raw := range splitLines(b) {
		var l LogLine
		if json.Unmarshal(raw, &l) == nil {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		out = append(out, b[:i])
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}

// forget closes a destroyed app's log file.
func (b *logBook) forget(tenant, app string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := tenant + "/" + app
	if f := b.files[k]; f != nil {
		f.Close()
	}
	delete(b.files, k)
	delete(b.sizes, k)
}

func (b *logBook) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, f := range b.files {
		f.Close()
		delete(b.files, k)
	}
	return nil
}
