#!/usr/bin/env bash
# The fuzzing regression corpus (issue 15): every file of fuzz/regress/<target>/
# (inputs that once crashed, hung or ran out of memory, each with a .expect
# file holding the error it must now give) and of fuzz/corpus/<target>/ (a
# minimized corpus from the fuzzing runs) through the target's entry point,
# built without libFuzzer (fuzz/standalone_main.c) next to $GRAFT_BIN: in
# build/ and, under ASan+UBSan, in build-san/.  Prints one PASS line per target.
set -u
cd "$(dirname "$0")/.."
bin_dir=$(dirname "${GRAFT_BIN:-build/graft}")
targets=$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||')
ran=0
for t in $targets; do
  r="$bin_dir/fuzz/run_$t"
  if [ ! -x "$r" ]; then
    echo "SKIP fuzz_regress_$t: $r is not built (make test builds it)"
    continue
  fi
  "$r" "fuzz/regress/$t" "fuzz/corpus/$t" || echo "FAIL fuzz_regress_$t (exit $?)"
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || echo "FAIL fuzz_regress: no target was run"
