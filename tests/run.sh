#!/bin/sh
# Runs every test suite and prints one summary line: "N passed, N failed,
# N skipped".  Each test runs in its own process with a time limit.
#
#   unit:        $B/tests/unit/test_* (cmocka; its own pass/fail counts)
#   integration: tests/integration/*.sh; each prints "ok - NAME",
#                "not ok - NAME" or "skip - NAME" lines; a script that exits
#                non-zero without a "not ok" line counts as one failure
#   fuzz:        build/fuzz/fuzz_* for a few seconds each (smoke)
#
# Environment: B (object dir, from make), SAN=1 (sanitizer build),
# ONLY=glob (run only tests whose name matches), FUZZ_SECONDS, TSCALE
# (multiplies the integration tests' waits and timeouts: default 1, and 3
# with SAN=1, whose binaries run several times slower; raise it on a
# loaded machine, e.g. TSCALE=2 make test).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build/rel}
ONLY=${ONLY:-*}
FUZZ_SECONDS=${FUZZ_SECONDS:-8}
export B SAN="${SAN:-0}" MCPTUN_TOP="$top"
if [ -z "${TSCALE:-}" ]; then
	if [ "$SAN" = 1 ]; then TSCALE=3; else TSCALE=1; fi
fi
export TSCALE
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=87}"
export CMOCKA_MESSAGE_OUTPUT=stdout

pass=0 fail=0 skip=0
failed_names=""
logdir=$(mktemp -d "${TMPDIR:-/tmp}/mcptun-test.XXXXXX")

note_fail() { fail=$((fail + 1)); failed_names="$failed_names $1"; }

match() { case "$1" in $ONLY) return 0 ;; esac; return 1; }

# --- unit --------------------------------------------------------------
for t in "$top/$B"/tests/unit/test_*; do
	[ -x "$t" ] || continue
	name=unit/$(basename "$t")
	match "$name" || continue
	log="$logdir/$(basename "$t").log"
	timeout 120 "$t" >"$log" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	pass=$((pass + ${p:-0}))
	if [ -n "$f" ] && [ "$f" -gt 0 ]; then
		fail=$((fail + f)); failed_names="$failed_names $name"
		sed 's/^/    /' "$log"
	elif [ $rc -ne 0 ] || [ -z "$p" ]; then
		note_fail "$name"
		echo "FAIL $name (exit $rc)"; sed 's/^/    /' "$log" | tail -n 30
	fi
	if grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error:' -e 'ERROR: LeakSanitizer' "$log"; then
		note_fail "$name(sanitizer)"
		grep -A20 -e 'Sanitizer' -e 'runtime error:' "$log" | head -40
	fi
	echo "unit $(basename "$t"): ${p:-0} passed${f:+, $f failed}"
done

# --- fuzz smoke --------------------------------------------------------
for t in "$top"/build/fuzz/fuzz_*; do
	[ -x "$t" ] || continue
	n=$(basename "$t" | sed 's/^fuzz_//')
	name=fuzz/$n
	match "$name" || continue
	corpus="$logdir/corpus_$n"
	mkdir -p "$corpus"
	seeds="$top/tests/fuzz/seeds_$n"
	[ -d "$seeds" ] || seeds=""
	if timeout $((FUZZ_SECONDS + 60)) "$t" -max_total_time="$FUZZ_SECONDS" \
	    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$logdir/" "$corpus" $seeds \
	    >"$logdir/fuzz_$n.log" 2>&1; then
		pass=$((pass + 1))
		echo "ok - $name ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$logdir/fuzz_$n.log" | sed 's/.*: //' || echo ?) runs)"
	else
		note_fail "$name"
		echo "not ok - $name"; tail -n 40 "$logdir/fuzz_$n.log"
	fi
done

# --- integration -------------------------------------------------------
[ "$TSCALE" = 1 ] ||
    echo "integration: waits and timeouts scaled by TSCALE=$TSCALE"
for t in "$top"/tests/integration/*.sh; do
	[ -f "$t" ] || continue
	name=integration/$(basename "$t" .sh)
	match "$name" || continue
	log="$logdir/$(basename "$t" .sh).log"
	echo "== $name"
	timeout -k 10 600 sh "$t" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^ok - ' "$log")
	f=$(grep -c '^not ok - ' "$log")
	s=$(grep -c '^skip - ' "$log")
	grep -e '^ok - ' -e '^not ok - ' -e '^skip - ' "$log" | sed 's/^/   /'
	pass=$((pass + p)); skip=$((skip + s))
	if [ "$f" -gt 0 ]; then
		fail=$((fail + f)); failed_names="$failed_names $name"
		echo "   --- log of $name (last 60 lines) ---"; tail -n 60 "$log" | sed 's/^/   | /'
	elif [ $rc -ne 0 ]; then
		note_fail "$name"
		echo "   $name exited $rc without reporting a failure; last lines:"
		tail -n 40 "$log" | sed 's/^/   | /'
	fi
done

if [ $fail -gt 0 ]; then
	echo "failed:$failed_names"
	echo "logs kept in $logdir"
else
	rm -rf "$logdir"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
