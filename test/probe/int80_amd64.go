package main

// int80 makes i386 system call trap with up to three arguments and returns what the kernel
// put in EAX: a result, or a negated errno.
func int80(trap, a1, a2, a3 uint32) int32
