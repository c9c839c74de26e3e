#!/usr/bin/env bash
# Runs every Go fuzz target of the module (each `func FuzzXxx(f *testing.F)` in a _test.go file)
# for FUZZTIME each, one after the other (go test -fuzz takes one target at a time). A crasher,
# hang or over-limit allocation that the fuzzer finds is written to the package's
# testdata/fuzz/FuzzXxx/ and fails the run: fix it and commit the input as a regression case
# (plain `go test` replays every committed input).
#   tools/fuzz/run.sh 3s        # what make test runs
#   tools/fuzz/run.sh 2m        # make fuzz
set -euo pipefail
cd "$(dirname "$0")/../.."
fuzztime="${1:-3s}"
go="${GO:-go}"
failed=()
raced=()
n=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
while IFS= read -r file; do
  dir="$(dirname "$file")"
  for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+\(' "$file" | sed -e 's/^func //' -e 's/($//'); do
    n=$((n + 1))
    echo "fuzz $dir $target ($fuzztime)"
    # -parallel 2: this machine's two cores; more workers only thrash. A failing input is
    # shrunk for at most 10 s (the default 60 s goes on recompiling what large inputs hold).
    corpus="$dir/testdata/fuzz/$target"
    before="$(ls "$corpus" 2>/dev/null || true)"
    if ! "$go" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s -parallel 2 "$dir" 2>&1 | tee "$log"; then
      # Go 1.26's coordinator can fail a target as -fuzztime runs out, with a bare "context
      # deadline exceeded" and no input (go.dev/issue/75804, fixed in Go 1.27). A real finding
      # always writes its input to testdata/fuzz/: only that, or any other error, fails the run.
      if [ "$(ls "$corpus" 2>/dev/null || true)" = "$before" ] && grep -qx '    context deadline exceeded' "$log" &&
        ! grep -q 'Failing input written' "$log"; then
        raced+=("$dir $target")
      else
        failed+=("$dir $target")
      fi
    fi
  done
done < <(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(' --include='*_test.go' . | grep -v node_modules | sort)
echo "fuzz: $n targets, ${#failed[@]} failed, ${#raced[@]} stopped by Go's fuzztime race without an input (go.dev/issue/75804)"
if [ "${#raced[@]}" -gt 0 ]; then
  printf '  %s (raced)\n' "${raced[@]}"
fi
if [ "${#failed[@]}" -gt 0 ]; then
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
