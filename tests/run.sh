#!/usr/bin/env bash
# Runs every test program (build/tests/*, then build-san/tests/* under ASan+UBSan)
# and every tests/test_*.sh, counts PASS/FAIL/SKIP lines and prints the closing line.
# A program that exits non-zero without printing FAIL counts as one failure.
set -u
cd "$(dirname "$0")/.."
export GRAFT_DATA="${GRAFT_DATA:-$(cd .. && pwd)/shared/data}"
# idle OpenMP threads sleep instead of spinning (as the graft CLI arranges for itself)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
pass=0; fail=0; skip=0; failed_names=()
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# a private download/features cache for the whole run (never the user's)
export GRAFT_HOME="${GRAFT_TEST_HOME:-$tmp/home}"

run_one() {  # $1 = label, rest = command
  local label=$1; shift
  local out="$tmp/out" start end rc
  start=$(date +%s%N)
  "$@" >"$out" 2>"$tmp/err"; rc=$?
  end=$(date +%s%N)
  local p f s
  p=$(grep -c '^PASS ' "$out"); f=$(grep -c '^FAIL ' "$out"); s=$(grep -c '^SKIP ' "$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL $label (exit $rc)" >>"$out"; fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  printf '%-40s %3d passed %3d failed %3d skipped  %6ss\n' "$label" "$p" "$f" "$s" "$(( (end - start) / 1000000000 )).$(( (end - start) / 100000000 % 10 ))"
  if [ "$f" -ne 0 ] || [ -n "${VERBOSE:-}" ]; then
    sed 's/^/    /' "$out"; sed 's/^/    | /' "$tmp/err" | tail -40
    failed_names+=("$label")
  else
    grep '^SKIP ' "$out" | sed 's/^/    /'
  fi
}

suites=("${B:-build}")
[ -z "${GRAFT_TEST_NO_SAN:-}" ] && suites+=("${SB:-build-san}")
for b in "${suites[@]}"; do
  case "$b" in /*) bb="$b";; *) bb="$PWD/$b";; esac; export GRAFT_BIN="$bb/graft"
  for t in "$b"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$t" "$t"
  done
  for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    run_one "$t ($b)" bash "$t"
  done
done
# ThreadSanitizer (make check builds them into $TB, with clang + libomp): the
# tests that run threads, and the CLI's signal thread in tests/tsan_signal.sh
if [ -z "${GRAFT_TEST_NO_SAN:-}" ] && [ -n "${TB:-}" ] && [ -d "$TB/tests" ]; then
  export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=$PWD/tests/tsan.supp:second_deadlock_stack=1}"
  case "$TB" in /*) tb="$TB";; *) tb="$PWD/$TB";; esac
  for t in "$TB"/tests/test_*; do
    [ -x "$t" ] && run_one "$t" "$t"
  done
  run_one "tests/tsan_signal.sh ($TB)" env GRAFT_BIN="$tb/graft" bash tests/tsan_signal.sh
fi
echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
