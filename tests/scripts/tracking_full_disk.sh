# A full disk while a run is merged into the experiment file (issue 12, item
# 9): each job must end with a clean error and a non-zero exit, never a
# segfault at exit in HDF5's file close (a copy's handle left half-closed by a
# failed flush used to be closed again by HDF5 at exit). A small tmpfs fills
# up after a run or two; five more runs then each fail to merge (their own
# run, or the killed ones recover() finds). Needs root for the mount; skipped
# (77) otherwise.
source "$(dirname "$0")/common.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to mount a tmpfs"; exit 77; }
TOP=$PWD
rm -rf fulldisk dirty && mkdir fulldisk || exit 1
mount -t tmpfs -o size=600k tmpfs fulldisk 2>/dev/null || { echo "SKIP: cannot mount a tmpfs"; exit 77; }
trap 'cd "$TOP"; umount fulldisk; rmdir fulldisk; rm -rf dirty' EXIT
# As it is, then from a git checkout with uncommitted changes of several sizes,
# whose diff (provenance) makes the run files bigger, so the disk fills at other
# steps: among them a run file's own flush, which once segfaulted at exit.
fill_up() {
  rm -rf "$TOP"/fulldisk/*
  EXP=$TOP/fulldisk/e.h5
  failed=0
  for i in $(seq 1 9); do
    RUN_TIMEOUT=60 run 2 "$BIGSUM" --rows 4000 --cols 1000 --block-rows 4 --mode stream --progress off --experiment "$EXP"
    printf '%s\n' "$OUT" > "$TOP/fulldisk-$i.txt"
    [ "$RC" -eq 124 ] && fail "run $i hung: $OUT"
    if printf '%s\n' "$OUT" | grep -q "Process received signal\|Segmentation fault\|exited on signal"; then
      fail "run $i died of a signal (exit $RC): $OUT"
    fi
    [ "$RC" -lt 128 ] || fail "run $i exited $RC: $OUT"
    ls -a "$TOP/fulldisk/e.h5.d" | grep -q "^\.e\.h5\.tmp-" && fail "run $i left a temp copy: $(ls -la "$TOP/fulldisk/e.h5.d")"
    if [ "$RC" -ne 0 ]; then
      printf '%s\n' "$OUT" | grep -q "H5Fflush failed\|could not write run\|No space left\|cannot" ||
        fail "run $i failed without saying why (exit $RC): $OUT"
      failed=$((failed + 1))
    elif [ "$failed" -gt 0 ]; then
      fail "run $i succeeded on a full disk: $OUT"
    fi
    [ "$failed" -ge 5 ] && break
  done
  [ "$failed" -ge 5 ] || fail "the disk never filled up: only $failed of $i runs failed ($(df -k "$TOP/fulldisk" | tail -1))"
}
fill_up
mkdir -p dirty && cd dirty && git init -q . && git config user.email t@example.org && git config user.name t &&
  echo start > big.txt && git add big.txt && git commit -qm one || fail "cannot make a git checkout"
for bytes in ${FULL_DISK_DIFF_BYTES:-6000 12000 18000 24000}; do
  head -c "$bytes" /dev/urandom | base64 > big.txt
  fill_up
done
cd "$TOP" || exit 1
echo OK
