package ggml

// ggml's CPU backend reads Q4_0, Q4_K and IQ4_NL matrices fastest in its interleaved ("repacked")
// layouts: ggml-cpu/repack.cpp stores 8 rows' blocks side by side, so that one pass of its AVX2
// kernels multiplies 8 rows at once (llama.cpp decodes Q4_0 ~2x faster with them). A weight gets
// that layout by being written into the CPU_REPACK buffer type, whose set_tensor repacks whole
// tensors. ollama's backend allocates every weight in a plain CPU buffer, loads it in 128 KiB
// pieces and has no way to place a tensor elsewhere; ggml has no setter that moves an allocated
// tensor (ggml_backend_tensor_alloc refuses one). So toklip moves them after the load: a copy of
// each weight in a CPU_REPACK buffer, repacked from the loaded bytes, and the model's own tensor
// pointed at it (its buffer, data and extra fields, at the offsets ggml.h of ollama v0.17.4 gives
// them, checked against ggml's accessors before any is written). The plain copies' pages go back
// to the system.
//
// The CPU backend only consults CPU_REPACK tensors when ggml-cpu.cpp is compiled with
// GGML_USE_CPU_REPACK (ollama's cgo flags leave it out); the Makefile sets it in CGO_CPPFLAGS.
// Without it Repack reports ErrRepackUnavailable and the weights stay as they were.

/*
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct ggml_tensor;
struct ggml_context;
typedef struct ggml_backend_buffer * ggml_backend_buffer_t;
typedef struct ggml_backend_buffer_type * ggml_backend_buffer_type_t;
typedef struct ggml_backend_device * ggml_backend_dev_t;
typedef struct ggml_backend_reg * ggml_backend_reg_t;
struct ggml_init_params { size_t mem_size; void * mem_buffer; bool no_alloc; };

struct ggml_context * ggml_init(struct ggml_init_params params);
void ggml_free(struct ggml_context * ctx);
size_t ggml_tensor_overhead(void);
struct ggml_tensor * ggml_dup_tensor(struct ggml_context * ctx, const struct ggml_tensor * src);
struct ggml_tensor * ggml_set_name(struct ggml_tensor * tensor, const char * name);
const char * ggml_get_name(const struct ggml_tensor * tensor);
void * ggml_get_data(const struct ggml_tensor * tensor);
size_t ggml_nbytes(const struct ggml_tensor * tensor);
ggml_backend_dev_t ggml_backend_dev_by_type(int type);
ggml_backend_reg_t ggml_backend_dev_backend_reg(ggml_backend_dev_t device);
void * ggml_backend_reg_get_proc_address(ggml_backend_reg_t reg, const char * name);
const char * ggml_backend_buft_name(ggml_backend_buffer_type_t buft);
ggml_backend_buffer_type_t ggml_backend_cpu_buffer_type(void);
ggml_backend_buffer_type_t ggml_backend_buffer_get_type(ggml_backend_buffer_t buffer);
ggml_backend_buffer_t ggml_backend_alloc_ctx_tensors_from_buft(struct ggml_context * ctx, ggml_backend_buffer_type_t buft);
void ggml_backend_buffer_free(ggml_backend_buffer_t buffer);
size_t ggml_backend_buffer_get_size(ggml_backend_buffer_t buffer);
void ggml_backend_tensor_set(struct ggml_tensor * tensor, const void * data, size_t offset, size_t size);

// Offsets of struct ggml_tensor's fields in ggml.h (ollama v0.17.4, 64-bit): type, buffer at 8,
// ne[4], nb[4], op, op_params[16], flags, src[10], view_src, view_offs, data at 248, name[64] at
// 256, extra at 320.
enum { OFF_BUFFER = 8, OFF_DATA = 248, OFF_NAME = 256, OFF_EXTRA = 320 };

#define FIELD(t, off) (*(void **)((char *)(t) + (off)))

// toklip_plain_ok checks the offsets that ggml's accessors show on a loaded tensor.
static int toklip_plain_ok(struct ggml_tensor * t) {
	return sizeof(void *) == 8 && (const char *)ggml_get_name(t) == (const char *)t + OFF_NAME &&
		FIELD(t, OFF_DATA) == ggml_get_data(t);
}

// toklip_layout_ok checks the offsets on a tensor allocated in buf, the buffer's too (0 when any
// disagrees).
static int toklip_layout_ok(struct ggml_tensor * t, ggml_backend_buffer_t buf) {
	return toklip_plain_ok(t) && FIELD(t, OFF_DATA) != NULL && FIELD(t, OFF_BUFFER) == (void *)buf;
}


static ggml_backend_buffer_t toklip_buffer(struct ggml_tensor * t) { return (ggml_backend_buffer_t)FIELD(t, OFF_BUFFER); }
static void * toklip_extra(struct ggml_tensor * t) { return FIELD(t, OFF_EXTRA); }

// toklip_move points t at the repacked copy's storage and returns the plain copy's pages
// (those wholly inside it) to the system: nothing reads them again.
static void toklip_move(struct ggml_tensor * t, struct ggml_tensor * packed) {
	char * old = ggml_get_data(t);
	size_t n = ggml_nbytes(t);
	FIELD(t, OFF_BUFFER) = FIELD(packed, OFF_BUFFER);
	FIELD(t, OFF_DATA) = FIELD(packed, OFF_DATA);
	FIELD(t, OFF_EXTRA) = FIELD(packed, OFF_EXTRA);
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)old + page - 1) & ~(page - 1);
	uintptr_t hi = ((uintptr_t)old + n) & ~(page - 1);
	if (hi > lo) {
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
	}
}

typedef ggml_backend_buffer_type_t * (*extra_bufts_fn)(ggml_backend_dev_t);

// toklip_repack_buft is the CPU backend's CPU_REPACK buffer type, or NULL when the build does
// not consult it.
static ggml_backend_buffer_type_t toklip_repack_buft(void) {
	ggml_backend_dev_t cpu = ggml_backend_dev_by_type(0);
	if (cpu == NULL) return NULL;
	extra_bufts_fn fn = (extra_bufts_fn)ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(cpu), "ggml_backend_dev_get_extra_bufts");
	if (fn == NULL) return NULL;
	for (ggml_backend_buffer_type_t * b = fn(cpu); b != NULL && *b != NULL; b++) {
		if (strcmp(ggml_backend_buft_name(*b), "CPU_REPACK") == 0) return *b;
	}
	return NULL;
}

static struct ggml_context * toklip_ctx(size_t n) {
	struct ggml_init_params p = { n * ggml_tensor_overhead(), NULL, true };
	return ggml_init(p);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/model"

	"github.com/toklip/toklip/gguf"
)

// ErrRepackUnavailable means this build's CPU backend does not read repacked weights (it was
// compiled without GGML_USE_CPU_REPACK, or the CPU lacks the instructions its kernels need).
var ErrRepackUnavailable = errors.New("ggml's CPU weight repacking is not available in this build")

// RepackBuilt reports whether this build's CPU backend reads repacked weights (ggml-cpu compiled
// with GGML_USE_CPU_REPACK, as the Makefile builds it).
func RepackBuilt() bool { return C.toklip_repack_buft() != nil }

// Repacked is the buffer holding a model's repacked weights. Close it after the model's
// backend: the model's tensors point into it.
type Repacked struct {
	ctx     *C.struct_ggml_context
	buf     C.ggml_backend_buffer_t
	Tensors int    // weights moved
	Bytes   uint64 // the buffer's size (the plain copies' pages were returned)
}

// Close frees the buffer. The model must not compute after it.
func (r *Repacked) Close() {
	if r == nil || r.ctx == nil {
		return
	}
	C.ggml_backend_buffer_free(r.buf)
	C.ggml_free(r.ctx)
	r.ctx = nil
}

// Repackable reports whether ggml's CPU kernels have an interleaved layout for a matrix of type
// typ and shape [columns, rows] on this CPU: Q4_0 and Q4_K (and IQ4_NL, a type toklip does not
// read), rows a multiple of 8, with AVX2 (x86) or the dot-product extension (ARM), as
// ggml-cpu/repack.cpp chooses.
func Repackable(typ gguf.TensorType, shape []uint64) bool {
	if len(shape) != 2 || shape[1]%8 != 0 {
		return false
	}
	switch typ {
	case gguf.TypeQ4_0, gguf.TypeQ4_K: // and IQ4_NL, which toklip does not read
	default:
		return false
	}
	return repackCPU()
}

// repackCPU says whether ggml was built with the instructions its interleaved kernels need.
var repackCPU = sync.OnceValue(func() bool {
	has := CPUFeatures()
	switch runtime.GOARCH {
	case "amd64":
		return slices.Contains(has, "AVX2")
	case "arm64":
		return slices.Contains(has, "NEON") && slices.Contains(has, "DOTPROD")
	}
	return false
})

// Repack moves the named weights of m (as f describes them; names absent from f, or that
// ggml cannot repack, are skipped) into ggml's interleaved CPU layouts. The caller names only
// weights that its graphs read as the first operand of a matrix product with float32
// activations, whole or through a view of whole 8-row groups: the CPU backend refuses any other
// op on them. Weights that ollama placed on a GPU stay where they are. It returns nil and
// ErrRepackUnavailable where the build cannot, and nil, nil where no named weight qualifies.
func Repack(m model.Model, f *gguf.File, names []string) (*Repacked, error) {
	type move struct {
		name  string
		plain *C.struct_ggml_tensor
	}
	var moves []move
	for _, name := range names {
		info, ok := f.Tensor(name)
		if !ok && name == "output.weight" { // tied: ollama's backend copies token_embd into it
			info, ok = f.Tensor("token_embd.weight")
		}
		if !ok || !Repackable(info.Type, info.Shape) {
			continue
		}
		t := m.Backend().Get(name)
		if t == nil {
			continue
		}
		p, err := cTensor(t, name)
		if err != nil {
			return nil, err
		}
		if b := C.toklip_buffer(p); b == nil || C.ggml_backend_buffer_get_type(b) != C.ggml_backend_cpu_buffer_type() {
			continue // on a GPU, or not a loaded weight
		}
		moves = append(moves, move{name, p})
	}
	if len(moves) == 0 {
		return nil, nil
	}
	buft := C.toklip_repack_buft()
	if buft == nil {
		return nil, ErrRepackUnavailable
	}

	r := &Repacked{ctx: C.toklip_ctx(C.size_t(len(moves)))}
	if r.ctx == nil {
		return nil, fmt.Errorf("repack: ggml_init failed")
	}
	packed := make([]*C.struct_ggml_tensor, len(moves))
	for i, mv := range moves {
		packed[i] = C.ggml_dup_tensor(r.ctx, mv.plain)
		name := C.CString(mv.name)
		C.ggml_set_name(packed[i], name)
		C.free(unsafe.Pointer(name))
	}
	r.buf = C.ggml_backend_alloc_ctx_tensors_from_buft(r.ctx, buft)
	if r.buf == nil {
		C.ggml_free(r.ctx)
		return nil, fmt.Errorf("repack: cannot allocate %d weights' buffer", len(moves))
	}
	r.Bytes = uint64(C.ggml_backend_buffer_get_size(r.buf))
	for i, p := range packed {
		// The buffer's init_tensor chose each tensor's kernel (extra); none may be missing, or
		// set_tensor would fail inside ggml.
		if C.toklip_layout_ok(p, r.buf) == 0 || C.toklip_extra(p) == nil {
			r.Close()
			return nil, fmt.Errorf("repack %s: %w (ggml's tensor layout is not the one toklip was built against)", moves[i].name, ErrRepackUnavailable)
		}
	}
	for i, mv := range moves {
		C.ggml_backend_tensor_set(packed[i], C.ggml_get_data(mv.plain), 0, C.ggml_nbytes(mv.plain))
		C.toklip_move(mv.plain, packed[i])
		r.Tensors++
	}
	return r, nil
}

// RepackLoaded is Repack for a model LoadModel just loaded from path with opts: nothing with
// opts.PlainWeights, and where the build or the CPU cannot repack, a logged warning and the
// weights as they are (nil, nil). An error means the model must be closed.
func RepackLoaded(m model.Model, f *gguf.File, names []string, path string, opts Options) (*Repacked, error) {
	if opts.PlainWeights {
		return nil, nil
	}
	packed, err := Repack(m, f, names)
	switch {
	case errors.Is(err, ErrRepackUnavailable):
		slog.Warn("quantized weights stay in their file layout, which ggml's CPU kernels read more slowly", "model", path, "reason", err)
		return nil, nil
	case err != nil:
		return nil, err
	case packed != nil:
		slog.Debug("repacked weights for ggml's CPU kernels", "model", path, "tensors", packed.Tensors, "bytes", packed.Bytes)
	}
	return packed, nil
}

// cTensor is the ggml tensor behind one of ollama's: its *ggml.Tensor keeps it in the
// unexported field t. The name it carries must be the one asked for.
func cTensor(t ml.Tensor, name string) (*C.struct_ggml_tensor, error) {
	v := reflect.ValueOf(t)
	if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("t"); f.IsValid() && f.Kind() == reflect.Pointer && !f.IsNil() {
			p := (*C.struct_ggml_tensor)(f.UnsafePointer())
			if C.toklip_plain_ok(p) != 0 && C.GoString(C.ggml_get_name(p)) == name {
				return p, nil
			}
		}
	}
	return nil, fmt.Errorf("repack %s: %w (ollama's tensor type %T is not the one toklip was built against)", name, ErrRepackUnavailable, t)
}
