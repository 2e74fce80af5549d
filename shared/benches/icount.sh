#!/usr/bin/env bash
# Instruction and allocation counts per hot-path operation, independent of the machine's load.
# Builds the `hot_paths_icount` bench target (bench profile: release with debug info), then for
# every operation (or those named as arguments, e.g. `normalize/message_balance`) runs it LO and
# HI times under valgrind's callgrind (instructions executed) and dhat (heap blocks and bytes
# allocated) and prints (count at HI - count at LO) / (HI - LO): start-up, input building and
# first-call costs cancel out. Prints a Markdown table. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/../.."
LO=${LO:-10}
HI=${HI:-1010}
bin=$(cargo bench -p shared --bench hot_paths_icount --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*hot_paths_icount[^"]*"' | tail -n1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "icount.sh: bench binary not built" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ $# -gt 0 ]; then ops=("$@"); else mapfile -t ops < <("$bin" --list); fi

instructions() { # OP N
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$bin" "$1" "$2" 2>/dev/null
    awk '/^summary:/ { print $2 }' "$tmp/cg"
}
heap() { # OP N -> "blocks bytes"
    valgrind --tool=dhat --dhat-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        awk '/Total:/ { gsub(",", ""); print $6, $3 }'
}
per_op() { # HI_VALUE LO_VALUE
    awk -v h="$1" -v l="$2" -v n=$((HI - LO)) 'BEGIN { printf "%.0f", (h - l) / n }'
}

echo "| operation | instructions/op | allocations/op | bytes allocated/op |"
echo "|---|---:|---:|---:|"
for op in "${ops[@]}"; do
    i_lo=$(instructions "$op" "$LO")
    i_hi=$(instructions "$op" "$HI")
    read -r b_lo y_lo < <(heap "$op" "$LO")
    read -r b_hi y_hi < <(heap "$op" "$HI")
    printf '| %s | %s | %s | %s |\n' "$op" "$(per_op "$i_hi" "$i_lo")" \
        "$(per_op "$b_hi" "$b_lo")" "$(per_op "$y_hi" "$y_lo")"
done
