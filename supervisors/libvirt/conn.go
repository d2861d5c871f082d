// Package libvirt is the `libvirt` supervision strategy: a parent runs a child node as a
// virtual machine through libvirtd, over go-libvirt's RPC on the local unix socket, with the
// domain XML built from typed structs (libvirtxml), never from text templates.
//
// Guarantees: a Conn survives libvirtd restarts — it notices the lost connection, redials
// with backoff, and meanwhile every call fails with an error wrapping ErrDisconnected (the
// guests keep running; libvirtd finds them again when it comes back). Conn acts only on
// domains that carry enjin's metadata element (Meta), so it never stops, changes or removes
// a domain someone else defined on the host; List shows only those. Undefine deletes no file
// but those its Domain marked Owned (the overlays made for it) and keeps the console log.
// Attach and detach change the running guest and its persistent definition together.
// Images are created with their formats given, never probed: Overlay pins its base as qcow2
// and the domain XML pins every disk's format, and an overlay's base is shown to QEMU
// read-only and never relabelled, so one guest cannot write the base another guest shares.
//
// QEMU runs as the unprivileged user libvirt-qemu (deploy/libvirt.sh creates it), not root.
// libvirt's DAC driver chowns to it what a domain names (disks, kernel, initrd, fw_cfg files)
// while the domain runs and gives the files back afterwards, so they may stay root's, mode
// 0600. Only the directories on their paths must be searchable by others (o+x): libvirt does
// not change those, and a t.TempDir (0700) is not. An overlay's base must be readable by
// libvirt-qemu (0644, say), as libvirt leaves it alone.
//
// Ring 1 and services/vmhost import it, for tenants' VMs and ring 1 hosts started as VMs;
// cmd/enjin and test/harness too. Tests need a running libvirtd: deploy/libvirt.sh installs
// and starts it.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// URIs Dial accepts: libvirtd's QEMU driver, and its built-in fake hypervisor, whose state
// all connections share and which libvirtd resets when the last one closes.
const (
	System = "qemu:///system"
	Test   = "test:///default"
)

// Socket is where libvirtd listens.
const Socket = "/var/run/libvirt/libvirt-sock"

var (
	// ErrDisconnected: libvirtd is not reachable right now; the Conn is redialing.
	ErrDisconnected = errors.New("libvirt: disconnected from libvirtd")
	// ErrNotFound: no domain has that name (or no device that address).
	ErrNotFound = errors.New("libvirt: not found")
	// ErrForeign: the domain exists but enjin did not define it; it is left alone.
	ErrForeign = errors.New("libvirt: domain not defined by enjin")
	// ErrUnsupported: the hypervisor cannot do this (test:///default cannot hot-plug).
	ErrUnsupported = errors.New("libvirt: not supported by this hypervisor")
)

// rpc is what Conn calls of go-libvirt; *golibvirt.Libvirt satisfies it.
type rpc interface {
	ConnectListAllDomains(needResults int32, flags golibvirt.ConnectListAllDomainsFlags) ([]golibvirt.Domain, uint32, error)
	DomainLookupByName(name string) (golibvirt.Domain, error)
	DomainDefineXMLFlags(xml string, flags golibvirt.DomainDefineFlags) (golibvirt.Domain, error)
	DomainCreate(dom golibvirt.Domain) error
	DomainShutdownFlags(dom golibvirt.Domain, flags golibvirt.DomainShutdownFlagValues) error
	DomainReboot(dom golibvirt.Domain, flags golibvirt.DomainRebootFlagValues) error
	DomainDestroyFlags(dom golibvirt.Domain, flags golibvirt.DomainDestroyFlagsValues) error
	DomainUndefineFlags(dom golibvirt.Domain, flags golibvirt.DomainUndefineFlagsValues) error
	DomainGetState(dom golibvirt.Domain, flags uint32) (int32, int32, error)
	DomainGetXMLDesc(dom golibvirt.Domain, flags golibvirt.DomainXMLFlags) (string, error)
	DomainGetMetadata(dom golibvirt.Domain, typ int32, uri golibvirt.OptString, flags golibvirt.DomainModificationImpact) (string, error)
	DomainSetMetadata(dom golibvirt.Domain, typ int32, metadata, key, uri golibvirt.OptString, flags golibvirt.DomainModificationImpact) error
	DomainAttachDeviceFlags(dom golibvirt.Domain, xml string, flags uint32) error
	DomainDetachDeviceFlags(dom golibvirt.Domain, xml string, flags uint32) error
}

// Conn is a connection to libvirtd that redials by itself. Its methods are safe for
// concurrent use.
type Conn struct {
	uri string
	log *slog.Logger

	mu      sync.Mutex
	client  *golibvirt.Libvirt         // nil while disconnected
	stopped map[string][]chan struct{} // by domain name: closed when it stops

	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{}
}

// Redial backoff after libvirtd went away: quick at first (a restart takes under a second
// once its capabilities are cached), never more than a few seconds apart.
const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 2 * time.Second
	dialWait   = 5 * time.Second
)

// Dial connects to libvirtd's uri (System or Test) over Socket. It fails if libvirtd does
// not answer now; once connected, the Conn redials by itself until Close.
func Dial(ctx context.Context, uri string, log *slog.Logger) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", uri, err)
	}
	wait := dialWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	client, events, err := connect(uri, wait)
	if err != nil {
		return nil, fmt.Errorf("dial %s on %s (is libvirtd running? deploy/libvirt.sh starts it): %w",
			uri, Socket, err)
	}
	c := &Conn{uri: uri, log: log.With("libvirt", uri), client: client,
		stopped: map[string][]chan struct{}{},
		closing: make(chan struct{}), done: make(chan struct{})}
	go c.run(client, events) // ends when Close is called
	return c, nil
}

// connect dials libvirtd and subscribes to its domains' lifecycle events for as long as
// the connection lasts. One subscription per connection, never cancelled: go-libvirt
// stops a stream's buffer before it unregisters it, and an event that arrives in between
// blocks its reader, and so every call on the connection, for good.
func connect(uri string, wait time.Duration) (*golibvirt.Libvirt, <-chan golibvirt.DomainEventLifecycleMsg, error) {
	l := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(Socket),
		dialers.WithLocalTimeout(wait)))
	if err := l.ConnectToURI(golibvirt.ConnectURI(uri)); err != nil {
		return nil, nil, err
	}
	events, err := l.LifecycleEvents(context.Background())
	if err != nil {
		l.Disconnect()
		return nil, nil, fmt.Errorf("subscribe to lifecycle events: %w", err)
	}
	return l, events, nil
}

// run watches the connection and redials when it drops, until Close. Each connection's
// events are pumped by a goroutine of their own.
func (c *Conn) run(client *golibvirt.Libvirt, events <-chan golibvirt.DomainEventLifecycleMsg) {
	defer close(c.done)
	for {
		pumped := make(chan struct{})
		go func() { // ends when the connection drops or is closed
			defer close(pumped)
			c.pump(events)
		}()
		select {
		case <-c.closing:
			client.Disconnect()
			<-pumped
			return
		case <-client.Disconnected():
		}
		c.set(nil)
		<-pumped
		c.log.Warn("libvirtd connection lost; redialing")
		if client, events = c.redial(); client == nil {
			return
		}
		c.set(client)
		c.log.Info("libvirtd connection back")
	}
}

// pump wakes the callers waiting for a domain to stop. When the events end, it wakes them
// all: they look at the domain again, and learn of the broken connection that way.
func (c *Conn) pump(events <-chan golibvirt.DomainEventLifecycleMsg) {
	for ev := range events {
		if golibvirt.DomainEventType(ev.Event) == golibvirt.DomainEventStopped {
			c.wake(ev.Dom.Name)
		}
	}
	c.mu.Lock()
	names := slices.Collect(maps.Keys(c.stopped))
	c.mu.Unlock()
	for _, name := range names {
		c.wake(name)
	}
}

// whenStopped returns a channel closed at the next stopped event of domain name, and a
// function to call when no longer waiting.
func (c *Conn) whenStopped(name string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	c.mu.Lock()
	c.stopped[name] = append(c.stopped[name], ch)
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stopped[name] = slices.DeleteFunc(c.stopped[name], func(x chan struct{}) bool { return x == ch })
		if len(c.stopped[name]) == 0 {
			delete(c.stopped, name)
		}
	}
}

func (c *Conn) wake(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.stopped[name] {
		close(ch)
	}
	delete(c.stopped, name)
}

// redial connects again with backoff; it returns nil once Close is called.
func (c *Conn) redial() (*golibvirt.Libvirt, <-chan golibvirt.DomainEventLifecycleMsg) {
	for wait := backoffMin; ; wait = min(2*wait, backoffMax) {
		select {
		case <-c.closing:
			return nil, nil
		case <-time.After(wait):
		}
		client, events, err := connect(c.uri, dialWait)
		if err == nil {
			return client, events
		}
		c.log.Debug("redial libvirtd", "err", err, "next", wait)
	}
}

func (c *Conn) set(client *golibvirt.Libvirt) {
	c.mu.Lock()
	c.client = client
	c.mu.Unlock()
}

// rpc returns the current connection, or ErrDisconnected.
func (c *Conn) rpc() (rpc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		return nil, ErrDisconnected
	}
	return c.client, nil
}

// Connected reports whether the Conn is connected to libvirtd right now.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client != nil && c.client.IsConnected()
}

// Close disconnects and waits for the Conn's goroutines to end.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { close(c.closing) })
	<-c.done
	return nil
}

// classify turns go-libvirt's errors into this package's sentinels: an error that is not
// libvirtd's answer means the connection broke under the call.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var lerr golibvirt.Error
	if !errors.As(err, &lerr) {
		return fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	switch golibvirt.ErrorNumber(lerr.Code) {
	case golibvirt.ErrNoDomain:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case golibvirt.ErrNoSupport, golibvirt.ErrOperationUnsupported:
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return err
}

// hasCode reports whether err is libvirtd's error code.
func hasCode(err error, code golibvirt.ErrorNumber) bool {
	var lerr golibvirt.Error
	return errors.As(err, &lerr) && golibvirt.ErrorNumber(lerr.Code) == code
}
