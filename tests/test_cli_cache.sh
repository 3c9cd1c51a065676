#!/usr/bin/env bash
# test_cli_cache.sh — the features cache through the CLI (issue 15):
#   - `graft cache list|clear [--json]`: entries, sizes, last use, total,
#     limit; clear empties it; --help, usage errors exit 2;
#   - GRAFT_CACHE_MAX: a bad value is a clear error (exit 1, nothing
#     written); a small limit evicts the least recently used entry;
#   - two `graft train` runs filling the same entry at once: one entry, of
#     the exact size (56-byte header + n x F float16), no temp files left,
#     and a third run reuses it (its digest checked on read) and trains the
#     same model, byte for byte.
# Data: tests/fixtures/gen_cli.py's CIFAR .bin, tests/fixtures/cli/tiny.cfg.
set -u
. "$(dirname "$0")/lib.sh"
export GRAFT_HOME="$T/home"
unset GRAFT_CACHE_MAX GRAFT_FEATURES_CACHE

need_numpy_pil cli_cache "to make the test data"
"$PY" "$GEN" cifar "$T/a.bin" 600 1 && "$PY" "$GEN" cifar "$T/b.bin" 200 2 \
  || { echo "FAIL cli_cache_setup: gen_cli.py"; exit 1; }
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"
TRAIN0=(train --base "darknet:$T/tiny.cfg" --weights none --head flatten,dense:10:softmax --epochs 2)
TRAIN=("${TRAIN0[@]}" -q)
DIR="$GRAFT_HOME/cache/features"
A_BYTES=$((56 + 600 * 1024 * 2))   # tiny.cfg's cut: 8x8x16 = 1024 float16 features per image

# ---- usage
"$G" cache --help >"$T/out" 2>"$T/err"; rc=$?
"$G" cache >"$T/out2" 2>"$T/err2"; rc2=$?
"$G" cache purge >/dev/null 2>"$T/err3"; rc3=$?
"$G" cache list --bogus >/dev/null 2>"$T/err4"; rc4=$?
if [ $rc -eq 0 ] && has "$T/out" "^usage: graft cache list" && has "$T/out" "GRAFT_CACHE_MAX" \
   && [ $rc2 -eq 2 ] && has "$T/err2" "^graft: error: cache: name an action, list or clear" \
   && [ $rc3 -eq 2 ] && has "$T/err3" "^graft: error: cache: unknown action 'purge'" \
   && [ $rc4 -eq 2 ] && has "$T/err4" "^graft: error: unknown option '--bogus' \(see graft cache --help\)" \
   && "$G" --help | grep -qE "^  cache +list or clear"; then
  pass cache_usage
else fail cache_usage "rc=$rc/$rc2/$rc3/$rc4 $(cat "$T/err2" "$T/err3" "$T/err4")"; fi

"$G" cache list >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "^features cache: $DIR\$" && has "$T/out" "^0 entries, 0 B; limit 10.0 GiB\$"; then
  pass cache_list_empty
else fail cache_list_empty "rc=$rc $(cat "$T/out" "$T/err")"; fi

# ---- a bad GRAFT_CACHE_MAX: a clear error before any work, no model written
GRAFT_CACHE_MAX=lots "$G" "${TRAIN[@]}" --data "$T/a.bin" --out "$T/bad.gft" >"$T/out" 2>"$T/err"; rc=$?
GRAFT_CACHE_MAX=-5G "$G" cache list >/dev/null 2>"$T/err2"; rc2=$?
if [ $rc -eq 1 ] && has "$T/err" "^graft: error: GRAFT_CACHE_MAX='lots' is not a size: give bytes, or a number with K, M, G or T" \
   && ! [ -e "$T/bad.gft" ] && ! [ -d "$DIR" ] && [ $rc2 -eq 1 ] && has "$T/err2" "^graft: error: GRAFT_CACHE_MAX='-5G' is not a size"; then
  pass cache_max_bad_value
else fail cache_max_bad_value "rc=$rc/$rc2 $(cat "$T/err" "$T/err2")"; fi

# ---- two runs filling the same entry at once.  Each writes its own temp file and renames it into
# place.  Made deterministic: the first run is stopped (SIGSTOP) while its temp file is half
# written (lib.sh's stop_when: a temp file seen then stays unrenamed), the second runs from start
# to end meanwhile (its cache upkeep must leave the live run's temp file alone) and renames its
# entry into place, then the first resumes and renames over it; either way one complete entry,
# which a third run reuses (its digest checked on read).
"$G" "${TRAIN[@]}" --data "$T/a.bin" --out "$T/c1.gft" >"$T/o1" 2>"$T/e1" & p1=$!; PIDS+=("$p1")
stop_when $p1 compgen -G "$DIR/*.f32.tmp.$p1" >/dev/null && caught=1 || caught=0
"$G" "${TRAIN[@]}" --data "$T/a.bin" --out "$T/c2.gft" >"$T/o2" 2>"$T/e2" & p2=$!; PIDS+=("$p2")
wait $p2; rc2=$?
if [ $caught = 1 ]; then
  tmp_kept=$(ls "$DIR" | grep -c "\.tmp\.$p1\$")   # the second run's cache upkeep left it alone
  [ -e "$(ls "$DIR"/*.f32 2>/dev/null | head -1)" ] && second_first=1 || second_first=0
  kill -CONT $p1
fi
wait $p1; rc1=$?
n=$(ls "$DIR" | wc -l); entry=$(ls "$DIR"/*.f32 2>/dev/null | head -1)
"$G" "${TRAIN0[@]}" --data "$T/a.bin" --out "$T/c3.gft" >"$T/o3" 2>"$T/e3"; rc3=$?
if [ $caught = 0 ]; then
  echo "SKIP cache_two_writers_interleaved: the first run's temp file was never seen (the runs then only follow each other)"
elif [ "$tmp_kept" = 1 ] && [ "$second_first" = 1 ]; then pass cache_two_writers_interleaved
else fail cache_two_writers_interleaved "temp kept $tmp_kept, entry by the second run $second_first"; fi
if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ "$n" -eq 1 ] && [ "$(stat -c %s "$entry")" -eq $A_BYTES ] \
   && [ $rc3 -eq 0 ] && has "$T/o3" "reused from the features cache" && ! has "$T/e3" "damaged" \
   && cmp -s "$T/c1.gft" "$T/c2.gft" && cmp -s "$T/c1.gft" "$T/c3.gft" && clean "$T/e1" && clean "$T/e2"; then
  pass cache_two_writers_one_entry
else fail cache_two_writers_one_entry "rc=$rc1/$rc2/$rc3 files=$n $(ls -l "$DIR") $(cat "$T/e1" "$T/e2" "$T/e3" | tail -8)"; fi

# ---- list: the entry, its size, images x features, last use; --json agrees
"$G" cache list >"$T/out" 2>"$T/err"; rc=$?
"$G" cache list --json >"$T/json" 2>>"$T/err"; rc2=$?
key=$(basename "$entry" .f32)
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] \
   && has "$T/out" "^20[0-9-]{8}T[0-9:]{8}Z +1\.2 MiB +600 x 1024 +$key\$" && has "$T/out" "^1 entry, 1\.2 MiB; limit 10\.0 GiB\$" \
   && "$PY" - "$T/json" "$key" "$A_BYTES" "$DIR" <<'EOF'
import json, sys, time
j = json.load(open(sys.argv[1])); key, size, d = sys.argv[2], int(sys.argv[3]), sys.argv[4]
assert j["dir"] == d and j["enabled"] is True and j["limit_bytes"] == 10 << 30, j
assert j["count"] == 1 and j["total_bytes"] == size, j
e = j["entries"][0]
assert e["key"] == key and e["bytes"] == size and e["images"] == 600 and e["features"] == 1024, e
assert abs(e["last_used_unix"] - time.time()) < 600, e
EOF
then pass cache_list_entries
else fail cache_list_entries "rc=$rc/$rc2 $(cat "$T/out" "$T/json" "$T/err")"; fi

# ---- a limit that holds one entry: a run on other data evicts the least recently used one
GRAFT_CACHE_MAX=1400K "$G" "${TRAIN[@]}" --data "$T/b.bin" --out "$T/b.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/err" "^graft: features cache: removed 1 least recently used entry \(1\.2 MiB\) to stay under its limit \(GRAFT_CACHE_MAX, 1\.4 MiB\)" \
   && ! [ -e "$entry" ] && [ "$(ls "$DIR" | wc -l)" -eq 1 ] && [ "$(du -cb "$DIR"/*.f32 | tail -1 | cut -f1)" -le $((1400 * 1024)) ]; then
  pass cache_max_evicts_lru
else fail cache_max_evicts_lru "rc=$rc $(cat "$T/err") $(ls -l "$DIR")"; fi
# an entry larger than the limit is not stored (a note says so), the run still succeeds
GRAFT_CACHE_MAX=1M "$G" "${TRAIN[@]}" --data "$T/a.bin" --out "$T/a2.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/err" "these features \(1\.2 MiB\) are larger than its limit \(GRAFT_CACHE_MAX, 1\.0 MiB\): not stored" \
   && [ "$(ls "$DIR" | wc -l)" -eq 1 ] && cmp -s "$T/a2.gft" "$T/c1.gft"; then
  pass cache_max_entry_too_large
else fail cache_max_entry_too_large "rc=$rc $(cat "$T/err") $(ls -l "$DIR")"; fi

# ---- clear (a killed writer's temp file goes too; --json)
dead=$(sh -c 'echo $$')   # a pid that has exited
echo half >"$DIR/$key.f32.tmp.$dead"
"$G" cache clear >"$T/out" 2>"$T/err"; rc=$?
"$G" cache clear --json >"$T/json" 2>>"$T/err"; rc2=$?
if [ $rc -eq 0 ] && has "$T/out" "^removed 1 entry \(400\.1 KiB\) from $DIR\$" && [ -z "$(ls -A "$DIR")" ] \
   && [ $rc2 -eq 0 ] && "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); assert j=={'dir': sys.argv[2], 'removed': 0, 'freed_bytes': 0}, j" "$T/json" "$DIR"; then
  pass cache_clear
else fail cache_clear "rc=$rc/$rc2 $(cat "$T/out" "$T/json" "$T/err") $(ls -A "$DIR")"; fi
