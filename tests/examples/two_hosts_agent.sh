#!/bin/sh
# Open MPI's launcher agent (plm_rsh_agent) for two_hosts.sh: stands in for ssh, but "logs in" to a network namespace
# of this machine instead of another machine. Called as ssh would be: [options] HOST COMMAND...; COMMAND is a shell
# command line (the orted start), joined by spaces as ssh joins it for the remote shell.
#
# BRAID_TWO_HOSTS_MAP names the hosts and their namespaces: "hostA=netnsA,hostB=netnsB". Each start gets its own
# UTS namespace with the host's name, so the daemon and its ranks see the name of their host, not this machine's.
# Exit status 255 is ssh's for "could not connect", which Open MPI reports as a failed daemon start.
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
host=$1
[ $# -ge 2 ] || { echo "two_hosts_agent: expected HOST COMMAND..., got '$*'" >&2; exit 255; }
shift
ns=$(printf '%s\n' "$BRAID_TWO_HOSTS_MAP" | tr ',' '\n' | sed -n "s/^$host=//p")
if [ -z "$ns" ]; then
  echo "two_hosts_agent: host '$host' is not in BRAID_TWO_HOSTS_MAP '$BRAID_TWO_HOSTS_MAP'" >&2
  exit 255
fi
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && eval "$1"' "$host" "$*"
