package torchpickle

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Argument kinds of pickle opcodes, as pickletools documents them for
// protocols 0 to 5.
const (
	argNone   = iota
	argFixed  // n bytes
	argLine   // bytes up to and including '\n'
	argLines  // two newline-terminated lines (GLOBAL, INST)
	argLength // an n-byte little-endian length, then that many bytes
)

type opcodeArg struct {
	kind int
	n    int
}

// opcodeArgs lists every opcode of pickle protocols 0 to 5 with the shape
// of its argument, which is all scanPickle needs to step over it.
var opcodeArgs = func() [256]*opcodeArg {
	var t [256]*opcodeArg
	set := func(ops string, kind, n int) {
		for i := range len(ops) {
			t[ops[i]] = &opcodeArg{kind, n}
		}
	}
	// No argument: MARK STOP POP POP_MARK DUP NONE BINPERSID REDUCE APPEND
	// BUILD DICT EMPTY_DICT APPENDS LIST EMPTY_LIST OBJ SETITEM TUPLE
	// EMPTY_TUPLE SETITEMS NEWOBJ TUPLE1-3 NEWTRUE NEWFALSE EMPTY_SET
	// ADDITEMS FROZENSET NEWOBJ_EX STACK_GLOBAL MEMOIZE NEXT_BUFFER
	// READONLY_BUFFER.
	set("(.012NQRabd}el]ost)u\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98", argNone, 0)
	set("Khq\x80\x82", argFixed, 1)   // BININT1 BINGET BINPUT PROTO EXT1
	set("M\x83", argFixed, 2)         // BININT2 EXT2
	set("Jjr\x84", argFixed, 4)       // BININT LONG_BINGET LONG_BINPUT EXT4
	set("G\x95", argFixed, 8)         // BINFLOAT FRAME
	set("FILPSVgp", argLine, 0)       // FLOAT INT LONG PERSID STRING UNICODE GET PUT
	set("ci", argLines, 0)            // GLOBAL INST
	set("UC\x8a\x8c", argLength, 1)   // SHORT_BINSTRING SHORT_BINBYTES LONG1 SHORT_BINUNICODE
	set("TXB\x8b", argLength, 4)      // BINSTRING BINUNICODE BINBYTES LONG4
	set("\x8d\x8e\x96", argLength, 8) // BINUNICODE8 BINBYTES8 BYTEARRAY8
	return t
}()

// scanPickle reads one pickle from r, up to and including its STOP
// opcode, and returns its bytes. It steps over every opcode's argument
// without building anything, and fails when the pickle would exceed limit
// bytes or an opcode is unknown. Unpickling the returned bytes is then
// safe from a length field that claims gigabytes: gopickle allocates such
// a length before it reads, which could exhaust memory.
func scanPickle(r *bufio.Reader, limit int64) ([]byte, error) {
	var out bytes.Buffer
	take := func(n int64) error {
		if int64(out.Len())+n > limit {
			return fmt.Errorf("the pickle is larger than %d bytes, too large for a state dict's", limit)
		}
		if _, err := io.CopyN(&out, r, n); err != nil {
			return unexpectedEOF(err)
		}
		return nil
	}
	takeLine := func() error {
		for {
			b, err := r.ReadByte()
			if err != nil {
				return unexpectedEOF(err)
			}
			if int64(out.Len()) >= limit {
				return fmt.Errorf("the pickle is larger than %d bytes, too large for a state dict's", limit)
			}
			out.WriteByte(b)
			if b == '\n' {
				return nil
			}
		}
	}
	for {
		op, err := r.ReadByte()
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		arg := opcodeArgs[op]
		if arg == nil {
			return nil, fmt.Errorf("the pickle has the unknown opcode 0x%02x at byte %d; it is damaged or not a pickle", op, out.Len())
		}
		out.WriteByte(op)
		switch arg.kind {
		case argFixed:
			start := out.Len()
			err = take(int64(arg.n))
			if err == nil && op == 0x95 {
				// FRAME's argument is the size of the opcodes that follow,
				// which gopickle allocates up front.
				if n := binary.LittleEndian.Uint64(out.Bytes()[start:]); n > uint64(limit) {
					err = fmt.Errorf("the pickle's FRAME at byte %d declares %d bytes, more than the %d-byte limit; it is damaged", start-1, n, limit)
				}
			}
		case argLine:
			err = takeLine()
		case argLines:
			if err = takeLine(); err == nil {
				err = takeLine()
			}
		case argLength:
			start := out.Len()
			if err = take(int64(arg.n)); err != nil {
				break
			}
			var lenBuf [8]byte
			copy(lenBuf[:], out.Bytes()[start:])
			n := binary.LittleEndian.Uint64(lenBuf[:])
			if (op == 'T' || op == 0x8b) && int32(n) < 0 {
				// BINSTRING and LONG4 lengths are signed 32-bit.
				return nil, fmt.Errorf("the pickle has a negative length at byte %d", start)
			}
			if n > uint64(limit) {
				return nil, fmt.Errorf("the pickle declares a %d-byte value at byte %d, more than the %d-byte limit", n, start, limit)
			}
			err = take(int64(n))
		}
		if err != nil {
			return nil, err
		}
		if op == '.' {
			return out.Bytes(), nil
		}
	}
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("the pickle ends before its STOP opcode (truncated file?)")
	}
	return err
}
