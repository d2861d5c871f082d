//go:build !amd64

package main

import "golang.org/x/sys/unix"

// int80 exists only on amd64; elsewhere there is no i386 ABI to reach.
func int80(trap, a1, a2, a3 uint32) int32 { return -int32(unix.ENOSYS) }
