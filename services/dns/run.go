package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// shutdownGrace bounds how long Run waits for queries in flight once ctx ends.
const shutdownGrace = 5 * time.Second

// ErrRunning is returned by a second call to Run.
var ErrRunning = errors.New("dns: server already running")

// Run serves UDP and TCP until ctx ends, then shuts both down and returns once they have
// stopped. It returns nil when ctx ends and an error if a listener cannot be opened or fails.
// A Server runs at most once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	pc, ln, err := listen(ctx, s.addr)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	s.udp, s.tcp = pc.LocalAddr(), ln.Addr()
	// Read buffers must hold the largest query a client may send us; EDNS(0) clients size
	// queries by our advertised payload, but some send larger ones regardless.
	udp := &endpoint{srv: &dns.Server{PacketConn: pc, Handler: s, UDPSize: dns.MaxMsgSize}}
	tcp := &endpoint{srv: &dns.Server{Listener: ln, Handler: s}}
	return s.serve(ctx, udp, tcp)
}

// listen opens the UDP socket and then the TCP listener. When addr's port is 0 it tries to
// give TCP the port UDP got, so one host:port serves both, and takes any port otherwise.
func listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	var ln net.Listener
	if port == "0" {
		udpPort := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err = lc.Listen(ctx, "tcp", net.JoinHostPort(host, udpPort))
	}
	if ln == nil {
		ln, err = lc.Listen(ctx, "tcp", addr)
	}
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	return pc, ln, nil
}

// endpoint is one miekg/dns server and what Run knows of its life.
type endpoint struct {
	srv     *dns.Server
	started chan struct{} // closed once srv serves; Shutdown works from then on
	exited  bool          // srv's serving goroutine has returned
	err     error         // what it returned
}

// serve runs the endpoints until ctx ends or one fails, then stops the rest.
func (s *Server) serve(ctx context.Context, eps ...*endpoint) error {
	exits := make(chan *endpoint, len(eps))
	for _, ep := range eps {
		ep.started = make(chan struct{})
		ep.srv.NotifyStartedFunc = func() { close(ep.started) }
		// Ends when ShutdownContext is called or the listener fails.
		go func() {
			ep.err = ep.srv.ActivateAndServe()
			exits <- ep
		}()
	}
	failed := false
	exit := func(ep *endpoint) { ep.exited, failed = true, true } // serving never ends by itself
	for _, ep := range eps {
		waitStarted(ep, exits, exit)
	}
	if !failed {
		close(s.ready)
		select {
		case <-ctx.Done():
		case ep := <-exits:
			exit(ep)
		}
	}
	return s.stop(exits, eps)
}

// waitStarted returns once ep serves or has exited, passing to exit every endpoint that
// exits meanwhile.
func waitStarted(ep *endpoint, exits <-chan *endpoint, exit func(*endpoint)) {
	for !ep.exited {
		select {
		case <-ep.started:
			return
		case x := <-exits:
			exit(x)
		}
	}
}

// stop shuts down the endpoints still serving, waits for them and returns their failures.
func (s *Server) stop(exits chan *endpoint, eps []*endpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var errs []error
	for _, ep := range eps {
		if !ep.exited {
			if err := ep.srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shutdown: %w", err))
			}
		}
	}
	for _, ep := range eps {
		for !ep.exited {
			(<-exits).exited = true
		}
		if ep.err != nil {
			errs = append(errs, ep.err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("dns: serve: %w", errors.Join(errs...))
	}
	return nil
}
