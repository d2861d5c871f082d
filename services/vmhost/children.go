package vmhost

import (
	"slices"
	"sort"
	"sync"
	"time"

	"enjin"
	"enjin/supervisors/libvirt"
)

// listWait is how long Children waits for libvirtd before it answers with what it saw last.
const listWait = 150 * time.Millisecond

// seen is the last listing of the node's VMs and the listing under way, if any. libvirtd can
// take seconds to answer (starting up, shutting down, busy with other hosts' work) and a
// go-libvirt call cannot be abandoned, so one listing runs at a time, in the background.
type seen struct {
	mu       sync.Mutex
	children []enjin.Child
	listing  chan struct{} // closed when the listing under way ends; nil when none is
}

// Children reports every VM of this node as a ring 2 child, for the node's heartbeat. It
// never waits on libvirtd for more than listWait: a heartbeat that hung on libvirtd would
// make ring 0 think the node down while libvirtd restarts. When libvirtd is slow or gone, the
// last listing stands.
func (h *Host) Children() []enjin.Child {
	s := &h.seen
	s.mu.Lock()
	done := s.listing
	if done == nil {
		done = make(chan struct{})
		s.listing = done
		go h.list(done) // ends when libvirtd answers or the connection drops
	}
	s.mu.Unlock()
	timer := time.NewTimer(listWait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.children)
}

// list lists the node's VMs into h.seen and closes done.
func (h *Host) list(done chan struct{}) {
	infos, err := h.cfg.Libvirt.List()
	s := &h.seen
	s.mu.Lock()
	if err == nil {
		s.children = h.childrenOf(infos)
	} else {
		h.log.Debug("vms not listed; the last listing stands", "err", err)
	}
	s.listing = nil
	s.mu.Unlock()
	close(done)
}

// saw makes infos, a listing made elsewhere (Restore's), the last listing.
func (h *Host) saw(infos []libvirt.Info) {
	h.seen.mu.Lock()
	h.seen.children = h.childrenOf(infos)
	h.seen.mu.Unlock()
}

// childrenOf are the node's VMs among infos, as ring 2 children, by id.
func (h *Host) childrenOf(infos []libvirt.Info) []enjin.Child {
	var out []enjin.Child
	for _, in := range infos {
		if in.Meta.Node != h.cfg.Node || in.Meta.Host { // a ring 1 host reports itself
			continue
		}
		out = append(out, enjin.Child{Node: enjin.NodeID(in.Name), Tenant: in.Meta.Tenant, App: "vm:" + in.Meta.VM, State: stateOf(in.State)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
