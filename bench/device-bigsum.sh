#!/usr/bin/env bash
# bigsum at 80000 x 80000 (51.2 GB) with -n 16 on a 16-core, 128 GiB machine
# (Ubuntu 24.04, Open MPI 4.1.6, no Boost.MPI or parallel HDF5 installed).
#
#   bench/device-bigsum.sh prepare    # here: copy the binaries and the libraries
#                                     # they need into build-device/ (carry that path)
#   bench/device-bigsum.sh run        # there: serial-free comparison, JSON to $OUT
#
# Runs the hand-written MPI bigsum and rankflow's (materialize and stream) in
# one benchmark binary, under mpirun's default binding, --bind-to none and
# --bind-to core, and reports generation and sum apart.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=$here/build-device

case "${1:-}" in
  prepare)
    rm -rf "$dest" && mkdir -p "$dest/lib"
    cp "$here/build/bench/rankflow_bench" "$here/build/examples/bigsum/bigsum" "$dest/"
    # The libraries Ubuntu's machine lacks: Boost.MPI/Serialization 1.74 and
    # Debian's parallel HDF5 with its compression helpers.
    for lib in libboost_mpi libboost_serialization libhdf5_openmpi libaec libsz; do
      ldd "$dest/rankflow_bench" | awk -v l="$lib" '$1 ~ "^"l {print $3}' | while read -r f; do cp -L "$f" "$dest/lib/"; done
    done
    ls -la "$dest" "$dest/lib"
    ;;
  run)
    export LD_LIBRARY_PATH=$dest/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export RANKFLOW_BENCH_ROWS=80000 RANKFLOW_BENCH_COLS=80000
    out=${OUT:-/tmp}
    nproc; free -g; mpirun --version | head -1
    for bind in default none core; do
      flags=()
      [ "$bind" = default ] || flags=(--bind-to "$bind")
      mpirun -n 16 "${flags[@]}" "$dest/rankflow_bench" --benchmark_filter='handwritten|rankflow|stream_read' \
        --benchmark_out="$out/bigsum-n16-bind-$bind.json" --benchmark_out_format=json 2>&1 | tail -8
    done
    ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
