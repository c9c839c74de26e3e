package ggml

// Graph computation across models. ollama's ggml layer creates one ggml backend per device for
// the whole process (ml/backend/ggml: the package-level backends map), and a CPU backend's work
// buffer serves one graph at a time: two models computing on it at once (the LLM and TokLIP's
// encoder in one generation step, say) would corrupt each other's results. So graphs on one
// CPU backend take turns: a lane. But a turn-taking lane makes a chat's 40 ms decode step wait
// behind a 4 s VQ decode. A model loaded with Options.OwnCPU gets a CPU backend of its own (its
// own lane), so that its long graphs run beside the others' instead of ahead of them; and since
// ggml's threads spin at every barrier, two graphs must not each start as many threads as there
// are cores: a graph takes the cores no other lane's graph is using, at least one and at most
// what its model asked for (Options.Threads).

/*
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

typedef struct ggml_backend * ggml_backend_t;
typedef struct ggml_backend_buffer_type * ggml_backend_buffer_type_t;
typedef struct ggml_backend_sched * ggml_backend_sched_t;

ggml_backend_t ggml_backend_cpu_init(void);
bool ggml_backend_is_cpu(ggml_backend_t backend);
void ggml_backend_cpu_set_n_threads(ggml_backend_t backend_cpu, int n_threads);
void ggml_backend_free(ggml_backend_t backend);
ggml_backend_sched_t ggml_backend_sched_new_ext(ggml_backend_t * backends, ggml_backend_buffer_type_t * bufts,
	int n_backends, size_t graph_size, bool parallel, bool op_offload, bool alloc_buffers);
void ggml_backend_sched_free(ggml_backend_sched_t sched);
*/
import "C"

import (
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"unsafe"

	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/model"
)

// A lane is one ggml CPU backend; its graphs compute one at a time.
type lane struct {
	mu      sync.Mutex
	cpu     C.ggml_backend_t // the CPU backend whose threads the lane sets; nil if none
	private bool             // created for one model (OwnCPU), freed with it
}

// placed is what toklip knows of a loaded model's backend.
type placed struct {
	lane    *lane
	threads int
}

var (
	placedMu sync.Mutex
	models   = map[unsafe.Pointer]placed{} // by ollama's *Backend
	shared   = &lane{}                     // ollama's process-wide CPU backend
)

// cores hands out the CPU threads to the graphs computing at one time.
var cores struct {
	sync.Mutex
	busy int
}

// takeCores returns how many threads a graph that asks for want may start now: the cores no
// other graph holds, at least one (a graph never waits for another lane), at most want. The
// cores are DefaultThreads(), or want when a model was given more threads than that.
func takeCores(want int) int {
	cores.Lock()
	defer cores.Unlock()
	n := min(want, max(1, max(DefaultThreads(), want)-cores.busy))
	cores.busy += n
	return n
}

func giveCores(n int) {
	cores.Lock()
	cores.busy -= n
	cores.Unlock()
}

// Compute runs the graph that produces t and returns t's values.
func Compute(ctx ml.Context, t ml.Tensor) []float32 {
	release := enter(ctx)
	defer release()
	ctx.Forward(t).Compute(t)
	return t.Floats()
}

// Reserve sizes the backend's compute buffers for the graph that produces t.
func Reserve(ctx ml.Context, t ml.Tensor) {
	release := enter(ctx)
	defer release()
	ctx.Forward(t).Reserve()
}

// enter waits for ctx's lane and sets the lane's CPU threads; release gives both back.
func enter(ctx ml.Context) (release func()) {
	p := placementOf(ctx)
	p.lane.mu.Lock()
	n := takeCores(p.threads)
	if p.lane.cpu != nil {
		C.ggml_backend_cpu_set_n_threads(p.lane.cpu, C.int(n))
	}
	return func() {
		giveCores(n)
		p.lane.mu.Unlock()
	}
}

// placementOf finds the model whose context ctx is; a model toklip did not load computes on the
// shared lane with the default threads.
func placementOf(ctx ml.Context) placed {
	var b reflect.Value
	if v := reflect.ValueOf(ctx); v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		b = v.Elem().FieldByName("b")
	}
	placedMu.Lock()
	defer placedMu.Unlock()
	if b.IsValid() && b.Kind() == reflect.Pointer && !b.IsNil() {
		if p, ok := models[b.UnsafePointer()]; ok {
			return p
		}
		if shared.cpu == nil {
			shared.cpu = cpuOf(b)
		}
	}
	return placed{lane: shared, threads: DefaultThreads()}
}

// register records a loaded model's threads and, with own, moves its graphs to a CPU backend of
// its own (where ollama's backend type is not the expected one, it warns and keeps the shared): a new ggml CPU backend in place of the shared one in the model's scheduler (a new
// scheduler over the same devices and buffer types; its compute buffers are allocated at the
// first graph). Weights stay where they are: CPU weights live in host buffers any CPU backend
// reads.
func register(m model.Model, threads int, own bool) error {
	b := reflect.ValueOf(m.Backend())
	if b.Kind() != reflect.Pointer || b.IsNil() {
		return fmt.Errorf("ollama's backend type %T is not the one toklip was built against", m.Backend())
	}
	placedMu.Lock()
	defer placedMu.Unlock()
	p := placed{lane: shared, threads: threads}
	if shared.cpu == nil {
		shared.cpu = cpuOf(b)
	}
	if own {
		// Without a backend of its own the model still computes, taking turns on the shared one.
		if cpu, err := ownCPU(m.Backend()); err != nil {
			slog.Warn("the model's graphs take turns with other models' on the shared CPU backend", "reason", err)
		} else {
			p.lane = &lane{cpu: cpu, private: true}
		}
	}
	models[b.UnsafePointer()] = p
	return nil
}

// Close closes a model loaded by LoadModel: ollama's backend, then the CPU backend of its own
// if it had one.
func Close(m model.Model) {
	b := backendPointer(m)
	m.Backend().Close()
	placedMu.Lock()
	p, ok := models[b]
	delete(models, b)
	placedMu.Unlock()
	if ok && p.lane.private {
		p.lane.mu.Lock() // no graph of the model can be computing now, but be sure
		C.ggml_backend_free(p.lane.cpu)
		p.lane.cpu = nil
		p.lane.mu.Unlock()
	}
}

// ownCPU gives ollama's backend b a scheduler whose CPU backend is a new one, and returns it.
// It reads and writes Backend's fields sched, schedBackends, schedBufts and maxGraphNodes
// (ollama v0.17.4's ml/backend/ggml), each checked for its kind first.
func ownCPU(b ml.Backend) (C.ggml_backend_t, error) {
	v := reflect.ValueOf(b)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("own CPU backend: ollama's backend type %T is not a struct pointer", b)
	}
	s := v.Elem()
	sched, backends, bufts, nodes := s.FieldByName("sched"), s.FieldByName("schedBackends"), s.FieldByName("schedBufts"), s.FieldByName("maxGraphNodes")
	if !sched.IsValid() || sched.Kind() != reflect.Pointer || sched.IsNil() ||
		!backends.IsValid() || backends.Kind() != reflect.Slice || backends.Type().Elem().Kind() != reflect.Pointer ||
		!bufts.IsValid() || bufts.Kind() != reflect.Slice || bufts.Len() != backends.Len() ||
		!nodes.IsValid() || nodes.Kind() != reflect.Int {
		return nil, fmt.Errorf("own CPU backend: ollama's backend type %T is not the one toklip was built against", b)
	}
	n := backends.Len()
	list := unsafe.Slice((*C.ggml_backend_t)(backends.UnsafePointer()), n)
	types := unsafe.Slice((*C.ggml_backend_buffer_type_t)(bufts.UnsafePointer()), n)
	i := -1
	for j, be := range list {
		if C.ggml_backend_is_cpu(be) {
			i = j
		}
	}
	if i < 0 {
		return nil, fmt.Errorf("own CPU backend: the model's scheduler has no CPU backend")
	}
	cpu := C.ggml_backend_cpu_init()
	if cpu == nil {
		return nil, fmt.Errorf("own CPU backend: ggml_backend_cpu_init failed")
	}
	// The new list is C memory: ggml keeps no pointer to it past sched_new, but cgo forbids
	// passing Go memory that holds pointers.
	cList := (*C.ggml_backend_t)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(cpu))))
	defer C.free(unsafe.Pointer(cList))
	cTypes := (*C.ggml_backend_buffer_type_t)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(cpu))))
	defer C.free(unsafe.Pointer(cTypes))
	copy(unsafe.Slice(cList, n), list)
	copy(unsafe.Slice(cTypes, n), types)
	unsafe.Slice(cList, n)[i] = cpu
	newSched := C.ggml_backend_sched_new_ext(cList, cTypes, C.int(n), C.size_t(nodes.Int()), false, true, true)
	if newSched == nil {
		C.ggml_backend_free(cpu)
		return nil, fmt.Errorf("own CPU backend: ggml_backend_sched_new_ext failed")
	}
	old := (C.ggml_backend_sched_t)(sched.UnsafePointer())
	*(*C.ggml_backend_sched_t)(unsafe.Pointer(sched.UnsafeAddr())) = newSched
	list[i] = cpu
	C.ggml_backend_sched_free(old)
	return cpu, nil
}

// cpuOf returns the CPU backend in the scheduler of ollama's backend b (a *Backend), or nil.
func cpuOf(b reflect.Value) C.ggml_backend_t {
	if b.Kind() != reflect.Pointer || b.IsNil() || b.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := b.Elem().FieldByName("schedBackends")
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Pointer {
		return nil
	}
	for _, be := range unsafe.Slice((*C.ggml_backend_t)(f.UnsafePointer()), f.Len()) {
		if C.ggml_backend_is_cpu(be) {
			return be
		}
	}
	return nil
}

// backendPointer is ollama's *Backend behind m, or nil.
func backendPointer(m model.Model) unsafe.Pointer {
	v := reflect.ValueOf(m.Backend())
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	return v.UnsafePointer()
}
