package ring1

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"enjin/bus"
	"enjin/keys"
)

// leafConnect starts the node's own NATS server, in this process and listening nowhere, as a
// leafnode of the ring 0 hubs in Config.Leaf — any of them, in order, going on to the next
// when one is lost — authenticating with the node's credential file (read at every connect,
// so a renewed credential takes), and connects to it. What the node sends reaches ring 0 and
// what ring 0 sends reaches the node only as the node's RING1 user may: the hubs enforce its
// permissions on the leaf connection. opts are the connection's handlers; denied hears when
// the hubs have refused the leaf's credential leafDenials times since the last heartbeat they
// acknowledged (a decommissioned node's, an expired one): a credential that can no longer
// work is no reason to keep trying.
func (n *Node) leafConnect(denied func(error), opts ...nats.Option) (*nats.Conn, error) {
	if n.cfg.CredsPath == "" {
		return nil, errors.New("a leafnode connection needs the node's credential in a file (a node that joined)")
	}
	var hubs []*url.URL
	remote := &server.RemoteLeafOpts{Credentials: n.cfg.CredsPath, NoRandomize: true}
	for _, s := range n.cfg.Leaf {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "nats-leaf" && u.Scheme != "tls") {
			return nil, fmt.Errorf("leaf hub %q: want nats://host:port", s)
		}
		hubs = append(hubs, u)
		if u.Scheme == "tls" && remote.TLSConfig == nil { // hubs beyond loopback: checked by the CA
			if len(n.cfg.CA) == 0 {
				return nil, fmt.Errorf("leaf hub %s speaks TLS, and the node knows no CA to check it by", s)
			}
			tc, err := keys.ClientTLS(n.cfg.CA, keys.Ring0Name)
			if err != nil {
				return nil, err
			}
			remote.TLSConfig = tc
		}
	}
	remote.URLs = hubs
	s, err := server.NewServer(&server.Options{
		ServerName: "enjin-ring1-" + string(n.cfg.Node),
		DontListen: true,
		NoSigs:     true,
		MaxPayload: 1 << 20,
		LeafNode: server.LeafNodeOpts{ReconnectInterval: 250 * time.Millisecond,
			Remotes: []*server.RemoteLeafOpts{remote}},
	})
	if err != nil {
		return nil, err
	}
	s.SetLoggerV2(leafLog{n.log.With("component", "leaf"), func() {
		if n.leafDenied.Add(1) == leafDenials {
			denied(fmt.Errorf("the hubs refused the leaf %d times: %w", leafDenials, nats.ErrAuthorization))
		}
	}}, false, false, false)
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

// leafDenials is how many refusals of the leaf's credential in a row end the node.
const leafDenials = 10

// leafLog is the leaf server's log, in the node's: whether the hubs take the leaf connection,
// and why not, is the node's to say. A hub refusing the credential calls denied; a hub that
// cannot be reached is a warning (another may be).
type leafLog struct {
	l      *slog.Logger
	denied func()
}

func (a leafLog) Noticef(f string, v ...any) { a.l.Info(fmt.Sprintf(f, v...)) }
func (a leafLog) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a leafLog) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a leafLog) Errorf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	switch {
	case strings.Contains(msg, "Leafnode Error 'Authorization Violation'"):
		a.l.Warn(msg)
		a.denied()
	case strings.HasPrefix(msg, "Error trying to connect as leafnode"):
		a.l.Warn(msg)
	default:
		a.l.Error(msg)
	}
}
func (a leafLog) Debugf(f string, v ...any) { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a leafLog) Tracef(f string, v ...any) { a.l.Debug(fmt.Sprintf(f, v...)) }
