package vmhost

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// ServeRelay passes every connection accepted on ln (the guest port on the bridge's gateway,
// which only VMs reach) through to the bus at target, byte for byte: the guest authenticates
// to the broker itself, with its own credential. It returns when ctx ends, after closing ln
// and every relayed connection.
func ServeRelay(ctx context.Context, ln net.Listener, target string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Go(func() { relay(ctx, c, target) }) // ends when either side closes, or with ctx
	}
}

func relay(ctx context.Context, c net.Conn, target string) {
	defer c.Close()
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); closeWrite(up); done <- struct{}{} }() // ends at c's EOF or an error
	go func() { io.Copy(c, up); closeWrite(c); done <- struct{}{} }()  // ends at up's EOF or an error
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
