package ggml

// ggml's device API, declared as ggml-backend.h of ollama v0.17.4 (pinned in go.mod) declares it:
// the header is not on cgo's include path from here.

/*
#include <stdbool.h>
#include <stddef.h>
typedef struct ggml_backend_device * ggml_backend_dev_t;
struct ggml_backend_dev_caps { bool async; bool host_buffer; bool buffer_from_host_ptr; bool events; };
struct ggml_backend_dev_props {
	const char * name;
	const char * description;
	size_t memory_free;
	const char * id;
	size_t memory_total;
	int type;
	const char * device_id;
	struct ggml_backend_dev_caps caps;
	int driver_major;
	int driver_minor;
	int compute_major;
	int compute_minor;
	int integrated;
	const char * library;
};
size_t ggml_backend_dev_count(void);
ggml_backend_dev_t ggml_backend_dev_get(size_t index);
void ggml_backend_dev_get_props(ggml_backend_dev_t device, struct ggml_backend_dev_props * props);
*/
import "C"

import (
	ggmlsrc "github.com/ollama/ollama/ml/backend/ggml/ggml/src"
)

// DeviceKind is ggml's enum ggml_backend_dev_type.
type DeviceKind int

const (
	DeviceCPU   DeviceKind = iota // system memory
	DeviceGPU                     // a discrete GPU with its own memory
	DeviceIGPU                    // an integrated GPU sharing system memory
	DeviceAccel                   // an accelerator used with the CPU (BLAS, AMX)
)

func (k DeviceKind) String() string {
	switch k {
	case DeviceCPU:
		return "cpu"
	case DeviceGPU:
		return "gpu"
	case DeviceIGPU:
		return "igpu"
	case DeviceAccel:
		return "accel"
	}
	return "unknown"
}

// Device is one of ggml's compute devices, as its backend library reports it.
type Device struct {
	Name        string // ggml's name: "CPU", "CUDA0", ...
	Description string // the hardware: "NVIDIA H200", the CPU's model
	Kind        DeviceKind
	ID, Library string // how ollama's backend names the device in a layer placement
	FreeBytes   uint64
	TotalBytes  uint64
	// Driver and compute capability versions, where the library reports them (else 0).
	DriverMajor, DriverMinor, ComputeMajor, ComputeMinor int
}

// Devices lists ggml's devices: the CPU, which is linked into toklip, and those of the backend
// libraries (libggml-cuda.so, ...) that ollama's loader finds at run time in the folder named by
// OLLAMA_LIBRARY_PATH, or else in lib/ollama beside the executable's folder (`make cuda` puts
// them there). A missing library, or a driver the library cannot use, means no such device:
// the CPU serves alone.
func Devices() []Device {
	ggmlsrc.OnceLoad()
	var out []Device
	for i := range C.ggml_backend_dev_count() {
		var p C.struct_ggml_backend_dev_props
		C.ggml_backend_dev_get_props(C.ggml_backend_dev_get(i), &p)
		out = append(out, Device{
			Name: C.GoString(p.name), Description: C.GoString(p.description), Kind: DeviceKind(p._type),
			ID: C.GoString(p.id), Library: C.GoString(p.library),
			FreeBytes: uint64(p.memory_free), TotalBytes: uint64(p.memory_total),
			DriverMajor: int(p.driver_major), DriverMinor: int(p.driver_minor),
			ComputeMajor: int(p.compute_major), ComputeMinor: int(p.compute_minor),
		})
	}
	return out
}

// LibraryPaths are the folders ollama's loader searched for backend libraries.
func LibraryPaths() []string {
	ggmlsrc.OnceLoad()
	return ggmlsrc.LibPaths()
}
