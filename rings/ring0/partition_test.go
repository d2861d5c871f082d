package ring0

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"enjin"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// partition stands between a ring 0 member and PostgreSQL (a TCP listener forwarding to the
// server's unix socket). Cut, it behaves as a network partition does: the member's
// connections stay open and hear nothing, new ones get no answer, and the server's side of
// each session ends (as the server's keepalives end it), which frees the locks it held.
type partition struct {
	ln     net.Listener
	socket string

	mu    sync.Mutex
	cut   bool
	pairs []*proxied
}

type proxied struct{ member, server net.Conn }

func newPartition(t *testing.T, socketDir string) *partition {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partition{ln: ln, socket: filepath.Join(socketDir, ".s.PGSQL.5432")}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.pairs {
			c.member.Close()
			c.server.Close()
		}
	})
	go p.accept() // ends when ln closes
	return p
}

// url is the database URL through the partition.
func (p *partition) url(name string) string {
	return "postgres://postgres@" + p.ln.Addr().String() + "/" + name + "?sslmode=disable"
}

func (p *partition) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut { // silence: no answer, no close
			p.mu.Lock()
			p.pairs = append(p.pairs, &proxied{member: c, server: &net.UnixConn{}})
			p.mu.Unlock()
			continue
		}
		s, err := net.Dial("unix", p.socket)
		if err != nil {
			c.Close()
			continue
		}
		pr := &proxied{member: c, server: s}
		p.mu.Lock()
		p.pairs = append(p.pairs, pr)
		p.mu.Unlock()
		go p.copy(s, c, true) // ends when either side closes
		go p.copy(c, s, false)
	}
}

// copy forwards src to dst until the partition is cut (or a side closes); from the member
// it then swallows what comes, to the member it forwards nothing more.
func (p *partition) copy(dst, src net.Conn, fromMember bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			if fromMember && err == nil {
				continue
			}
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

// Cut partitions the member from the server: the server's side of every session ends.
func (p *partition) Cut() {
	p.mu.Lock()
	p.cut = true
	pairs := p.pairs
	p.mu.Unlock()
	for _, c := range pairs {
		c.server.Close()
	}
}

// startMember runs a ring 0 in this process on dbURL, with its state in dir, until the test
// ends.
func startMember(t *testing.T, dir, dbURL string) *Ring0 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := New(ctx, Config{StateDir: dir, DatabaseURL: dbURL, NATSPort: -1, APIAddr: "127.0.0.1:0",
		Heartbeat: time.Second, Logger: harness.Logger(t)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // ends at cleanup
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// A leader cut off from PostgreSQL stops acting as leader within the lease check's bound,
// another member takes over with a newer epoch, and the deposed leader's late verdict is
// refused once it can reach the database again.
func TestPartitionedLeaderStepsDown(t *testing.T) {
	pg := harness.StartPostgres(t)
	direct := pg.CreateDatabase(t, "ring0")
	part := newPartition(t, pg.SocketDir)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startMember(t, dirA, part.url("ring0"))
	harness.Eventually(t, 10*time.Second, func() bool { _, e := a.Leadership(); return e != 0 }, "a leads")
	harness.CopyKeys(t, dirA, dirB) // members hold one trust chain
	b := startMember(t, dirB, direct)
	_, epochA := a.Leadership()
	if _, e := b.Leadership(); e != 0 {
		t.Fatalf("b leads at epoch %d while a does", e)
	}

	part.Cut()
	cut := time.Now()
	harness.Eventually(t, 10*time.Second, func() bool { _, e := b.Leadership(); return e > epochA }, "b takes over")
	tookOver := time.Since(cut)
	harness.Eventually(t, 10*time.Second, func() bool { _, e := a.Leadership(); return e == 0 }, "a steps down")
	steppedDown := time.Since(cut)
	t.Logf("after the cut: b leads in %v, a stops leading in %v (bound %v)", tookOver.Round(time.Millisecond),
		steppedDown.Round(time.Millisecond), leaseCheck+leaseTimeout)
	if steppedDown > leaseCheck+leaseTimeout+time.Second { // a check in flight, and scheduling
		t.Fatalf("a stopped leading %v after the cut; want within %v", steppedDown, leaseCheck+leaseTimeout)
	}

	// The deposed leader's verdict, sent late under its old epoch, is refused.
	store, err := inventory.Open(t.Context(), direct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = store.SetStates(t.Context(), epochA, []enjin.NodeID{"anyone"}, "down")
	if !errors.Is(err, inventory.ErrFenced) || !strings.Contains(err.Error(), "the leader's is") {
		t.Fatalf("the deposed leader's verdict: %v; want ErrFenced", err)
	}
	t.Logf("refused: %v", err)
}
