#!/usr/bin/env bash
# Stop the single-node SLURM test cluster started by tests/slurm/up.sh.
#
# Only the processes named in up.sh's pid files (/run/xmen-slurm/*.pid) are
# signalled, in reverse start order: slurmd, slurmctld, slurmdbd, mysqld,
# munged. Each gets SIGTERM, then SIGKILL after a timeout. Jobs still queued
# or running are cancelled first through SLURM (scancel). Safe to run when
# nothing is running. State (accounting DB, configs) is kept for a quick
# restart by up.sh.
#
#   XMEN_SLURM_STOP_TIMEOUT  seconds to wait for each daemon (default 30)
set -euo pipefail

RUN_DIR=/run/xmen-slurm
TIMEOUT=${XMEN_SLURM_STOP_TIMEOUT:-30}

T0=$(date +%s)
log() { printf '[slurm-down +%ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() { printf '[slurm-down] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

[[ $(id -u) -eq 0 ]] || die "must run as root"

# read_pid NAME COMM...: print the pid in $RUN_DIR/NAME.pid if that process is
# alive and its command name is one of COMM...; fail otherwise.
read_pid() {
    local name=$1 pid comm c
    shift
    [[ -s $RUN_DIR/$name.pid ]] || return 1
    pid=$(tr -dc '0-9' <"$RUN_DIR/$name.pid")
    [[ -n $pid ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    for c in "$@"; do
        if [[ $comm == "$c" ]]; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# stop NAME COMM...: SIGTERM the process of NAME's pid file, wait, SIGKILL.
stop() {
    local name=$1 pid deadline
    if pid=$(read_pid "$@"); then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$(($(date +%s) + TIMEOUT))
        while kill -0 "$pid" 2>/dev/null; do
            if (($(date +%s) >= deadline)); then
                log "$name (pid $pid) did not exit within ${TIMEOUT}s: sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                sleep 0.5
                break
            fi
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            die "$name (pid $pid) is still alive"
        fi
    elif [[ -e $RUN_DIR/$name.pid ]]; then
        log "$name not running (stale pid file)"
    else
        log "$name not running"
    fi
    rm -f "$RUN_DIR/$name.pid"
}

# Cancel jobs through SLURM so that no job step outlives the daemons.
if read_pid slurmctld slurmctld >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        log "cancelling jobs: $(echo $jobs)"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        deadline=$(($(date +%s) + 20))
        while [[ -n $(timeout 10 squeue -h -o %i -t R,CG,PD 2>/dev/null || true) ]] &&
            (($(date +%s) < deadline)); do
            sleep 0.5
        done
    fi
fi

stop slurmd slurmd
stop slurmctld slurmctld
stop slurmdbd slurmdbd
stop mysqld mariadbd mysqld
rm -f "$RUN_DIR/mysql/mysqld.pid"
stop munged munged
rm -f "$RUN_DIR/munge/munged.pid"

log "SLURM test cluster stopped"
