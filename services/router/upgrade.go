package router

import (
	"io"
	"net"
	"sync"
	"time"
)

// A WebSocket handshake (request.upgrade) goes to a backend like any GET, with Connection:
// Upgrade and Upgrade: websocket — the only Upgrade the router passes on. If the app answers
// 101, the router writes that answer to the client and the two connections become a tunnel:
// bytes are copied both ways, untouched, until either side closes; neither idle nor
// upstream timeouts apply to it, and it is not counted in flight (draining a release does
// not wait for its WebSockets: stopping the instance ends them). Any other answer is relayed
// as an ordinary response.

// tunnelLinger bounds how long a tunnel waits, once one side has closed, for the other to
// close too.
const tunnelLinger = 10 * time.Second

// tunnel writes the 101 answer to the client and copies bytes both ways until both
// directions end. It reports false: the client connection is the tunnel's.
func (c *conn) tunnel() bool {
	uc, bw := c.switched, c.bw
	c.switched = nil
	defer uc.nc.Close()
	c.writeStatusAndFields() // 101 and the app's fields but Connection and Upgrade: hop-by-hop
	bw.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	c.status = 101
	c.r.countStatus(101)
	c.wd.extend()
	if bw.Flush() != nil {
		return false
	}
	c.nc.SetDeadline(time.Time{})
	uc.nc.SetDeadline(time.Time{})
	var wg sync.WaitGroup
	wg.Go(func() { // ends when the client stops sending, or either connection fails
		io.Copy(uc.nc, c.br) // what the client sent after its head is in c.br
		halfClose(uc.nc, c.nc)
	})
	n, _ := io.Copy(c.nc, uc.br) // likewise what the app sent after its 101
	c.written = n
	halfClose(c.nc, uc.nc)
	wg.Wait()
	return false
}

// halfClose tells to that nothing more comes, and gives from tunnelLinger to finish.
func halfClose(to, from net.Conn) {
	if tc, ok := to.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		to.Close()
	}
	from.SetReadDeadline(time.Now().Add(tunnelLinger))
}
