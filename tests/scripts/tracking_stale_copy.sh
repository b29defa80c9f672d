# kill -9 during the end-of-run copy leaves `<file>.d/.<file>.tmp-<host>-<pid>`
# (a whole copy of the experiment) behind (issue 12, item 12). recover(), run
# by every start_run and by `rankflow recover`, removes copies whose writer
# is gone, under the sidecar's lock, and leaves a live writer's copy alone.
source "$(dirname "$0")/common.sh"
RF="$BIN/tracking/rankflow"
DEMO="$BIN/tests/track_demo"
rm -rf stale && mkdir stale && cd stale || exit 1
EXP=$PWD/e.h5
run 2 "$DEMO" all --experiment "$EXP"
[ "$RC" -eq 0 ] || fail "track_demo exited $RC: $OUT"
host=$(hostname | sed 's/[^A-Za-z0-9._]/_/g')
sleep 0 &
dead=$!
wait $dead
sleep 120 &
live=$!
trap 'kill $live 2>/dev/null' EXIT
D=$EXP.d
# What a kill -9 mid-copy leaves: a (partial) copy of the experiment file.
make_stale() {
  cp "$EXP" "$D/.e.h5.tmp-$host-$dead"   # this host, writer gone
  cp "$EXP" "$D/.e.h5.tmp-$dead"         # the name older versions used
  cp "$EXP" "$D/.e.h5.tmp-otherhost-1"   # another host: the lock says nobody writes it
  cp "$EXP" "$D/.e.h5.tmp-$host-$live"   # this host, writer alive: kept
}
check_clean() {
  for f in ".e.h5.tmp-$host-$dead" ".e.h5.tmp-$dead" ".e.h5.tmp-otherhost-1"; do
    [ -e "$D/$f" ] && fail "$1 left the stale copy $f: $(ls -la "$D")"
  done
  [ -e "$D/.e.h5.tmp-$host-$live" ] || fail "$1 removed the copy of live process $live: $(ls -la "$D")"
}
make_stale
"$RF" recover "$EXP" > recover.txt 2>&1 || fail "rankflow recover failed: $(cat recover.txt)"
check_clean "rankflow recover"
make_stale
run 2 "$DEMO" all --experiment "$EXP"
[ "$RC" -eq 0 ] || fail "track_demo exited $RC: $OUT"
check_clean "start_run"
"$RF" runs "$EXP" | grep -c "succeeded" | grep -q "^2$" || fail "runs lost: $("$RF" runs "$EXP")"
echo OK
