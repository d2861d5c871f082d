//go:build !linux

package router

import (
	"bufio"
	"io"
	"net"
)

func newRawIO(nc net.Conn) io.ReadWriter { return nc }

func writeAwait(w io.Writer, p []byte) (int, error) { return w.Write(p) }

func plainWrite(w io.Writer, p []byte) (int, error) { return w.Write(p) }

func flushAwait(bw *bufio.Writer, _ io.Writer) error { return bw.Flush() }

func awaits(io.Writer) bool { return false }
