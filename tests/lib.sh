# tests/lib.sh — what the shell tests share.  A test begins with
#   set -u
#   . "$(dirname "$0")/lib.sh"
# (run from the repository root, as tests/run.sh does) and has:
#   G     the graft command ($GRAFT_BIN, else build/graft)
#   PY    /usr/bin/python3 (the oracles' python, with numpy/PIL/torch from scripts/deps.sh)
#   GEN   tests/fixtures/gen_cli.py (tiny CIFAR .bin files and image folders)
#   DATA  the shared real data ($GRAFT_DATA, else ../shared/data)
#   T     a fresh directory /tmp/graft-test-<name>-XXXXXX, removed at exit (of the
#         test's own shell, never a subshell) after every process whose pid the
#         test added to PIDS is killed
#   pass NAME / fail NAME WHY     the result lines tests/run.sh counts
#   has FILE ERE                  FILE has a line matching the extended regexp
#   clean FILE                    FILE holds no sanitizer report
#   clean_fail RC ERRFILE [TEXT]  a clean failure: exit 1 or 2, a line
#                                 "graft: error: ...TEXT" in ERRFILE, clean
#   wait_for FILE ERE             waits (up to 120 s) for a line matching in FILE
#   need_numpy_pil NAME [WHY]     SKIP NAME and exit unless $PY has numpy and PIL
G=${GRAFT_BIN:-build/graft}
PY=/usr/bin/python3
GEN=tests/fixtures/gen_cli.py
DATA=${GRAFT_DATA:-../shared/data}

lib_name=$(basename "$0" .sh); lib_name=${lib_name#test_}
T=$(mktemp -d "/tmp/graft-test-${lib_name//_/-}-XXXXXX") || { echo "FAIL ${lib_name}_setup: mktemp"; exit 1; }
PIDS=()
# The main shell alone cleans up: bash runs an inherited EXIT trap in a
# child it forked when a signal ends that child before its exec, so a
# `kill -INT $pid` that lands between a `graft ... &`'s fork and exec would
# otherwise remove $T under the running test.
lib_cleanup() {
  [ "$BASHPID" = "$$" ] || return 0
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap lib_cleanup EXIT

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
has() { grep -qE -- "$2" "$1"; }
clean() { ! has "$1" "Sanitizer|runtime error"; }
clean_fail() {
  [ "$1" -ge 1 ] && [ "$1" -le 2 ] && has "$2" "^graft: error: .*${3:-}" && clean "$2"
}
wait_for() { local _; for _ in $(seq 1200); do has "$1" "$2" && return 0; sleep 0.1; done; return 1; }
wait_for_file() { local _; for _ in $(seq 1200); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
# stop_when [-t TICKS] PID TEST [ARGS...]: stops the process (SIGSTOP) at a moment TEST ARGS holds
# and returns 0 with it stopped (the caller sends SIGCONT); 1 if it ended first.  TEST is looked
# at only while the process is stopped (state T in /proc), so what it saw still holds on return.
# Between looks the process runs for a moment, or for TICKS clock ticks of CPU (a faster crawl,
# for a TEST that stays true once true).  TEST should be a shell function or builtin: a fork per
# look makes the run crawl.
proc_stat() {   # -> $pstate (gone when there is no such process), $pcpu (user + system ticks)
  local s f; pstate=gone; pcpu=0
  read -r s </proc/$1/stat 2>/dev/null || return 0
  read -r -a f <<<"${s##*) }"; pstate=${f[0]}; pcpu=$((f[11] + f[12]))
}
stop_when() {
  local ticks=0 pid goal; [ "$1" = -t ] && { ticks=$2; shift 2; }
  pid=$1; shift
  while kill -STOP "$pid" 2>/dev/null; do
    while proc_stat "$pid"; [ "$pstate" != T ] && [ "$pstate" != Z ] && [ "$pstate" != gone ]; do :; done
    [ "$pstate" = T ] || return 1
    "$@" && return 0
    goal=$((pcpu + ticks))
    kill -CONT "$pid" 2>/dev/null
    while proc_stat "$pid"; [ "$pstate" != Z ] && [ "$pstate" != gone ] && [ "$pcpu" -lt "$goal" ]; do :; done
  done
  return 1
}
# file_has FILE REGEX, lines_at_least FILE N: without a fork (bash's own regex, read), for stop_when
file_has() { local l; [ -r "$1" ] || return 1; while IFS= read -r l || [ -n "$l" ]; do [[ $l =~ $2 ]] && return 0; done <"$1"; return 1; }
lines_at_least() { local l n=0; [ -r "$1" ] || return 1; while IFS= read -r l; do n=$((n + 1)); done <"$1"; [ $n -ge "$2" ]; }
need_numpy_pil() {
  if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy, PIL' 2>/dev/null; then
    echo "SKIP $1: /usr/bin/python3 with numpy and PIL is needed${2:+ $2}"
    exit 0
  fi
}
