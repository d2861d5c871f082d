//go:build !linux

package router

import (
	"io"
	"net"
)

func newRawIO(nc net.Conn) io.ReadWriter { return nc }
