#include "textflag.h"

// func int80(trap, a1, a2, a3 uint32) int32
// A system call through the i386 ABI: the kernel reads its number and arguments from the
// 32-bit registers and answers in EAX.
TEXT ·int80(SB), NOSPLIT, $0-20
	MOVL trap+0(FP), AX
	MOVL a1+4(FP), BX
	MOVL a2+8(FP), CX
	MOVL a3+12(FP), DX
	INT  $0x80
	MOVL AX, ret+16(FP)
	RET
