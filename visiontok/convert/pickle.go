package convert

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A restricted unpickler for the data.pkl of a torch.save checkpoint. It is toklip's own rather
// than github.com/nlpodyssey/gopickle's, which trusts a pickle's lengths and costs: it allocates
// whatever a length claims before reading it (7 bytes of BINUNICODE made it allocate 2 GB; an
// 8-byte BINBYTES8 length of 2^62 panicked with "makeslice: len out of range"), and a one-byte
// MARK cost it 256 bytes (1 MB of MARKs: 396 MB). This one
//   - executes nothing: a global is only ever a name; it must be one of the few a checkpoint of
//     tensors uses (pickleGlobals), or the pickle is refused when it names it, which is where
//     Python would import and later call it (os.system, builtins.eval, ...);
//   - reads the opcodes of the binary protocols 2 to 5 that carry data, memo and calls, and
//     refuses the rest (protocol 0's text forms, extension registry, out-of-band buffers);
//   - checks every length against the bytes that are left, and counts instructions
//     (maxPickleOps), so that what it allocates is bounded by a few words per instruction and
//     the bytes of the pickle.

// Limits on data.pkl. A TokLIP training checkpoint's pickle (state_dict plus Adam state, about
// 3,000 tensors) is under 1 MB and 300,000 instructions; the limits leave tens of times that,
// and cap what a hostile pickle can make toklip allocate at a few hundred MB.
const (
	maxPickle    = 32 << 20
	maxPickleOps = 4 << 20
)

// Python values, as this unpickler represents them: nil (None), bool, int64, bigInt, float64,
// string, []byte, pyTuple, *pyList, *pyDict, *pyGlobal, *pyObject, and what the checkpoint's
// callables make (*storageRef, *tensorRef).
type (
	pyTuple []any
	pyList  struct{ items []any }
	// pyDict keeps its items in insertion order, key then value, as a Python dict keeps them.
	pyDict   struct{ items []any }
	pyGlobal struct{ module, name string }
	// pyObject is an instance toklip does not need (a numpy scalar or dtype, an encoded
	// string): made by an allowed global, it records nothing.
	pyObject struct{ class *pyGlobal }
	// bigInt is an int too large for int64 (LONG1/LONG4); no tensor field can be one.
	bigInt struct{}
)

func (g *pyGlobal) String() string { return g.module + "." + g.name }

// pickleGlobals are the globals a torch.save checkpoint may name: the tensor and storage
// rebuilders, OrderedDict, and what the official TokLIP checkpoints pickle beside their tensors
// (HuggingFace lists numpy.dtype, numpy.core.multiarray.scalar and _codecs.encode for them;
// numpy 2 moved numpy.core to numpy._core). torch's own weights_only unpickler allows a similar
// set; unlike it, toklip also accepts the numpy scalars, as inert objects.
var pickleGlobals = map[string]bool{
	"torch._utils._rebuild_tensor":               true,
	"torch._utils._rebuild_tensor_v2":            true,
	"torch._utils._rebuild_parameter":            true,
	"torch._utils._rebuild_parameter_with_state": true,
	"collections.OrderedDict":                    true,
	"torch.Size":                                 true,
	"numpy.dtype":                                true,
	"numpy.core.multiarray.scalar":               true,
	"numpy._core.multiarray.scalar":              true,
	"_codecs.encode":                             true,
}

// Pickle opcodes (Python's Lib/pickle.py names them).
const (
	opMark            = '('
	opStop            = '.'
	opPop             = '0'
	opPopMark         = '1'
	opDup             = '2'
	opBinInt          = 'J'
	opBinInt1         = 'K'
	opBinInt2         = 'M'
	opNone            = 'N'
	opBinPersID       = 'Q'
	opReduce          = 'R'
	opBinString       = 'T'
	opShortBinString  = 'U'
	opBinUnicode      = 'X'
	opAppend          = 'a'
	opBuild           = 'b'
	opGlobal          = 'c'
	opDict            = 'd'
	opEmptyDict       = '}'
	opAppends         = 'e'
	opBinGet          = 'h'
	opLongBinGet      = 'j'
	opList            = 'l'
	opEmptyList       = ']'
	opBinPut          = 'q'
	opLongBinPut      = 'r'
	opSetItem         = 's'
	opTuple           = 't'
	opEmptyTuple      = ')'
	opSetItems        = 'u'
	opBinFloat        = 'G'
	opProto           = 0x80
	opNewObj          = 0x81
	opTuple1          = 0x85
	opTuple2          = 0x86
	opTuple3          = 0x87
	opNewTrue         = 0x88
	opNewFalse        = 0x89
	opLong1           = 0x8a
	opLong4           = 0x8b
	opBinBytes        = 'B'
	opShortBinBytes   = 'C'
	opShortBinUnicode = 0x8c
	opBinUnicode8     = 0x8d
	opBinBytes8       = 0x8e
	opStackGlobal     = 0x93
	opMemoize         = 0x94
	opFrame           = 0x95
	opByteArray8      = 0x96
)

// unpickler runs one pickle held in memory.
type unpickler struct {
	data  []byte
	pos   int
	stack chunks[any]
	marks chunks[int] // stack heights at each MARK
	// memo holds the entries Python's pickler numbers 0, 1, 2, ... in sequence; memoAt any
	// others, which only a hand-made pickle has.
	memo   chunks[any]
	memoAt map[uint32]any
	// persistentLoad resolves a persistent id (a storage of the checkpoint).
	persistentLoad func(pid any) (any, error)
}

// chunks is a stack in blocks of chunkSize that never move: growing a slice by copying it
// would allocate up to four times the stack's final size in all (slices grow by a quarter, or
// double, and every old array is garbage), where each instruction may only cost a few words.
type chunks[T any] struct {
	blocks [][]T
	n      int
}

const chunkSize = 512

func (c *chunks[T]) len() int { return c.n }

func (c *chunks[T]) push(v T) {
	if c.n == len(c.blocks)*chunkSize {
		c.blocks = append(c.blocks, make([]T, chunkSize))
	}
	c.blocks[c.n/chunkSize][c.n%chunkSize] = v
	c.n++
}

func (c *chunks[T]) at(i int) *T { return &c.blocks[i/chunkSize][i%chunkSize] }

// truncate drops the entries from n on, clearing them so that what they held can be collected.
func (c *chunks[T]) truncate(n int) {
	var zero T
	for i := n; i < c.n; i++ {
		*c.at(i) = zero
	}
	c.n = n
}

var errPickleTruncated = errors.New("the pickle ends in the middle of an instruction")

// unpickle runs data and returns the value it stops with.
func unpickle(data []byte, persistentLoad func(any) (any, error)) (any, error) {
	u := &unpickler{data: data, persistentLoad: persistentLoad}
	for ops := 0; ; ops++ {
		if ops == maxPickleOps {
			return nil, fmt.Errorf("the pickle runs more than %d instructions", maxPickleOps)
		}
		at := u.pos
		op, err := u.take(1)
		if err != nil {
			return nil, errors.New("the pickle ends without a STOP instruction")
		}
		if op[0] == opStop {
			v, err := u.pop()
			if err != nil {
				return nil, fmt.Errorf("STOP at byte %d: %w", at, err)
			}
			return v, nil
		}
		if err := u.step(op[0]); err != nil {
			return nil, fmt.Errorf("byte %d (opcode 0x%02x): %w", at, op[0], err)
		}
	}
}

// take returns the next n bytes; n is checked against what is left before anything is made.
func (u *unpickler) take(n uint64) ([]byte, error) {
	if n > uint64(len(u.data)-u.pos) {
		return nil, errPickleTruncated
	}
	b := u.data[u.pos : u.pos+int(n)]
	u.pos += int(n)
	return b, nil
}

func (u *unpickler) uint(size int) (uint64, error) {
	b, err := u.take(uint64(size))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// counted reads a length of size bytes, then that many bytes.
func (u *unpickler) counted(size int) ([]byte, error) {
	n, err := u.uint(size)
	if err != nil {
		return nil, err
	}
	return u.take(n)
}

func (u *unpickler) line() (string, error) {
	i := bytes.IndexByte(u.data[u.pos:min(len(u.data), u.pos+1024)], '\n')
	if i < 0 {
		return "", errors.New("a GLOBAL name is not ended by a newline within 1024 bytes")
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) push(v any) { u.stack.push(v) }

// floor is the stack height below which pop may not go: the last MARK's.
func (u *unpickler) floor() int {
	if u.marks.len() == 0 {
		return 0
	}
	return *u.marks.at(u.marks.len() - 1)
}

func (u *unpickler) pop() (any, error) {
	if u.stack.len() <= u.floor() {
		return nil, errors.New("the stack is empty")
	}
	v := *u.stack.at(u.stack.len() - 1)
	u.stack.truncate(u.stack.len() - 1)
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if u.stack.len() <= u.floor() {
		return nil, errors.New("the stack is empty")
	}
	return *u.stack.at(u.stack.len() - 1), nil
}

// pop2 pops the two top items, the lower one first.
func (u *unpickler) pop2() (any, any, error) {
	b, err := u.pop()
	if err != nil {
		return nil, nil, err
	}
	a, err := u.pop()
	return a, b, err
}

// popMark returns the items above the last MARK, removing them and the mark.
func (u *unpickler) popMark() ([]any, error) {
	if u.marks.len() == 0 {
		return nil, errors.New("no MARK to pop to")
	}
	m := *u.marks.at(u.marks.len() - 1)
	u.marks.truncate(u.marks.len() - 1)
	var items []any
	if n := u.stack.len() - m; n > 0 {
		items = make([]any, n)
		for i := range items {
			items[i] = *u.stack.at(m + i)
		}
	}
	u.stack.truncate(m)
	return items, nil
}

func (u *unpickler) popN(n int) ([]any, error) {
	if u.stack.len()-u.floor() < n {
		return nil, errors.New("the stack is empty")
	}
	items := make([]any, n)
	for i := range items {
		items[i] = *u.stack.at(u.stack.len() - n + i)
	}
	u.stack.truncate(u.stack.len() - n)
	return items, nil
}

func (u *unpickler) memoPut(i uint32, v any) {
	switch {
	case int(i) < u.memo.len():
		*u.memo.at(int(i)) = v
	case int(i) == u.memo.len():
		u.memo.push(v)
		delete(u.memoAt, i)
	default:
		if u.memoAt == nil {
			u.memoAt = map[uint32]any{}
		}
		u.memoAt[i] = v
	}
}

func (u *unpickler) memoGet(i uint32) (any, bool) {
	if int(i) < u.memo.len() {
		return *u.memo.at(int(i)), true
	}
	v, ok := u.memoAt[i]
	return v, ok
}

func (u *unpickler) step(op byte) error {
	switch op {
	case opProto:
		v, err := u.uint(1)
		if err != nil {
			return err
		}
		if v < 2 || v > 5 {
			return fmt.Errorf("pickle protocol %d is not one torch.save writes (2 to 5)", v)
		}
	case opFrame: // the pickle is in memory: a frame is only a length to check
		n, err := u.uint(8)
		if err != nil {
			return err
		}
		if n > uint64(len(u.data)-u.pos) {
			return fmt.Errorf("a frame of %d bytes runs past the end of the pickle", n)
		}
	case opMark:
		u.marks.push(u.stack.len())
	case opPop:
		_, err := u.pop()
		return err
	case opPopMark:
		_, err := u.popMark()
		return err
	case opDup:
		v, err := u.top()
		if err != nil {
			return err
		}
		u.push(v)
	case opNone:
		u.push(nil)
	case opNewTrue, opNewFalse:
		u.push(op == opNewTrue)
	case opBinInt:
		v, err := u.uint(4)
		if err != nil {
			return err
		}
		u.push(int64(int32(v)))
	case opBinInt1, opBinInt2:
		v, err := u.uint(argSize(op))
		if err != nil {
			return err
		}
		u.push(int64(v))
	case opLong1, opLong4:
		b, err := u.counted(argSize(op))
		if err != nil {
			return err
		}
		u.push(decodeLong(b))
	case opBinFloat:
		b, err := u.take(8)
		if err != nil {
			return err
		}
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case opShortBinUnicode, opBinUnicode, opBinUnicode8, opShortBinString, opBinString:
		b, err := u.counted(argSize(op))
		if err != nil {
			return err
		}
		u.push(string(b))
	case opShortBinBytes, opBinBytes, opBinBytes8, opByteArray8:
		b, err := u.counted(argSize(op))
		if err != nil {
			return err
		}
		u.push(append([]byte(nil), b...))
	case opEmptyTuple:
		u.push(pyTuple(nil))
	case opTuple1, opTuple2, opTuple3:
		items, err := u.popN(int(op-opTuple1) + 1)
		if err != nil {
			return err
		}
		u.push(pyTuple(items))
	case opTuple:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(pyTuple(items))
	case opEmptyList:
		u.push(&pyList{})
	case opList:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(&pyList{items: items})
	case opAppend, opAppends:
		var items []any
		var err error
		if op == opAppend {
			var v any
			v, err = u.pop()
			items = []any{v}
		} else {
			items, err = u.popMark()
		}
		if err != nil {
			return err
		}
		target, err := u.top()
		if err != nil {
			return err
		}
		l, ok := target.(*pyList)
		if !ok {
			return fmt.Errorf("APPEND to a %s, not a list", describe(target))
		}
		l.items = appendDoubling(l.items, items...)
	case opEmptyDict:
		u.push(&pyDict{})
	case opDict:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d := &pyDict{}
		if err := d.setItems(items); err != nil {
			return err
		}
		u.push(d)
	case opSetItem, opSetItems:
		var items []any
		var err error
		if op == opSetItem {
			var k, v any
			k, v, err = u.pop2()
			items = []any{k, v}
		} else {
			items, err = u.popMark()
		}
		if err != nil {
			return err
		}
		target, err := u.top()
		if err != nil {
			return err
		}
		d, ok := target.(*pyDict)
		if !ok {
			return fmt.Errorf("SETITEM on a %s, not a dict", describe(target))
		}
		return d.setItems(items)
	case opBinPut, opLongBinPut, opMemoize:
		var i uint64
		var err error
		switch op {
		case opBinPut, opLongBinPut:
			i, err = u.uint(argSize(op))
		default: // MEMOIZE numbers entries as Python does, by how many there are
			i = uint64(u.memo.len() + len(u.memoAt))
		}
		if err != nil {
			return err
		}
		v, err := u.top()
		if err != nil {
			return err
		}
		u.memoPut(uint32(i), v)
	case opBinGet, opLongBinGet:
		i, err := u.uint(argSize(op))
		if err != nil {
			return err
		}
		v, ok := u.memoGet(uint32(i))
		if !ok {
			return fmt.Errorf("memo entry %d was never stored", i)
		}
		u.push(v)
	case opGlobal:
		module, err := u.line()
		if err != nil {
			return err
		}
		name, err := u.line()
		if err != nil {
			return err
		}
		g, err := global(module, name)
		if err != nil {
			return err
		}
		u.push(g)
	case opStackGlobal:
		m, n, err := u.pop2()
		if err != nil {
			return err
		}
		module, ok1 := m.(string)
		name, ok2 := n.(string)
		if !ok1 || !ok2 {
			return errors.New("STACK_GLOBAL of values that are not names")
		}
		g, err := global(module, name)
		if err != nil {
			return err
		}
		u.push(g)
	case opReduce, opNewObj:
		f, a, err := u.pop2()
		if err != nil {
			return err
		}
		args, ok := a.(pyTuple)
		if !ok {
			return fmt.Errorf("a call's arguments are a %s, not a tuple", describe(a))
		}
		g, ok := f.(*pyGlobal)
		if !ok {
			return fmt.Errorf("a call of a %s, not of a global", describe(f))
		}
		v, err := call(g, args)
		if err != nil {
			return fmt.Errorf("%s: %w", g, err)
		}
		u.push(v)
	case opBuild:
		// BUILD sets an object's state (__setstate__): the objects allowed here need none of
		// theirs (a tensor's Python attributes, a numpy dtype's fields), so it is dropped.
		if _, err := u.pop(); err != nil {
			return err
		}
		if _, err := u.top(); err != nil {
			return err
		}
	case opBinPersID:
		pid, err := u.pop()
		if err != nil {
			return err
		}
		v, err := u.persistentLoad(pid)
		if err != nil {
			return err
		}
		u.push(v)
	default:
		return fmt.Errorf("opcode %q is not one torch.save writes", op)
	}
	return nil
}

// argSize is the size of an opcode's integer argument, or of the length before its bytes.
func argSize(op byte) int {
	switch op {
	case opBinInt1, opBinGet, opBinPut, opLong1, opShortBinUnicode, opShortBinString, opShortBinBytes:
		return 1
	case opBinInt2:
		return 2
	case opBinUnicode8, opBinBytes8, opByteArray8:
		return 8
	}
	return 4 // BININT, LONG_BINGET/PUT, LONG4, BINUNICODE, BINSTRING, BINBYTES
}

// global resolves a GLOBAL to a name that later calls can use, refusing any name not allowed.
func global(module, name string) (any, error) {
	full := module + "." + name
	if module == "torch" {
		if dt, ok := storageTypes[name]; ok {
			return &storageClass{dtype: dt}, nil
		}
	}
	if !pickleGlobals[full] {
		return nil, fmt.Errorf("the pickle imports %s, which a checkpoint of tensors does not use; toklip refuses it (Python would import and could run it)", quoteName(full))
	}
	return &pyGlobal{module: module, name: name}, nil
}

// quoteName shows a name from the file, quoted only when it holds more than a dotted name.
func quoteName(s string) string {
	for _, r := range s {
		if !(r == '.' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}

// call calls an allowed global.
func call(g *pyGlobal, args pyTuple) (any, error) {
	switch g.String() {
	case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2":
		return rebuildTensor(args)
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(args) < 1 {
			return nil, errors.New("no tensor")
		}
		if _, ok := args[0].(*tensorRef); !ok {
			return nil, fmt.Errorf("rebuilds a %s, not a tensor", describe(args[0]))
		}
		return args[0], nil
	case "collections.OrderedDict":
		// Pickled as OrderedDict() and then filled by SETITEMS. Made from a list of pairs, a
		// memo reference to one list could be copied into a new dict by every 3-byte call.
		if len(args) > 0 {
			return nil, errors.New("made from arguments; torch.save pickles it empty, then sets its items")
		}
		return &pyDict{}, nil
	case "torch.Size":
		if len(args) != 1 {
			return nil, errors.New("wants one tuple")
		}
		return args[0], nil
	}
	return &pyObject{class: g}, nil // a numpy scalar or dtype, an encoded string
}

// setItems stores key, value pairs; a key stored before is replaced, as in Python.
func (d *pyDict) setItems(items []any) error {
	if len(items)%2 != 0 {
		return errors.New("SETITEMS with a key and no value")
	}
	for i := 0; i < len(items); i += 2 {
		k, v := items[i], items[i+1]
		if !hashable(k) {
			return fmt.Errorf("a dict key is a %s", describe(k))
		}
		// Only the few dicts toklip reads are looked up by key (asDict), with a map; here a
		// repeated key of a large dict would cost a scan per item, so it is left for asDict.
		d.items = appendDoubling(d.items, k, v)
	}
	return nil
}

// appendDoubling is append that doubles a full slice's capacity: append grows large slices by
// a quarter, so that a list built one item at a time allocates five times its final size in
// all; doubling keeps that under four times, and at two times on average.
func appendDoubling(s []any, items ...any) []any {
	if len(s)+len(items) > cap(s) {
		grown := make([]any, len(s), max(2*cap(s), len(s)+len(items), 4))
		copy(grown, s)
		s = grown
	}
	return append(s, items...)
}

func hashable(k any) bool {
	switch k.(type) {
	case nil, bool, int64, bigInt, float64, string, []byte, pyTuple, *pyGlobal, *pyObject, *storageClass:
		return true
	}
	return false
}

// decodeLong reads a little-endian two's complement integer; one wider than int64 becomes a
// bigInt, which no field that toklip reads accepts.
func decodeLong(b []byte) any {
	if len(b) > 8 {
		return bigInt{}
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if n := len(b); n > 0 && n < 8 && b[n-1]&0x80 != 0 {
		v |= math.MaxUint64 << (8 * n) // sign-extend
	}
	return int64(v)
}

// describe names a value's kind for an error message, without printing the value: a pickle can
// make a list that holds itself, which %v would follow forever.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, bigInt:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return fmt.Sprintf("tuple of %d", len(v))
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case *pyGlobal:
		return v.String()
	case *pyObject:
		return v.class.String() + " object"
	case *storageClass:
		return "storage type"
	case *storageRef:
		return "storage"
	case *tensorRef:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}
