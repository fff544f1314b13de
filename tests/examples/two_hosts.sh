#!/bin/bash
# Trains fashion_mnist --ddp across two "hosts" on this machine and checks that it reaches the accuracy of the same
# flags on one host. Each host is a network namespace with its own host name (unshare --uts), joined to the other by
# a veth pair; Open MPI starts the far daemon through two_hosts_agent.sh (`ip netns exec` where ssh would be) and
# its ranks talk over TCP on the veth only, so the gradients cross a network link as they would between machines.
# Runs one and two ranks per host, checks where the ranks ran and that the gradients went over the veth, and
# removes the namespaces afterwards (also when it fails). Needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN): exits
# 77, which CTest reports as skipped, when namespaces cannot be made here.
#
# Usage: two_hosts.sh FASHION_MNIST MPIEXEC WORK_DIR
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 FASHION_MNIST MPIEXEC WORK_DIR" >&2
  exit 2
fi
exe=$1 mpiexec=$2 work=$3
agent=$(cd "$(dirname "$0")" && pwd)/two_hosts_agent.sh
# The same flags on one host and on two; small enough to keep the test near a minute on two busy cores.
flags=(--limit 10000 --epochs 2 --batch-size 128 --threads 1 --workers 1 --log-every 100000 --device cpu)
steps=$((10000 * 2 / 128))
# Percentage points the two-host accuracy may lie below the one-host one (the ranks sum gradients in another order).
tolerance=0.5
# Every step's gradients (~0.9 MB) cross the link in some share; a tenth of them per step is far above the launcher's
# own traffic, so less means the ranks talked some other way.
min_link_bytes=$((steps * 94000))
deadline=$((SECONDS + 270))  # CTest allows 300 (tests/CMakeLists.txt): room to clean up

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# Runs a command under what is left of the deadline, so a hang fails here, with the clean-up, instead of being
# killed by CTest without it.
bounded() {
  local left=$((deadline - SECONDS))
  [ "$left" -gt 0 ] || fail "out of time before: $*"
  timeout -k 5 "$left" "$@"
}

run_id=braid2h-$$
# Each host's network namespace has the host's name.
host_a=$run_id-a host_b=$run_id-b
link=braid0
addr_a=10.201.0.1 addr_b=10.201.0.2

command -v ip > /dev/null || skip "no 'ip' command (iproute2)"
command -v unshare > /dev/null || skip "no 'unshare' command (util-linux)"
# A host: its network namespace, what runs there, and the session folder Open MPI keeps for it
# (left behind when its processes are killed).
remove_host() {
  local pids
  pids=$(ip netns pids "$1" 2> /dev/null || true)
  [ -z "$pids" ] || kill -9 $pids 2> /dev/null || true
  ip netns del "$1" 2> /dev/null || true
  rm -rf "${TMPDIR:-/tmp}/ompi.$1.$(id -u)"
}
# Hosts of runs killed before their clean-up (a CTest timeout): their script's process is gone.
for stale in $(ip netns list 2> /dev/null | grep -oE '^braid2h-[0-9]+-[ab]' || true); do
  owner=${stale#braid2h-}
  kill -0 "${owner%-*}" 2> /dev/null || remove_host "$stale"
done
cleanup() {
  remove_host "$host_a"
  remove_host "$host_b"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$work"
mkdir -p "$work"
ip netns add "$host_a" 2> "$work/err" || skip "cannot make a network namespace: $(cat "$work/err")"
ip netns add "$host_b" || fail "made one network namespace but not a second"
ip netns exec "$host_a" unshare --uts true 2> "$work/err" || skip "cannot make a UTS namespace: $(cat "$work/err")"
ip link add "$link" netns "$host_a" type veth peer name "$link" netns "$host_b" 2> "$work/err" ||
  skip "cannot make a veth pair: $(cat "$work/err")"
ip -n "$host_a" addr add "$addr_a/24" dev "$link"
ip -n "$host_b" addr add "$addr_b/24" dev "$link"
for ns in "$host_a" "$host_b"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$link" up
done

export BRAID_TWO_HOSTS_MAP="$host_a=$host_a,$host_b=$host_b"
# Not the tests' usual mpiexec flags (shared memory): TCP on the veth alone. plm rsh even under a batch system's
# environment, so that the agent starts the far daemon. Both hosts share this machine's cores, but Open MPI counts
# each host's slots alone, finds none oversubscribed and has idle ranks poll without yielding, which starves the
# ranks that compute: mpi_yield_when_idle says what --oversubscribe on one host would.
mpi_flags=(--bind-to none --mca plm rsh --mca plm_rsh_agent "$agent" --mca mpi_yield_when_idle 1
           --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include "$link" --mca oob_tcp_if_include "$link"
           --mca mtl ^ofi --mca osc ^ucx --mca coll ^hcoll)
[ "$(id -u)" != 0 ] || mpi_flags=(--allow-run-as-root "${mpi_flags[@]}")

# mpiexec on host a, with host a's name, as a user logged in there would start it.
on_host_a() {
  bounded ip netns exec "$host_a" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host_a" "$@"
}

tx_bytes() { ip netns exec "$1" cat "/sys/class/net/$link/statistics/tx_bytes"; }

last_number() {  # last_number REGEX-WITH-ONE-NUMBER TEXT
  grep -oE "$1" <<< "$2" | tail -n 1 | grep -oE '[0-9]+(\.[0-9]+)?' | tail -n 1
}

echo "== one host: fashion_mnist --ddp ${flags[*]}"
one=$(bounded "$exe" --ddp "${flags[@]}" 2>&1) || fail "the one-host run failed:"$'\n'"$one"
echo "$one"
one_acc=$(last_number 'test accuracy [0-9.]+%' "$one")
one_loss=$(last_number 'train loss [0-9.]+' "$one")
[ -n "$one_acc" ] && [ -n "$one_loss" ] || fail "the one-host run printed no accuracy:"$'\n'"$one"

netns_a=$(ip netns exec "$host_a" readlink /proc/self/ns/net)
netns_b=$(ip netns exec "$host_b" readlink /proc/self/ns/net)
for per_host in 1 2; do
  ranks=$((2 * per_host))
  printf '%s slots=%d\n%s slots=%d\n' "$host_a" "$per_host" "$host_b" "$per_host" > "$work/hosts"
  launch=("$mpiexec" "${mpi_flags[@]}" --hostfile "$work/hosts" -n "$ranks")

  # Where the ranks run: per_host of them on each host, each in its host's network namespace, under its name.
  where=$(on_host_a "${launch[@]}" sh -c 'echo "$(uname -n) $(readlink /proc/self/ns/net)"' 2>&1) ||
    fail "mpiexec across the two hosts failed:"$'\n'"$where"
  expected=$(for ((i = 0; i < per_host; ++i)); do
               printf '%s %s\n%s %s\n' "$host_a" "$netns_a" "$host_b" "$netns_b"
             done | sort)
  [ "$(sort <<< "$where")" == "$expected" ] ||
    fail "$ranks ranks did not land $per_host per host; they ran on (host, network namespace):"$'\n'"$where"

  echo "== two hosts, $per_host rank(s) each: mpiexec -n $ranks fashion_mnist --ddp ${flags[*]}"
  sent_a=$(tx_bytes "$host_a") sent_b=$(tx_bytes "$host_b")
  two=$(on_host_a "${launch[@]}" "$exe" --ddp "${flags[@]}" 2>&1) ||
    fail "the two-host run with $ranks ranks failed:"$'\n'"$two"
  sent_a=$(($(tx_bytes "$host_a") - sent_a)) sent_b=$(($(tx_bytes "$host_b") - sent_b))
  echo "$two"
  echo "(link $link: $sent_a bytes from $host_a, $sent_b bytes from $host_b)"
  grep -q "$ranks ranks (DistributedDataParallel)" <<< "$two" ||
    fail "the run did not train on $ranks ranks:"$'\n'"$two"
  [ "$sent_a" -ge "$min_link_bytes" ] && [ "$sent_b" -ge "$min_link_bytes" ] ||
    fail "only $sent_a and $sent_b bytes crossed the link, expected at least $min_link_bytes each way"
  acc=$(last_number 'test accuracy [0-9.]+%' "$two")
  loss=$(last_number 'train loss [0-9.]+' "$two")
  [ -n "$acc" ] && [ -n "$loss" ] || fail "the two-host run printed no accuracy"
  awk -v a="$acc" -v b="$one_acc" -v t="$tolerance" 'BEGIN { exit !(a >= b - t) }' ||
    fail "$ranks ranks on two hosts reached $acc%, one host $one_acc% (tolerance $tolerance points)"
  echo "== $ranks ranks on two hosts: test accuracy $acc% (one host: $one_acc%), train loss $loss (one host: $one_loss)"
done
