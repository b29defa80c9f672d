# cmake --install, then a separate project finds rankflow with find_package and runs.
source "$(dirname "$0")/common.sh"
SRC=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$BIN" --prefix "$work/prefix" >/dev/null || fail "cmake --install"
mkdir -p "$work/consumer"
cat > "$work/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer CXX)
find_package(rankflow 0.1 REQUIRED)
add_executable(consumer main.cpp)
target_link_libraries(consumer PRIVATE rankflow::runtime)
CM
cat > "$work/consumer/main.cpp" <<'CPP'
#include <rankflow/rankflow.hpp>
#include <cstdio>
int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  double s = rt.mapreduce(rankflow::range(0, 1000), [](std::int64_t i) { return double(i); },
                          [](double a, double b) { return a + b; });
  if (rt.is_scheduler()) std::printf("consumer sum %.0f\n", s);
}
CPP
cmake -S "$work/consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/log" 2>&1 || fail "configure: $(cat "$work/log")"
cmake --build "$work/build" >"$work/log" 2>&1 || fail "build: $(cat "$work/log")"
run 2 "$work/build/consumer"
[ "$RC" -eq 0 ] && printf '%s\n' "$OUT" | grep -q "consumer sum 499500" || fail "consumer: $RC $OUT"
echo OK
