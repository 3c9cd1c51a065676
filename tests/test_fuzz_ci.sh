#!/usr/bin/env bash
# CI's fuzzing (issue 15): every libFuzzer target of fuzz/ (built by make test
# into $FB, default build-fuzz/, with clang -fsanitize=fuzzer,address,undefined)
# runs for GRAFT_FUZZ_SECONDS (default 20) on its committed corpus
# fuzz/corpus/<target>, with the options of `make fuzz` (-timeout=10
# -rss_limit_mb=2048).  A crash, a sanitizer report, a timeout or an
# out-of-memory fails the target; its input is kept as $FB/crashes/ci-<target>-*
# (minimize it, fix the parser, add it to fuzz/regress/<target>/).
# New inputs go to a temporary directory, never into fuzz/corpus.
# Runs once per `make test` (with the release suite: the targets are
# sanitizer builds already); skipped by make test-fast and where clang is absent.
set -u
. "$(dirname "$0")/lib.sh"
FB=${FB:-build-fuzz}
SECS=${GRAFT_FUZZ_SECONDS:-20}
if [ -n "${GRAFT_TEST_NO_SAN:-}" ] || [ "$SECS" = 0 ]; then
  echo "SKIP fuzz_ci: make test-fast (or GRAFT_FUZZ_SECONDS=0) runs no fuzzer"; exit 0
fi
case "$G" in
  */"${SB:-build-san}"/graft) echo "SKIP fuzz_ci: run once, with the release suite (the targets are ASan+UBSan builds)"; exit 0 ;;
esac
targets=$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||')
mkdir -p "$FB/crashes"
for t in $targets; do
  f="$FB/fuzz_$t"
  if ! [ -x "$f" ]; then
    echo "SKIP fuzz_ci_$t: $f is not built (make test builds it when clang is installed: scripts/deps.sh test)"
    continue
  fi
  mkdir -p "$T/$t"
  ASAN_OPTIONS=detect_leaks=1 "$f" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -max_total_time="$SECS" \
      -artifact_prefix="$FB/crashes/ci-$t-" "$T/$t" "fuzz/corpus/$t" >"$T/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/$t.log")
  cov=$(grep -E '^#[0-9]+' "$T/$t.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
  if [ $rc -eq 0 ] && [ -n "$runs" ] && ! has "$T/$t.log" "==ERROR|runtime error|SUMMARY: "; then
    echo "PASS fuzz_ci_$t ($SECS s: $runs inputs, $cov)"
  else
    echo "FAIL fuzz_ci_$t: exit $rc after ${runs:-?} inputs; the input is in $FB/crashes/ci-$t-*"
    grep -E '==ERROR|runtime error|SUMMARY|Test unit written' "$T/$t.log" | head -5 | sed 's/^/    /'
  fi
done
