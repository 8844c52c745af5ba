package torchsave

import (
	"encoding/binary"
	"fmt"
)

// pickleArgs gives, for each opcode of pickle protocols 0 to 5 (as
// Python's pickletools lists them), the layout of its argument: fixed is
// a size in bytes, lines a count of newline-terminated arguments, and
// lenBytes the size of the little-endian length that precedes a variable
// argument. Unknown opcodes are nil.
var pickleArgs = func() [256]*struct{ fixed, lines, lenBytes int } {
	var t [256]*struct{ fixed, lines, lenBytes int }
	set := func(ops string, fixed, lines, lenBytes int) {
		for i := range len(ops) {
			t[ops[i]] = &struct{ fixed, lines, lenBytes int }{fixed, lines, lenBytes}
		}
	}
	set("(.012NQRabd}el]ost)u\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98", 0, 0, 0)
	set("Khq\x80\x82", 1, 0, 0)  // BININT1 BINGET BINPUT PROTO EXT1
	set("M\x83", 2, 0, 0)        // BININT2 EXT2
	set("Jjr\x84", 4, 0, 0)      // BININT LONG_BINGET LONG_BINPUT EXT4
	set("G\x95", 8, 0, 0)        // BINFLOAT FRAME
	set("FILPSVgp", 0, 1, 0)     // FLOAT INT LONG PERSID STRING UNICODE GET PUT
	set("ci", 0, 2, 0)           // GLOBAL INST
	set("UC\x8a\x8c", 0, 0, 1)   // SHORT_BINSTRING SHORT_BINBYTES LONG1 SHORT_BINUNICODE
	set("TXB\x8b", 0, 0, 4)      // BINSTRING BINUNICODE BINBYTES LONG4
	set("\x8d\x8e\x96", 0, 0, 8) // BINUNICODE8 BINBYTES8 BYTEARRAY8
	return t
}()

// frameOpcode is protocol 4's FRAME.
const frameOpcode = 0x95

// checkPickle steps over the opcodes of the pickle b up to its STOP and
// checks that each argument fits in b. gopickle allocates a value's
// declared length before reading it, so a damaged length field could
// otherwise make it allocate gigabytes.
func checkPickle(b []byte) error {
	for i := 0; i < len(b); {
		op := b[i]
		arg := pickleArgs[op]
		if arg == nil {
			return fmt.Errorf("unknown pickle opcode 0x%02x at byte %d", op, i)
		}
		i++
		if op == '.' {
			return nil
		}
		if op == frameOpcode {
			// FRAME's 8-byte argument is the size of the opcodes that
			// follow, which gopickle allocates up front: bound it by
			// what remains, then go on to those opcodes.
			if len(b)-i < 8 {
				return fmt.Errorf("the pickle ends inside the FRAME length at byte %d", i-1)
			}
			if n := binary.LittleEndian.Uint64(b[i:]); n > uint64(len(b)-i-8) {
				return fmt.Errorf("FRAME at byte %d declares %d bytes, but %d remain", i-1, n, len(b)-i-8)
			}
			i += 8
			continue
		}
		n := uint64(arg.fixed)
		for range arg.lines {
			j := i
			for j < len(b) && b[j] != '\n' {
				j++
			}
			if j == len(b) {
				return fmt.Errorf("the pickle ends inside the argument of opcode 0x%02x at byte %d", op, i-1)
			}
			i = j + 1
		}
		if arg.lenBytes > 0 {
			if len(b)-i < arg.lenBytes {
				return fmt.Errorf("the pickle ends inside the length of opcode 0x%02x at byte %d", op, i-1)
			}
			var buf [8]byte
			copy(buf[:], b[i:i+arg.lenBytes])
			n = binary.LittleEndian.Uint64(buf[:])
			i += arg.lenBytes
		}
		if n > uint64(len(b)-i) {
			return fmt.Errorf("opcode 0x%02x at byte %d declares %d bytes, but %d remain", op, i-1, n, len(b)-i)
		}
		i += int(n)
	}
	return fmt.Errorf("the pickle ends before its STOP opcode")
}
