package webui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"
)

// ErrNoSession is Events' answer to a request without a live session (the API's 401).
var ErrNoSession = errors.New("webui: no session")

// hub polls the digests while anyone watches and tells each watcher which kinds changed.
// One poll serves every stream; it starts with the first watcher and ends with the last.
type hub struct {
	digests func(context.Context) (map[string]string, error)
	every   time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	subs    map[*watcher]struct{}
	polling bool
	closed  bool
	stop    context.CancelFunc // ends the poll and every stream at close
	ctx     context.Context
	wg      sync.WaitGroup
}

// watcher is one event stream's pending kinds of change.
type watcher struct {
	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{} // holds one token while something is pending
}

func newHub(digests func(context.Context) (map[string]string, error), every time.Duration, log *slog.Logger) *hub {
	ctx, stop := context.WithCancel(context.Background())
	return &hub{digests: digests, every: every, log: log, subs: map[*watcher]struct{}{}, ctx: ctx, stop: stop}
}

func (w *watcher) add(kinds ...string) {
	w.mu.Lock()
	for _, k := range kinds {
		w.pending[k] = true
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ks := slices.Sorted(maps.Keys(w.pending))
	clear(w.pending)
	return ks
}

// join adds a watcher, starting the poll if it is the first; false once the hub is closed.
func (h *hub) join() (*watcher, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	w := &watcher{pending: map[string]bool{}, wake: make(chan struct{}, 1)}
	h.subs[w] = struct{}{}
	if !h.polling {
		h.polling = true
		h.wg.Go(h.poll) // ends when the last watcher leaves or at close
	}
	return w, true
}

func (h *hub) leave(w *watcher) {
	h.mu.Lock()
	delete(h.subs, w)
	h.mu.Unlock()
}

// poll reads the digests every h.every and wakes every watcher for each kind that changed,
// until no watcher is left or the hub closes.
func (h *hub) poll() {
	t := time.NewTicker(h.every)
	defer t.Stop()
	var last map[string]string
	failing := false
	for {
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
		d, err := h.digests(ctx)
		cancel()
		switch {
		case err != nil && !failing && h.ctx.Err() == nil:
			h.log.Warn("web view: reading the inventory for its events failed", "err", err)
			failing = true
		case err == nil:
			failing = false
			var changed []string
			for k, v := range d {
				if last != nil && last[k] != v {
					changed = append(changed, k)
				}
			}
			last = d
			h.notify(changed)
		}
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		if len(h.subs) == 0 {
			h.polling = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

func (h *hub) notify(kinds []string) {
	if len(kinds) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.subs {
		w.add(kinds...)
	}
}

func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.stop()
	h.wg.Wait()
}

// Events streams the kinds of data that changed, as Server-Sent Events named after them
// ("nodes", "apps"), to a live session: every kind at once on connecting, so the page loads
// what is there, then each as it changes. The stream ends with a "logout" event when the
// session ends. Without a live session it writes nothing and returns ErrNoSession. w should
// let the stream outlive the server's write timeout (each write must still progress).
func (u *UI) Events(w http.ResponseWriter, r *http.Request) error {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return ErrNoSession
	}
	if _, ok := u.sessions.lookup(c.Value); !ok {
		return ErrNoSession
	}
	wt, ok := u.hub.join()
	if !ok {
		return ErrNoSession
	}
	defer u.hub.leave(wt)
	wt.add("nodes", "apps")
	secure(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return nil
	}
	ping := time.NewTicker(u.ping)
	defer ping.Stop()
	check := time.NewTicker(time.Second) // notices a logout or an expiry within a second
	defer check.Stop()
	for {
		var out string
		select {
		case <-r.Context().Done():
			return nil
		case <-u.hub.ctx.Done():
			return nil
		case <-check.C:
			if _, ok := u.sessions.lookup(c.Value); !ok {
				_, _ = fmt.Fprint(w, "event: logout\ndata: {}\n\n")
				_ = rc.Flush()
				return nil
			}
			continue
		case <-ping.C:
			out = ": ping\n\n"
		case <-wt.wake:
			for _, k := range wt.take() {
				out += "event: " + k + "\ndata: {}\n\n"
			}
		}
		if _, err := fmt.Fprint(w, out); err != nil || rc.Flush() != nil {
			return nil // the client went away
		}
	}
}
