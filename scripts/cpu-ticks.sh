#!/usr/bin/env bash
# CPU time (utime + stime, in clock ticks) used so far by the processes whose
# pids are given, summed: for reporting the CPU of each process in a run.
awk '{ s += $14 + $15 } END { print s + 0 }' $(for pid in "$@"; do echo /proc/$pid/stat; done)
