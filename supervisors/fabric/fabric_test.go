package fabric_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"enjin/supervisors/fabric"
	"enjin/supervisors/netseg"
)

// A fabric is made, made again unchanged (a restart), carries TCP between its hosts and the
// gateway both ways, and leaves nothing once removed.
func TestFabric(t *testing.T) {
	n := os.Getpid() % 200
	br := fmt.Sprintf("enjft%d", n)
	f, err := fabric.Plan(br, netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", n)), []string{br + "-h2", br + "-h3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Remove() })
	for range 2 {
		if err := f.Ensure(); err != nil {
			t.Fatal(err)
		}
	}
	if f.Gateway.String() != fmt.Sprintf("198.18.%d.1", n) || f.Hosts[1].Addr.String() != fmt.Sprintf("198.18.%d.3", n) {
		t.Fatalf("plan: %+v", f)
	}
	// h2 listens; the gateway and h3 reach it. The gateway listens; h3 reaches it.
	var ln net.Listener
	if err := netseg.InNamespace(f.Hosts[0].Netns, func() (err error) {
		ln, err = net.Listen("tcp", f.Hosts[0].Addr.String()+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("h2"))
			c.Close()
		}
	}()
	gl, err := net.Listen("tcp", f.Gateway.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	go func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("gw"))
			c.Close()
		}
	}()
	read := func(ns, addr string) string {
		var got string
		dial := func() error {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			b := make([]byte, 2)
			_, err = c.Read(b)
			got = string(b)
			return err
		}
		var err error
		if ns == "" {
			err = dial()
		} else {
			err = netseg.InNamespace(ns, dial)
		}
		if err != nil {
			t.Fatalf("dial %s from %q: %v", addr, ns, err)
		}
		return got
	}
	if read("", ln.Addr().String()) != "h2" || read(f.Hosts[1].Netns, ln.Addr().String()) != "h2" || read(f.Hosts[1].Netns, gl.Addr().String()) != "gw" {
		t.Fatal("the fabric does not carry TCP between its hosts and the gateway")
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, h := range f.Hosts {
		if _, err := os.Stat("/run/netns/" + h.Netns); err == nil {
			t.Fatalf("namespace %s left", h.Netns)
		}
	}
	if _, err := net.InterfaceByName(br); err == nil {
		t.Fatalf("bridge %s left", br)
	}
	if err := f.Remove(); err != nil {
		t.Fatalf("removing again: %v", err)
	}
}
