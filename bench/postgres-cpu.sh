# Sourced by bench/compare.sh and bench/writes-vs-postgres.sh: the CPU of
# one Postgres cluster and no other on the machine (a test suite's cluster
# beside a run would otherwise count).
#
# pg_ticks POSTMASTER_PID prints, in clock ticks, the postmaster's own CPU
# with that of the children it has reaped (cutime + cstime: backends that
# exited, a pgbench run's among them) and the children alive now.
# postmaster_of PSQL URL prints the pid in the cluster's postmaster.pid.
#
# pg_settled POSTMASTER_PID COUNT waits (at most 10 s) until the postmaster
# has at most COUNT children, so that the backends of clients that just
# left have been reaped. Read pg_ticks only then: a backend reaped between
# the two reads pg_ticks makes (its parent's cutime, then the children
# alive) counts in neither, and right after pgbench exits its 8 backends
# are all in that window. After 5 s of pgbench with 8 clients, pg_ticks
# read at once counted 385-432 ticks, and 688-824 one second later (three
# runs): read at once, it missed 37-53% of the CPU.

postmaster_of() {
  head -1 "$("$1" "$2" -X -qAtc 'show data_directory')/postmaster.pid"
}

pg_ticks() {
  local total pid t
  total=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat")
  for pid in $(pgrep -P "$1" || true); do
    # A backend may exit between the listing and the read.
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || t=0
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

pg_settled() {
  local _
  for _ in $(seq 100); do
    [ "$(pgrep -c -P "$1" || true)" -le "$2" ] && break
    sleep 0.1
  done
}
