#!/usr/bin/env bash
# Fuzz campaign: runs every cargo-fuzz target under fuzz/ (one per webhook
# source, image_ref, tag_policy) for SECONDS each (default 600), one after
# the other, and prints executions, time and the result per target. A
# crash, a failed property or an input slower than TIMEOUT seconds leaves
# its input in fuzz/artifacts/TARGET/ and fails the script (after the
# other targets have run). Replay one with `cargo +nightly fuzz run TARGET
# fuzz/artifacts/TARGET/crash-…`; once fixed, copy it into
# fuzz/corpus/TARGET/ so that `cargo test` (tests/fuzz_corpus.rs) keeps
# replaying it.
#
#   bench/fuzz.sh                    # 10 minutes per target
#   bench/fuzz.sh 60                 # 1 minute per target
#   TARGETS="image_ref tag_policy" bench/fuzz.sh 120
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The committed corpus is only read; new inputs go to a temporary
# directory, removed on exit: `cargo fuzz cmin` keeps about a thousand of a
# minute's finds per source target, too many to commit, so the committed
# corpus is the fixtures' payloads (minimised) and every input that once
# failed.
set -Eeuo pipefail
trap 'printf "fuzz: failed (status %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

cd "$(dirname "$0")/../fuzz"
DURATION=${1:-600}
TIMEOUT=${TIMEOUT:-10}
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
cargo +nightly fuzz --help >/dev/null 2>&1 || {
	echo "fuzz: needs cargo-fuzz and the nightly toolchain: cargo install cargo-fuzz" >&2
	exit 2
}
read -ra targets <<<"${TARGETS:-$(cargo +nightly fuzz list | tr '\n' ' ')}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo +nightly fuzz build

failed=()
printf '%-18s %12s %8s %10s  %s\n' target executions seconds "execs/s" result
for target in "${targets[@]}"; do
	mkdir -p "$work/$target" "artifacts/$target"
	before=$(find "artifacts/$target" -type f | wc -l)
	status=0
	# The first directory is where libFuzzer writes what it finds; the
	# committed corpus is read as seeds.
	cargo +nightly fuzz run "$target" "$work/$target" "corpus/$target" -- \
		-max_total_time="$DURATION" -timeout="$TIMEOUT" -print_final_stats=1 \
		>"$work/$target.log" 2>&1 || status=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -1)
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work/$target.log" | tail -1)
	after=$(find "artifacts/$target" -type f | wc -l)
	if ((status == 0 && after == before)); then
		result=ok
	else
		result="FAILED (status $status; see fuzz/artifacts/$target/)"
		failed+=("$target")
		tail -n 30 "$work/$target.log" >&2
	fi
	rate=$(( ${took:-0} > 0 ? ${runs:-0} / took : 0 ))
	printf '%-18s %12s %8s %10s  %s\n' "$target" "${runs:-?}" "${took:-?}" "$rate" "$result"
done
if ((${#failed[@]})); then
	echo "fuzz: ${failed[*]} failed" >&2
	exit 1
fi
