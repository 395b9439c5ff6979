#!/bin/bash
# The served-vs-in-process comparison of issue 16, on tmpfs, in one run:
#   (a) fio's nbd engine against `raidctl serve` of a RAID-6 over six members;
#   (b) the same array used in-process (the raidkit-nbd `inproc` example, the same
#       access patterns issued by DEPTH threads straight to the library);
#   (c) fio against `nbdkit file` serving one member-sized file: the transport's ceiling.
# Usage: benches/serve.sh [DIR (default /dev/shm/raidkit-serve-bench)] [SECONDS (default 4)]
# Needs fio, nbdkit; builds raidctl and the example with --release.
set -euo pipefail
DIR=${1:-/dev/shm/raidkit-serve-bench}
SECS=${2:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build -q --release -p raidctl --manifest-path "$ROOT/Cargo.toml"
cargo build -q --release -p raidkit-nbd --example inproc --manifest-path "$ROOT/Cargo.toml"
RAIDCTL=$ROOT/target/release/raidctl
INPROC=$ROOT/target/release/examples/inproc
rm -rf "$DIR" && mkdir -p "$DIR"
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT
M=()
for i in 0 1 2 3 4 5; do
    truncate -s 1G "$DIR/d$i"
    M+=("$DIR/d$i")
done
"$RAIDCTL" create --level 6 --assume-clean --name bench "${M[@]}" >/dev/null

fio_row() { # LABEL URI RW BS DEPTH
    fio --name=p --ioengine=nbd --uri="$2" --rw="$3" --bs="$4" --iodepth="$5" \
        --size=1G --time_based --runtime="$SECS" --output-format=json 2>/dev/null |
        python3 -c "
import json, sys
t = sys.stdin.read(); j = json.loads(t[t.index('{'):])['jobs'][0]
k = 'read' if 'read' in '$3' else 'write'
print('%-8s %-10s %-3s qd%-3s %8.0f MB/s %9.0f IOPS' % ('$1', '$3', '$4', '$5', j[k]['bw_bytes'] / 1e6, j[k]['iops']))"
}
fio_all() { # LABEL URI
    for job in "write 1M" "read 1M" "randwrite 4k" "randread 4k"; do
        set -- "$1" "$2" $job
        for depth in 1 32; do fio_row "$1" "$2" "$3" "$4" "$depth"; done
    done
}

echo "# in-process (library, DEPTH threads)"
"$INPROC" "$SECS" 32 "${M[@]}"

echo "# served (raidctl serve, Unix socket)"
"$RAIDCTL" serve --unix "$DIR/s.sock" "${M[@]}" 2>"$DIR/serve.log" &
SERVER=$!
for _ in $(seq 100); do [ -S "$DIR/s.sock" ] && break; sleep 0.1; done
fio_all served "nbd+unix:///?socket=$DIR/s.sock"
kill "$SERVER"; wait "$SERVER" || true; SERVER=

echo "# nbdkit file, one member-sized file (the transport's ceiling)"
truncate -s 1G "$DIR/single"
nbdkit -U "$DIR/k.sock" -f file "$DIR/single" &
SERVER=$!
for _ in $(seq 100); do [ -S "$DIR/k.sock" ] && break; sleep 0.1; done
fio_all nbdkit "nbd+unix:///?socket=$DIR/k.sock"
