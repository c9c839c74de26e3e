package convert

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/toklip/toklip/internal/alloc"
)

// allocLimit is what reading a safetensors header of a file of n bytes may allocate in all
// (runtime TotalAlloc, garbage included): the header is copied once (1x), read through a JSON
// decoder whose buffer grows by doubling up to the header's size (2x), and the smallest entry
// that passes its checks, about 50 bytes ("a":{"dtype":"F16","shape":[0],"data_offsets":[0,0]}),
// becomes a 104-byte stTensor (2x; 4x counting the list's growth by doubling) plus its shape and
// offsets. 8x covers these with room for the allocator's size classes; the constant, the
// decoder's and reader's fixed costs. A claimed length or count allocated before it is checked
// exceeds it by orders of magnitude.
func allocLimit(n int) uint64 { return 8*uint64(n) + 64<<10 }

// safetensorsFile builds a file from a JSON header and data, as the format lays it out.
func safetensorsFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// FuzzSafetensorsHeader feeds arbitrary bytes to the safetensors reader and checks that it
// returns within allocLimit, that a refusal is one line naming the file, and that a list it
// accepts is what the format promises: distinct names, each a tensor of a supported dtype whose
// byte size is its shape's product (computed here without overflow) times the dtype's size,
// together tiling the data section exactly; and that every listed tensor's values then read,
// as many as its shape holds, allocating no more than the conversion needs.
func FuzzSafetensorsHeader(f *testing.F) {
	two := make([]byte, 16+8)
	f.Add(safetensorsFile(`{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2,2],"data_offsets":[16,24]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, two))
	f.Add(safetensorsFile(`{"a":{"dtype":"BF16","shape":[1,0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  `, make([]byte, 4)))
	// The defects found in the reader before this target existed: a shape whose product wraps
	// around (2^32 * 2^32 * 4 = 0 in uint64), and offsets whose sum with the header's end wraps
	// to a negative position (2^61-1 F32 values are 2^63-4 bytes, which the reader then
	// tried to allocate).
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}`, nil))
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[2305843009213693951],"data_offsets":[0,9223372036854775804]}}`, make([]byte, 8)))
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<62))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.safetensors"
		var list []stTensor
		var err error
		n := alloc.Bytes(func() { list, err = readSafetensors(name, bytes.NewReader(data), int64(len(data))) })
		if limit := allocLimit(len(data)); n > limit {
			t.Fatalf("reading %d bytes allocated %d, over the limit of %d (err: %v)", len(data), n, limit, err)
		}
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, name+": ") || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error %q is not one line naming the file", msg)
			}
			return
		}
		headerEnd := 8 + int64(binary.LittleEndian.Uint64(data))
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(data[8:headerEnd], &keys); err != nil {
			t.Fatalf("accepted a header that is not a JSON object: %v", err)
		}
		delete(keys, "__metadata__")
		names := map[string]bool{}
		end := headerEnd
		slices.SortFunc(list, func(a, b stTensor) int { return cmp.Compare(a.offset, b.offset) })
		for _, st := range list {
			if names[st.name] {
				t.Fatalf("tensor %q listed twice", st.name)
			}
			names[st.name] = true
			if _, ok := keys[st.name]; !ok {
				t.Fatalf("tensor %q is not in the header", st.name)
			}
			count := big.NewInt(1)
			for _, d := range st.shape {
				count.Mul(count, new(big.Int).SetUint64(d))
			}
			bytesWant := new(big.Int).Mul(count, big.NewInt(dtypeSizes[st.dtype]))
			if dtypeSizes[st.dtype] == 0 || len(st.shape) == 0 || !count.IsUint64() || count.Uint64() != st.count || bytesWant.Cmp(big.NewInt(st.size)) != 0 {
				t.Fatalf("tensor %q: %s %v listed as %d values in %d bytes", st.name, st.dtype, st.shape, st.count, st.size)
			}
			if st.offset != end {
				t.Fatalf("tensor %q starts at %d, want %d: the data section is not tiled", st.name, st.offset, end)
			}
			end += st.size
			var values []float32
			n := alloc.Bytes(func() { values, err = st.readFloatsFrom(bytes.NewReader(data)) })
			if err != nil || uint64(len(values)) != st.count {
				t.Fatalf("tensor %q: read %d values of %d: %v", st.name, len(values), st.count, err)
			}
			// The raw bytes and the float32 values (twice the bytes of an F16 tensor).
			if limit := uint64(st.size) + 4*st.count + 1<<10; n > limit {
				t.Fatalf("tensor %q: reading %d bytes allocated %d, over %d", st.name, st.size, n, limit)
			}
		}
		if len(names) != len(keys) {
			t.Fatalf("listed %d tensors, the header has %d", len(names), len(keys))
		}
		if end != int64(len(data)) {
			t.Fatalf("data ends at %d of %d bytes", end, len(data))
		}
	})
}

// The header's entries are checked one at a time: a header of many tiny entries costs no more
// than a small multiple of its size, whether they are refused (the first one is) or accepted.
func TestSafetensorsHeaderAllocationIsProportional(t *testing.T) {
	var refused, accepted, metadata strings.Builder
	metadata.WriteString(`{"__metadata__":{`)
	refused.WriteString("{")
	accepted.WriteString("{")
	const n = 20000
	for i := range n {
		if i > 0 {
			refused.WriteString(",")
			accepted.WriteString(",")
		}
		refused.WriteString(`"` + string(rune('a'+i%26)) + strings.Repeat("x", i/26%4) + `":{}`)
		if i > 0 {
			metadata.WriteString(",")
		}
		metadata.WriteString(`"` + big.NewInt(int64(i)).String() + `":""`)
		accepted.WriteString(`"` + big.NewInt(int64(i)).String() + `":{"dtype":"F16","shape":[0],"data_offsets":[0,0]}`)
	}
	refused.WriteString("}")
	metadata.WriteString("}}")
	accepted.WriteString("}")
	for _, c := range []struct {
		name   string
		file   []byte
		accept bool
	}{
		{"entries refused", safetensorsFile(refused.String(), nil), false},
		{"empty tensors accepted", safetensorsFile(accepted.String(), nil), true},
		{"an absurd header length", binary.LittleEndian.AppendUint64(nil, math.MaxUint64), false},
		{"metadata of many entries", safetensorsFile(metadata.String(), nil), true},
		{"a shape of 100000 dimensions", safetensorsFile(`{"a":{"dtype":"F16","shape":[`+strings.Repeat("1,", 100000)+`1],"data_offsets":[0,2]}}`, make([]byte, 2)), false},
		{"100000 data offsets", safetensorsFile(`{"a":{"dtype":"F16","shape":[1],"data_offsets":[`+strings.Repeat("0,", 100000)+`2]}}`, make([]byte, 2)), false},
	} {
		var err error
		got := alloc.Bytes(func() { _, err = readSafetensors("x.safetensors", bytes.NewReader(c.file), int64(len(c.file))) })
		if (err == nil) != c.accept {
			t.Fatalf("%s: err %v", c.name, err)
		}
		if limit := allocLimit(len(c.file)); got > limit {
			t.Errorf("%s: %d bytes allocated %d, over the limit of %d", c.name, len(c.file), got, limit)
		} else {
			t.Logf("%s: %d bytes allocated %d (%.1fx)", c.name, len(c.file), got, float64(got)/float64(len(c.file)))
		}
	}
}
