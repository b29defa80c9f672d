# The `rankflow` command on damaged experiment files (issue 12, item 8 and
# the format version of item 17): every defect hostile_files.py makes (an
# unknown rankflow_type, an empty string dataset, a wrong dtype or shape, soft
# links, hard-link cycles, lying sizes, a damaged ledger, format majors of -1
# and 2^32+1) ends `show`, `export` and `runs` with a clear error and a
# non-zero exit code: never 0, never a signal (>= 128), never a hang.
source "$(dirname "$0")/common.sh"
SRC=$1
RF="$BIN/tracking/rankflow"
rm -rf hostile && mkdir -p hostile/bad
run 2 "$BIGSUM" --rows 300 --cols 200 --experiment hostile/exp.h5
[ "$RC" -eq 0 ] || fail "bigsum exited $RC: $OUT"
"$RF" show hostile/exp.h5 RUN-1 > /dev/null || fail "the undamaged file does not read"
/usr/bin/python3 "$SRC/tests/scripts/hostile_files.py" hostile/exp.h5 hostile/bad RUN-1 > hostile/list.txt ||
  fail "hostile_files.py failed"
[ "$(wc -l < hostile/list.txt)" -ge 20 ] || fail "too few damaged files: $(cat hostile/list.txt)"

while IFS=$'\t' read -r name piece; do
  for cmd in "show hostile/bad/$name.h5 RUN-1" "show hostile/bad/$name.h5 RUN-1 params/rows" \
             "export hostile/bad/$name.h5 RUN-1 --format json" "export hostile/bad/$name.h5 RUN-1 --format csv"; do
    # shellcheck disable=SC2086
    timeout 60 "$RF" $cmd > hostile/out.txt 2> hostile/err.txt
    rc=$?
    err=$(cat hostile/err.txt)
    [ "$rc" -ne 124 ] || fail "rankflow $cmd hung"
    [ "$rc" -lt 128 ] || fail "rankflow $cmd died of signal $((rc - 128)): $err"
    [ "$rc" -ne 0 ] || fail "rankflow $cmd exited 0 on a damaged file ($name): $(head -3 hostile/out.txt)"
    printf '%s\n' "$err" | grep -q "^error: " || fail "rankflow $cmd: no error message: $err"
    printf '%s\n' "$err" | grep -qF -- "$piece" || fail "rankflow $cmd: message lacks '$piece': $err"
    [ "$(printf '%s\n' "$err" | wc -l)" -le 3 ] || fail "rankflow $cmd: more than a clear error: $err"
  done
  # `runs` reads only the runs' attributes: damaged ones must fail the same way.
  timeout 60 "$RF" runs "hostile/bad/$name.h5" > /dev/null 2> hostile/err.txt
  rc=$?
  [ "$rc" -ne 124 ] && [ "$rc" -lt 128 ] || fail "rankflow runs on $name: exit $rc $(cat hostile/err.txt)"
done < hostile/list.txt

# The format version: named as found, with the one this rankflow reads.
"$RF" runs hostile/bad/major_minus_1.h5 > /dev/null 2> hostile/err.txt && fail "major -1 accepted"
grep -q "format -1\.[0-9]*, which no rankflow writes.*reads formats 1\.x and 2\.x" hostile/err.txt ||
  fail "major -1: $(cat hostile/err.txt)"
"$RF" runs hostile/bad/major_2e32_plus_1.h5 > /dev/null 2> hostile/err.txt && fail "major 2^32+1 read as 1"
grep -q "format 4294967297\.[0-9]*).*reads formats 1\.x and 2\.x" hostile/err.txt || fail "major 2^32+1: $(cat hostile/err.txt)"
# Errors of the command advise its FILE argument, not a job's flag.
"$RF" runs hostile/bad/major_string.h5 > /dev/null 2> hostile/err.txt
grep -q -- "--experiment" hostile/err.txt && fail "the command advises --experiment: $(cat hostile/err.txt)"
echo "not HDF5" > hostile/text.h5
"$RF" runs hostile/text.h5 > /dev/null 2> hostile/err.txt
[ $? -eq 1 ] && grep -q "as FILE" hostile/err.txt && ! grep -q -- "--experiment" hostile/err.txt ||
  fail "advice for a text file: $(cat hostile/err.txt)"
echo OK
