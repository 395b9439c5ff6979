#!/usr/bin/env bash
# Scrub and rebuild speed against fio (io_uring, queue depth 16) on the same member files.
#
#   benches/long_ops.sh [DIR] [SIZE]
#
# DIR holds the member files (default: a new folder under /var/tmp, on the machine's disk;
# give a tmpfs path such as /dev/shm/x for memory). SIZE is each member's size (default 1G).
# On a disk-backed DIR the page cache is dropped before every timed run when run as root,
# so both sides read from the disk. Prints one line per case and the ratio raidkit / fio.
set -euo pipefail
dir=${1:-$(mktemp -d /var/tmp/raidkit-longops.XXXX)}
size=${2:-1G}
raidctl=${RAIDCTL:-target/release/raidctl}
chunk=${CHUNK:-512K}
n=6
mkdir -p "$dir"
rm -f "$dir"/d*.img "$dir"/new.img
command -v fio >/dev/null || { echo "fio is needed (apt-get install fio)" >&2; exit 1; }
drop() { sync; if [ "$(id -u)" = 0 ]; then echo 3 >/proc/sys/vm/drop_caches; fi; }
members=()
for i in $(seq 0 $((n - 1))); do members+=("$dir/d$i.img"); done
"$raidctl" create --level 6 --chunk "$chunk" --size "$size" --consistency bitmap "${members[@]}" >/dev/null
bytes=$("$raidctl" status --json "${members[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
head -c "$bytes" /dev/urandom >"$dir/data.bin"
"$raidctl" write --input "$dir/data.bin" "${members[@]}" >/dev/null
rm -f "$dir/data.bin"
member_bytes=$(stat -c %s "${members[0]}")
secs() { python3 -c 'import sys,time; t=time.monotonic(); import subprocess; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); print(time.monotonic()-t)' "$@"; }
# fio as raidkit opens the files: O_DIRECT where the file system has it (not tmpfs).
direct=1
if ! dd if="${members[0]}" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; then direct=0; fi
fio_secs() { secs fio --ioengine=io_uring --iodepth=16 --bs="$chunk" --direct="$direct" "$@"; }
# Scrub: every member read whole. fio reads the same six files, one job each.
drop
t=$(secs "$raidctl" scrub "${members[@]}")
scrub=$(python3 -c "print($n*$member_bytes/$t/1e6)")
drop
fio_args=()
for m in "${members[@]}"; do fio_args+=(--name="r$(basename "$m")" --filename="$m" --rw=read); done
t=$(fio_secs "${fio_args[@]}")
fio_read=$(python3 -c "print($n*$member_bytes/$t/1e6)")
printf 'scrub    raidkit %8.0f MB/s   fio read qd16 x%d files %8.0f MB/s   ratio %.2f\n' \
    "$scrub" "$n" "$fio_read" "$(python3 -c "print($scrub/$fio_read)")"
# Rebuild: one member replaced by a new file, read from the other five, written to it.
truncate -s "$member_bytes" "$dir/new.img"
drop
t=$(secs "$raidctl" replace --old "${members[2]}" --new "$dir/new.img" "${members[@]}")
rebuild=$(python3 -c "print($member_bytes/$t/1e6)")
rm -f "$dir/fio.img"
truncate -s "$member_bytes" "$dir/fio.img"
drop
fio_args=()
for m in "${members[@]}"; do
    [ "$m" = "${members[2]}" ] && continue
    fio_args+=(--name="r$(basename "$m")" --filename="$m" --rw=read)
done
fio_args+=(--name=w --filename="$dir/fio.img" --rw=write --end_fsync=1)
t=$(fio_secs "${fio_args[@]}")
fio_copy=$(python3 -c "print($member_bytes/$t/1e6)")
printf 'rebuild  raidkit %8.0f MB/s   fio the same I/O: 5 reads + 1 write qd16 %8.0f MB/s   ratio %.2f\n' \
    "$rebuild" "$fio_copy" "$(python3 -c "print($rebuild/$fio_copy)")"
rm -f "$dir"/d*.img "$dir/new.img" "$dir/fio.img"
