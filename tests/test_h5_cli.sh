#!/usr/bin/env bash
# Keras .h5 fuzzed at the structure level through the CLI (issue 15):
# tests/fixtures/gen_h5_mutants.py mutates the groups, attributes
# (layer_names, weight_names, keras_version, backend), dtypes and shapes of a
# real fixture -- tests/fixtures/weights/tiny_k2.h5 without its bn1 layer, so
# that the unmutated file fits a small darknet base by order (conv 3x3 3->4,
# maxpool, connected 64->5) -- and every mutant goes through
#   graft info FILE
#   graft info --base darknet:CFG --weights FILE
#   graft train --base darknet:CFG --weights FILE ... (one epoch, 20 images)
# Each must succeed or fail cleanly: exit 1 or 2 with "graft: error:" naming
# the file (training may also stop on a non-finite loss: weights that load
# with a warning but hold NaN/Inf or 3.4e38), no sanitizer report, no signal,
# no hang (60 s each).
# GRAFT_H5_MUTANTS=N sets the count (default 25; by hand e.g. 2000),
# GRAFT_H5_SEED the generator's seed (default 7), GRAFT_H5_TRAIN_EVERY=K
# trains on every K-th mutant only (default 1: all).
set -u
. "$(dirname "$0")/lib.sh"
if ! [ -x "$PY" ] || ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "SKIP h5_cli: /usr/bin/python3 with h5py and numpy is needed (scripts/deps.sh test)"; exit 0
fi
N=${GRAFT_H5_MUTANTS:-25}
SEED=${GRAFT_H5_SEED:-7}
EVERY=${GRAFT_H5_TRAIN_EVERY:-1}

"$PY" - "$T/src.h5" <<'PY'
import sys, h5py
with h5py.File('tests/fixtures/weights/tiny_k2.h5', 'r') as f, h5py.File(sys.argv[1], 'w') as o:
    name = lambda n: n.decode() if isinstance(n, bytes) else n
    keep = [name(n) for n in f.attrs['layer_names'] if name(n) != 'bn1']
    for k in ('keras_version', 'backend'):
        o.attrs[k] = f.attrs[k]
    o.attrs['layer_names'] = [n.encode() for n in keep]
    for n in keep:
        f.copy(f[n], o, name=n)
PY
printf '[net]\nheight=8\nwidth=8\nchannels=3\n\n[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=relu\n\n[maxpool]\nsize=2\nstride=2\n\n[connected]\noutput=5\nactivation=linear\n' >"$T/t.cfg"
"$PY" "$GEN" cifar "$T/d.bin" 20 1 || { fail h5_cli_setup "gen_cli.py cifar"; exit 0; }
mkdir "$T/m"
"$PY" tests/fixtures/gen_h5_mutants.py "$T/m" "$N" "$SEED" "$T/src.h5" || { fail h5_cli_setup "gen_h5_mutants.py"; exit 0; }

# run CMD...: 0 ok, 1 a clean error naming $f (or, training, a numeric error:
# weights that load but hold NaN/Inf or 3.4e38), 2 anything else (reason in $T/why)
run() {
  timeout 60 "$G" "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ $rc -eq 0 ] && clean "$T/err"; then return 0; fi
  if [ $rc -ge 1 ] && [ $rc -le 2 ] && has "$T/err" "^graft: error: " && clean "$T/err" &&
     { grep -qF "$f" "$T/err" || { [ "$1" = train ] && has "$T/err" "loss became|non-finite gradient|NaN/Inf|NaN or infinite"; }; }; then
    return 1
  fi
  { echo "exit $rc: graft $*"; tail -5 "$T/err"; } >"$T/why"
  return 2
}
TRAIN=(--base "darknet:$T/t.cfg" --input-size 8x8 --data "$T/d.bin" --head flatten,dense:10:softmax
       --epochs 1 --batch 10 --no-standardize --no-cache --quiet --out "$T/o.gft")

# the unmutated source: readable, loads into the darknet base by order, trains
f="$T/src.h5"
if run info "$f" && run info --base "darknet:$T/t.cfg" --weights "$f" && run train "${TRAIN[@]}" --weights "$f" &&
   [ -s "$T/o.gft" ]; then
  pass h5_cli_source_loads
else
  fail h5_cli_source_loads "$(cat "$T/why" 2>/dev/null || tail -3 "$T/err")"
fi

ok=0; refused=0; bad=0; trained=0; runs=0; i=0
for f in "$T"/m/mutant_*.h5; do
  cmds="info weights"
  [ $((i % EVERY)) = 0 ] && cmds="$cmds train"
  i=$((i + 1))
  for cmd in $cmds; do
    runs=$((runs + 1))
    case $cmd in
      info) run info "$f" ;;
      weights) run info --base "darknet:$T/t.cfg" --weights "$f" ;;
      train) rm -f "$T/o.gft"; run train "${TRAIN[@]}" --weights "$f" ;;
    esac
    case $? in
      0) ok=$((ok + 1)); [ $cmd = train ] && trained=$((trained + 1)) ;;
      1) refused=$((refused + 1)) ;;
      *) bad=$((bad + 1))
         [ $bad -le 5 ] && { echo "  $(basename "$f") ($(grep -F "$f:" "$T/m/mutants.txt" | cut -d: -f2-)):"; sed 's/^/    /' "$T/why"; } ;;
    esac
  done
done
echo "  $N mutants, $runs commands: $ok succeeded ($trained trained), $refused refused with an error naming the file, $bad otherwise"
if [ $bad -eq 0 ]; then pass h5_cli_mutants_clean; else fail h5_cli_mutants_clean "$bad runs crashed, hung or failed without naming the file"; fi
# the generator really mutates: some mutants still train, some are refused
if [ $trained -gt 0 ] && [ $refused -gt 0 ]; then pass h5_cli_mutants_mixed
else fail h5_cli_mutants_mixed "$trained trained, $refused refused: the mutants should be partly loadable"; fi
