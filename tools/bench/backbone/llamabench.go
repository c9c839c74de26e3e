package backbone

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// llamaBench is one configuration of llama.cpp's own benchmark binary: a build (OpenMP on or
// off) and flash attention on or off.
type llamaBench struct {
	bin   string
	build string // "openmp" or "ggml-threads"
	fa    bool
}

func (l llamaBench) name() string {
	fa := "fa-off"
	if l.fa {
		fa = "fa-on"
	}
	return "llama-bench " + l.build + " " + fa
}

// llamaBenches are the four configurations of the binaries tools/bench/llama-bench.sh built.
func llamaBenches(bins []string) []llamaBench {
	var out []llamaBench
	for _, b := range bins {
		build := "openmp"
		if strings.Contains(filepath.Dir(filepath.Dir(b)), "openmp-OFF") {
			build = "ggml-threads"
		}
		for _, fa := range []bool{false, true} {
			out = append(out, llamaBench{bin: b, build: build, fa: fa})
		}
	}
	return out
}

// benchResult is one line of llama-bench's JSON output.
type benchResult struct {
	NPrompt     int       `json:"n_prompt"`
	NGen        int       `json:"n_gen"`
	NDepth      int       `json:"n_depth"`
	SamplesTS   []float64 `json:"samples_ts"`
	BuildCommit string    `json:"build_commit"`
	CPUInfo     string    `json:"cpu_info"`
}

// run measures one repetition on the model at path: prefill of prompt tokens from an empty
// cache, and decode of decode tokens after depth tokens (toklip's decode follows its prefill, so
// the two are timed at the same depth), with an F16 KV cache, batch 512, and threads.
func (l llamaBench) run(path string, prompt, decode, depth, threads int) (prefill, dec float64, commit string, err error) {
	fa := "off"
	if l.fa {
		fa = "on"
	}
	common := []string{"-m", path, "-t", fmt.Sprint(threads), "-fa", fa, "-ctk", "f16", "-ctv", "f16", "-b", "512", "-ub", "512",
		"-ngl", "0", "-r", "1", "-o", "json", "--no-warmup"}
	pp, err := l.exec(append([]string{"-p", fmt.Sprint(prompt), "-n", "0", "-d", "0"}, common...))
	if err != nil {
		return 0, 0, "", err
	}
	tg, err := l.exec(append([]string{"-p", "0", "-n", fmt.Sprint(decode), "-d", fmt.Sprint(depth)}, common...))
	if err != nil {
		return 0, 0, "", err
	}
	return pp.SamplesTS[0], tg.SamplesTS[0], pp.BuildCommit, nil
}

func (l llamaBench) exec(args []string) (benchResult, error) {
	out, err := exec.Command(l.bin, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return benchResult{}, fmt.Errorf("%s %s: %w\n%s", l.bin, strings.Join(args, " "), err, msg)
	}
	var rs []benchResult
	if err := json.Unmarshal(out, &rs); err != nil || len(rs) != 1 || len(rs[0].SamplesTS) != 1 {
		return benchResult{}, fmt.Errorf("llama-bench's output: %v (%q)", err, out)
	}
	return rs[0], nil
}
