package ggml

// These functions are compiled into ggml's CPU backend (ggml-cpu.c, linked through ollama's
// ml/backend/ggml package). Each reports whether the backend was *compiled* with the
// instruction set, which is what decides its speed: a build without -march flags has none.

/*
int ggml_cpu_has_sse3(void);
int ggml_cpu_has_ssse3(void);
int ggml_cpu_has_avx(void);
int ggml_cpu_has_avx_vnni(void);
int ggml_cpu_has_avx2(void);
int ggml_cpu_has_bmi2(void);
int ggml_cpu_has_f16c(void);
int ggml_cpu_has_fma(void);
int ggml_cpu_has_avx512(void);
int ggml_cpu_has_avx512_vbmi(void);
int ggml_cpu_has_avx512_vnni(void);
int ggml_cpu_has_avx512_bf16(void);
int ggml_cpu_has_amx_int8(void);
int ggml_cpu_has_neon(void);
int ggml_cpu_has_arm_fma(void);
int ggml_cpu_has_fp16_va(void);
int ggml_cpu_has_dotprod(void);
int ggml_cpu_has_matmul_int8(void);
int ggml_cpu_has_sve(void);
*/
import "C"

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	_ "github.com/ollama/ollama/ml/backend/ggml" // links ggml and its CPU backend
)

// CPUFeatures lists the SIMD instruction sets ggml's CPU kernels were compiled with.
func CPUFeatures() []string {
	all := []struct {
		name string
		has  C.int
	}{
		{"SSE3", C.ggml_cpu_has_sse3()}, {"SSSE3", C.ggml_cpu_has_ssse3()},
		{"AVX", C.ggml_cpu_has_avx()}, {"AVX_VNNI", C.ggml_cpu_has_avx_vnni()},
		{"AVX2", C.ggml_cpu_has_avx2()}, {"BMI2", C.ggml_cpu_has_bmi2()},
		{"F16C", C.ggml_cpu_has_f16c()}, {"FMA", C.ggml_cpu_has_fma()},
		{"AVX512", C.ggml_cpu_has_avx512()}, {"AVX512_VBMI", C.ggml_cpu_has_avx512_vbmi()},
		{"AVX512_VNNI", C.ggml_cpu_has_avx512_vnni()}, {"AVX512_BF16", C.ggml_cpu_has_avx512_bf16()},
		{"AMX_INT8", C.ggml_cpu_has_amx_int8()},
		{"NEON", C.ggml_cpu_has_neon()}, {"ARM_FMA", C.ggml_cpu_has_arm_fma()},
		{"FP16_VA", C.ggml_cpu_has_fp16_va()}, {"DOTPROD", C.ggml_cpu_has_dotprod()},
		{"MATMUL_INT8", C.ggml_cpu_has_matmul_int8()}, {"SVE", C.ggml_cpu_has_sve()},
	}
	var out []string
	for _, f := range all {
		if f.has != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// LogCPUFeatures logs the instruction sets ggml uses, and warns when there are none that
// matter: such a build runs matrix products 20-50x slower than a native one.
func LogCPUFeatures(log *slog.Logger) {
	features := CPUFeatures()
	fast := false
	for _, f := range features {
		if f == "AVX2" || f == "AVX512" || f == "NEON" {
			fast = true
		}
	}
	log.Info("ggml CPU backend", "simd", strings.Join(features, " "), "threads", DefaultThreads())
	if !fast {
		log.Warn("ggml was built without AVX2/AVX-512/NEON; inference will be very slow. Build with `make build` (CGO_CFLAGS=-march=native) unless PORTABLE=1 was intended")
	}
}

// DefaultThreads is the number of physical cores this process may use: ggml's kernels gain
// nothing from a core's second hardware thread and lose to contention.
func DefaultThreads() int {
	usable := runtime.NumCPU() // respects the CPU affinity mask
	cores := physicalCores()
	if cores <= 0 || cores > usable {
		return usable
	}
	return cores
}

// physicalCores counts distinct (package, core) pairs in Linux's sysfs topology; 0 if unknown.
func physicalCores() int {
	dirs, err := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/topology")
	if err != nil || len(dirs) == 0 {
		return 0
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		pkg, err1 := os.ReadFile(filepath.Join(d, "physical_package_id"))
		core, err2 := os.ReadFile(filepath.Join(d, "core_id"))
		if err1 != nil || err2 != nil {
			return 0
		}
		seen[strings.TrimSpace(string(pkg))+"/"+strings.TrimSpace(string(core))] = true
	}
	return len(seen)
}
