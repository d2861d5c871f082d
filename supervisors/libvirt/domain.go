package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// State is a domain's state, with libvirt's numbering.
type State int

const (
	NoState State = iota
	Running
	Blocked
	Paused
	ShuttingDown
	ShutOff
	Crashed
	Suspended // by the guest's power management
)

func (s State) String() string {
	names := [...]string{"no state", "running", "blocked", "paused", "shutting down", "shut off", "crashed", "suspended"}
	if s < 0 || int(s) >= len(names) {
		return fmt.Sprintf("state %d", int(s))
	}
	return names[s]
}

// active reports whether QEMU runs for a domain in state s.
func (s State) active() bool { return s != ShutOff && s != NoState }

// Info is one of enjin's domains, as List finds it.
type Info struct {
	Name  string
	UUID  string
	State State
	Meta  Meta
}

// domain is a domain enjin defined, looked up on the current connection.
type domain struct {
	r    rpc
	dom  golibvirt.Domain
	meta Meta
}

// ours looks name up and makes sure enjin defined it.
func (c *Conn) ours(name string) (domain, error) {
	r, err := c.rpc()
	if err != nil {
		return domain{}, err
	}
	dom, err := r.DomainLookupByName(name)
	if err != nil {
		return domain{}, fmt.Errorf("domain %s: %w", name, classify(err))
	}
	m, ok, err := metaFor(r, dom)
	if err != nil {
		return domain{}, fmt.Errorf("domain %s: %w", name, err)
	}
	if !ok {
		return domain{}, fmt.Errorf("domain %s: %w", name, ErrForeign)
	}
	return domain{r: r, dom: dom, meta: m}, nil
}

// metaFor reads enjin's element from dom's persistent definition; ok is false if it has none.
func metaFor(r rpc, dom golibvirt.Domain) (m Meta, ok bool, err error) {
	s, err := r.DomainGetMetadata(dom, int32(golibvirt.DomainMetadataElement),
		golibvirt.OptString{Namespace}, golibvirt.DomainAffectConfig)
	if hasCode(err, golibvirt.ErrNoDomainMetadata) {
		return Meta{}, false, nil
	}
	if err != nil {
		return Meta{}, false, classify(err)
	}
	m, err = metaOf(s)
	return m, err == nil, err
}

func (d domain) state() (State, error) {
	s, _, err := d.r.DomainGetState(d.dom, 0)
	if err != nil {
		return NoState, fmt.Errorf("domain %s: state: %w", d.dom.Name, classify(err))
	}
	return State(s), nil
}

// Define creates the domain, or updates its definition if enjin defined it before (a running
// guest sees the change at its next start). It does not start it.
func (c *Conn) Define(d Domain) error {
	if err := d.Validate(); err != nil {
		return err
	}
	r, err := c.rpc()
	if err != nil {
		return fmt.Errorf("define domain %s: %w", d.Name, err)
	}
	if dom, err := r.DomainLookupByName(d.Name); err == nil {
		if _, ok, err := metaFor(r, dom); err != nil || !ok {
			return fmt.Errorf("define domain %s: %w", d.Name, orElse(err, ErrForeign))
		}
		if d.UUID == "" { // keep it: libvirt refuses a second UUID for one name
			d.UUID = uuidString(dom.UUID)
		}
	} else if !hasCode(err, golibvirt.ErrNoDomain) {
		return fmt.Errorf("define domain %s: %w", d.Name, classify(err))
	}
	x, err := d.XML()
	if err != nil {
		return err
	}
	if _, err := r.DomainDefineXMLFlags(x, golibvirt.DomainDefineValidate); err != nil {
		return fmt.Errorf("define domain %s: %w", d.Name, classify(err))
	}
	return nil
}

// orElse returns err, or def if err is nil.
func orElse(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// Start boots the domain; starting a running domain does nothing.
func (c *Conn) Start(name string) error {
	d, err := c.ours(name)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if s, err := d.state(); err != nil || s.active() {
		return err
	}
	if err := d.r.DomainCreate(d.dom); err != nil {
		return fmt.Errorf("start domain %s: %w", name, classify(err))
	}
	return nil
}

// State is the domain's state now.
func (c *Conn) State(name string) (State, error) {
	d, err := c.ours(name)
	if err != nil {
		return NoState, err
	}
	return d.state()
}

// Shutdown asks the guest to power off (the ACPI power button, unless the guest has an agent
// libvirt prefers) and destroys it if it is still running after timeout. A stopped domain
// is left as it is. It returns early, with ctx's error, if ctx ends first.
func (c *Conn) Shutdown(ctx context.Context, name string, timeout time.Duration) error {
	d, err := c.ours(name)
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// Listen before asking, so the guest cannot stop between the two unnoticed.
	stopped, done := c.whenStopped(name)
	defer func() { done() }()
	if s, err := d.state(); err != nil || !s.active() {
		return err
	}
	// Flags 0: libvirt's default method, the ACPI power button without a guest agent. The
	// test driver refuses the explicit ACPI flag.
	if err := d.r.DomainShutdownFlags(d.dom, 0); err != nil {
		if s, serr := d.state(); serr == nil && !s.active() {
			return nil
		}
		return fmt.Errorf("shutdown domain %s: %w", name, classify(err))
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-stopped:
			// Stopped, or the connection broke: the state says which.
			done()
			stopped, done = c.whenStopped(name)
			if s, err := d.state(); err != nil || !s.active() {
				return err
			}
		case <-timer.C:
			c.log.Info("guest still running after the power button; destroying it",
				"domain", name, "timeout", timeout)
			return d.destroy()
		case <-ctx.Done():
			return fmt.Errorf("shutdown domain %s: %w", name, ctx.Err())
		}
	}
}

// Reboot asks the guest to reboot (ACPI); a guest that ignores it keeps running.
func (c *Conn) Reboot(name string) error {
	d, err := c.ours(name)
	if err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	if err := d.r.DomainReboot(d.dom, 0); err != nil {
		return fmt.Errorf("reboot domain %s: %w", name, classify(err))
	}
	return nil
}

// Destroy stops the domain at once, as pulling the plug would; a stopped domain is left as
// it is. Its definition stays.
func (c *Conn) Destroy(name string) error {
	d, err := c.ours(name)
	if err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	return d.destroy()
}

func (d domain) destroy() error {
	if s, err := d.state(); err != nil || !s.active() {
		return err
	}
	if err := d.r.DomainDestroyFlags(d.dom, 0); err != nil {
		if s, serr := d.state(); serr == nil && !s.active() {
			return nil
		}
		return fmt.Errorf("destroy domain %s: %w", d.dom.Name, classify(err))
	}
	return nil
}

// Undefine destroys the domain if it runs, removes its definition, and deletes the files its
// Domain marked Owned; nothing else (the console log stays, and so do bases and disks it
// did not own).
func (c *Conn) Undefine(name string) error {
	d, err := c.ours(name)
	if err != nil {
		return fmt.Errorf("undefine: %w", err)
	}
	if err := d.destroy(); err != nil {
		return fmt.Errorf("undefine: %w", err)
	}
	flags := golibvirt.DomainUndefineManagedSave | golibvirt.DomainUndefineSnapshotsMetadata
	if err := d.r.DomainUndefineFlags(d.dom, flags); err != nil {
		return fmt.Errorf("undefine domain %s: %w", name, classify(err))
	}
	var errs []error
	for _, p := range d.meta.Owns {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("undefine domain %s: remove its files: %w", name, err)
	}
	return nil
}

// List returns enjin's domains on this host, running or not; the host's other domains are
// left out.
func (c *Conn) List() ([]Info, error) {
	r, err := c.rpc()
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	doms, _, err := r.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", classify(err))
	}
	var out []Info
	for _, dom := range doms {
		m, ok, err := metaFor(r, dom)
		if errors.Is(err, ErrNotFound) || (err == nil && !ok) {
			continue // gone since the listing, or not ours
		}
		if err != nil {
			return nil, fmt.Errorf("list domains: %s: %w", dom.Name, err)
		}
		s, err := (domain{r: r, dom: dom}).state()
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list domains: %w", err)
		}
		out = append(out, Info{Name: dom.Name, UUID: uuidString(dom.UUID), State: s, Meta: m})
	}
	return out, nil
}

func uuidString(u golibvirt.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// ConsoleLog is the file the domain's serial console is logged to.
func (c *Conn) ConsoleLog(name string) (string, error) {
	d, err := c.ours(name)
	if err != nil {
		return "", fmt.Errorf("console log: %w", err)
	}
	x, err := d.definition(golibvirt.DomainXMLInactive)
	if err != nil {
		return "", err
	}
	if x.Devices == nil || len(x.Devices.Serials) == 0 || x.Devices.Serials[0].Log == nil {
		return "", fmt.Errorf("domain %s: console log: no serial log: %w", name, ErrNotFound)
	}
	return x.Devices.Serials[0].Log.File, nil
}

// definition is the domain's XML, parsed: the running guest's, or with DomainXMLInactive
// the persistent one.
func (d domain) definition(flags golibvirt.DomainXMLFlags) (*libvirtxml.Domain, error) {
	s, err := d.r.DomainGetXMLDesc(d.dom, flags)
	if err != nil {
		return nil, fmt.Errorf("domain %s: xml: %w", d.dom.Name, classify(err))
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(s); err != nil {
		return nil, fmt.Errorf("domain %s: parse xml: %w", d.dom.Name, err)
	}
	return &x, nil
}
