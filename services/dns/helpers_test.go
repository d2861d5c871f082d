package dns_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	enjindns "enjin/services/dns"
)

const zoneName = "apps.enjin.test."

var (
	routerV4 = net.ParseIP("10.1.2.3")
	routerV6 = net.ParseIP("fd00::53")
)

// testConfig is a server on a free loopback port answering for zoneName.
func testConfig(t *testing.T) enjindns.Config {
	return enjindns.Config{
		Addr:       "127.0.0.1:0",
		AppsDomain: "Apps.Enjin.Test", // no trailing dot, mixed case: both must be accepted
		RouterV4:   routerV4,
		RouterV6:   routerV6,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func newServer(t testing.TB, cfg enjindns.Config) *enjindns.Server {
	t.Helper()
	s, err := enjindns.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// start runs s until the test ends and returns its UDP and TCP addresses. Cleanup checks
// that Run returned nil.
func start(t *testing.T, s *enjindns.Server) (udp, tcp string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }() // ends when ctx is cancelled at cleanup
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10s after its context ended")
		}
	})
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("Run before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready after 10s")
	}
	u, c := s.Addr()
	return u.String(), c.String()
}

// exchange sends q to addr over network ("udp" or "tcp"), retrying over UDP until the
// test's deadline or a few seconds pass, since loopback UDP may still drop under load.
func exchange(t *testing.T, network, addr string, q *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _, err := c.ExchangeContext(t.Context(), q, addr)
		if err == nil {
			return r
		}
		var ne net.Error
		if network != "udp" || !errors.As(err, &ne) || !ne.Timeout() || time.Now().After(deadline) {
			t.Fatalf("exchange %s %s: %v", network, addr, err)
		}
	}
}

func query(name string, qtype uint16) *dns.Msg {
	return new(dns.Msg).SetQuestion(name, qtype)
}

// recorder is a dns.ResponseWriter that keeps the packed reply, as the server would send it.
type recorder struct {
	tcp     bool
	wire    []byte
	packErr error
	writes  int
}

func (r *recorder) LocalAddr() net.Addr  { return r.addr(53) }
func (r *recorder) RemoteAddr() net.Addr { return r.addr(40000) }

func (r *recorder) addr(port int) net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
}

func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.writes++
	r.wire, r.packErr = m.Pack()
	return r.packErr
}

func (r *recorder) Write(b []byte) (int, error) {
	r.writes++
	r.wire = append([]byte(nil), b...)
	return len(b), nil
}

func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// serve hands req straight to s's handler and returns the unpacked reply, or nil if none.
func serve(t *testing.T, s *enjindns.Server, req *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	w := &recorder{tcp: tcp}
	s.ServeDNS(w, req)
	if w.packErr != nil {
		t.Fatalf("reply does not pack: %v", w.packErr)
	}
	if w.writes == 0 {
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(w.wire); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return m
}
