package ring1

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"enjin/bus"
)

// leafConnect starts the node's own NATS server, in this process and listening nowhere, as a
// leafnode of the ring 0 hubs in Config.Leaf — any of them, in order, going on to the next
// when one is lost — authenticating with the node's credential file (read at every connect,
// so a renewed credential takes), and connects to it. What the node sends reaches ring 0 and
// what ring 0 sends reaches the node only as the node's RING1 user may: the hubs enforce its
// permissions on the leaf connection. opts are the connection's handlers.
func (n *Node) leafConnect(opts ...nats.Option) (*nats.Conn, error) {
	if n.cfg.CredsPath == "" {
		return nil, errors.New("a leafnode connection needs the node's credential in a file (a node that joined)")
	}
	var hubs []*url.URL
	for _, s := range n.cfg.Leaf {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "nats-leaf" && u.Scheme != "tls") {
			return nil, fmt.Errorf("leaf hub %q: want nats://host:port", s)
		}
		hubs = append(hubs, u)
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "enjin-ring1-" + string(n.cfg.Node),
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 1 << 20,
		LeafNode: server.LeafNodeOpts{ReconnectInterval: 250 * time.Millisecond,
			Remotes: []*server.RemoteLeafOpts{{URLs: hubs, Credentials: n.cfg.CredsPath, NoRandomize: true}}},
	})
	if err != nil {
		return nil, err
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("the node's leaf server did not start within 10 s")
	}
	base := []nats.Option{nats.InProcessServer(s), nats.Name(string(n.cfg.Node)),
		nats.CustomInboxPrefix(bus.Inbox(string(n.cfg.Node))), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond)}
	nc, err := nats.Connect("", append(base, opts...)...)
	if err != nil {
		s.Shutdown()
		return nil, err
	}
	n.leaf = s
	return nc, nil
}
