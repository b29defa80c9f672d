#!/usr/bin/env bash
# One bounded fuzzing session, as `ctest -L fuzz` runs it:
#
#   run_fuzz.sh FUZZER SEEDS WORKDIR SECONDS [hdf5]
#
# FUZZER runs for SECONDS on WORKDIR/corpus (where it adds what it finds)
# and SEEDS (the committed corpus, read only); crash, leak, timeout and OOM
# inputs land in WORKDIR. Any finding fails the test, with one exception
# under `hdf5`: libhdf5 1.10 itself overflows buffers, allocates gigabytes
# and spins on some damaged files (in H5Aexists, H5C_protect, H5T__conv_vlen:
# bugs in HDF5, not in how rankflow calls it). There the fuzzer keeps going
# after a finding (-fork=1 -ignore_*) and each finding is replayed: one whose
# frame at fault is inside libhdf5 is listed as HDF5's; any other fails.
set -u
fuzzer=$1 seeds=$2 work=$3 seconds=$4 mode=${5:-}
mkdir -p "$work/corpus"
rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*
opts=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1
  -artifact_prefix="$work/")
[ "$mode" = hdf5 ] && opts+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
"$fuzzer" "${opts[@]}" "$work/corpus" "$seeds" > "$work/fuzz.log" 2>&1
rc=$?
# Executions: "Done N runs" (fork mode: the last "#N: cov" line).
grep -E "Done [0-9]+ runs|^#[0-9]+: cov" "$work/fuzz.log" | tail -1
if [ "$mode" != hdf5 ]; then
  [ $rc -eq 0 ] && exit 0
  tail -60 "$work/fuzz.log"
  echo "FAIL: $(basename "$fuzzer") found: $(ls "$work" | grep -E '^(crash|leak|timeout|oom)-')"
  exit 1
fi
bad=0
shopt -s nullglob
for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
  # Replayed alone with the same limits (timeouts: once more, unloaded).
  "$fuzzer" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=1024 "$f" > "$f.txt" 2>&1
  if [ $? -eq 0 ]; then
    echo "did not reproduce alone (a slow moment of a loaded machine): $f"
    continue
  fi
  # The frame at fault: the first one outside the sanitizer and libFuzzer
  # runtimes, the allocator and libc (named by its .so, or by glibc's
  # source path: a memcpy inside libhdf5 shows as sysdeps/.../memmove-*.S).
  frame=$(grep -E '^ +#[0-9]+ ' "$f.txt" |
    grep -vE '__interceptor_|__asan|__sanitizer|__ubsan|__lsan|fuzzer::| in (malloc|calloc|realloc|free|strdup|strndup|memcpy|memmove|memset|operator new|operator delete) |libc\.so|/sysdeps/|/libFuzzer' |
    head -1)
  if printf '%s\n' "$frame" | grep -q libhdf5; then
    echo "HDF5's own finding (not rankflow's): $f: $frame"
    continue
  fi
  echo "FAIL: $f: $(grep -m1 -E 'ERROR|runtime error|invariant|ALARM|out-of-memory' "$f.txt")"
  sed -n '1,60p' "$f.txt"
  bad=1
done
# A fork-mode run that stopped for another reason than its time is a failure too.
grep -q "Done [0-9]* runs\|stat::number_of_executed_units\|INFO: fuzzed for" "$work/fuzz.log" ||
  { tail -40 "$work/fuzz.log"; echo "FAIL: the fuzzer did not finish"; bad=1; }
rm -rf "$work"/rankflow-fuzz-*  # the targets' scratch files
exit $bad
