#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz, one after the other (one process
# at a time), each for SECONDS on a scratch copy of its seed corpus (the repo
# is never written), with its dictionary if there is one. Prints per target the
# executions done (libFuzzer's stat::number_of_executed_units) and ends with
# "N passed, N failed"; exits 1 if any target crashed, leaked, hung or failed
# a property check. On a failure the scratch directory (logs, the failing
# input) is kept and its path printed; otherwise it is removed.
#
#   tests/fuzz/run_fuzzers.sh [--build=DIR] [--seconds=N] [TARGET...]
#
# DIR (default build-fuzz) is a build configured with -DHUBMETRICS_FUZZ=ON and
# built with `cmake --build DIR --target fuzzers`; TARGETs are names without
# the fuzz_ prefix (default: all). FUZZ_ARGS adds libFuzzer flags.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=build-fuzz
seconds=60
targets=()
for arg in "$@"; do
  case "$arg" in
    --build=*) build="${arg#--build=}" ;;
    --seconds=*) seconds="${arg#--seconds=}" ;;
    -*) echo "usage: $0 [--build=DIR] [--seconds=N] [TARGET...]" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
  esac
done
if ((${#targets[@]} == 0)); then
  for d in tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/hubmetrics-fuzz.XXXXXX")"
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, scratch $scratch"
# Leaks are findings; a UBSan report stops the input like a crash.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

passed=0
failed=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  work="$scratch/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  if [ ! -x "$bin" ] || [ ! -d "tests/fuzz/corpus/$t" ]; then
    echo "fuzz: $t: no $bin or no tests/fuzz/corpus/$t" >&2
    failed=$((failed + 1))
    continue
  fi
  cp -R "tests/fuzz/corpus/$t/." "$work/corpus/"
  dict=()
  [ -f "tests/fuzz/dict/$t.dict" ] && dict=("-dict=tests/fuzz/dict/$t.dict")
  rc=0
  # shellcheck disable=SC2086
  "$bin" "$work/corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$work/artifacts/" ${FUZZ_ARGS:-} \
    >"$work/log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)"
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    printf 'fuzz: %-16s passed  %12s executions\n' "$t" "${execs:-?}"
  else
    failed=$((failed + 1))
    printf 'fuzz: %-16s FAILED  %12s executions (exit %s; log %s)\n' "$t" "${execs:-?}" "$rc" \
      "$work/log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*FUZZ_CHECK|.*runtime error)' "$work/log" | head -5 || true
    for a in "$work/artifacts/"*; do [ -e "$a" ] && echo "fuzz:   input: $a"; done
  fi
done
echo "$passed passed, $failed failed"
if [ "$failed" != 0 ]; then
  echo "fuzz: logs and failing inputs kept in $scratch"
  exit 1
fi
rm -rf "$scratch"
