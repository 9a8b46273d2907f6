#!/usr/bin/env bash
# Stop what start.sh started, by PID file (never by process name).
#
#   stop.sh [slurm] [docker] [ssh] [--purge]    (no part = all three)
#
# slurm: cancels the remaining jobs, then stops slurmd, slurmctld and munged (munged only when
# start.sh started it). docker: stops dockerd. --purge also removes $PTQV_INFRA_DIR and the
# slurm configs start.sh wrote (restoring *.before-ptqv copies).
set -uo pipefail

DIR="${PTQV_INFRA_DIR:-/tmp/ptqv-infra}"
MARKER="# written by ptq-validators scripts/test-infra/start.sh"
PURGE=0 parts=()
for a in "$@"; do
  case "$a" in
    --purge) PURGE=1 ;;
    slurm|docker|ssh) parts+=("$a") ;;
    *) echo "stop.sh: unknown argument '$a'" >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -eq 0 ] && parts=(slurm docker ssh)

running() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }
stop_pid() {   # stop_pid PIDFILE COMM: TERM, wait up to 15 s, then KILL; only if the PID is COMM
  local f=$1 comm=$2 pid i
  [ -s "$f" ] || return 0
  pid=$(tr -dc '0-9' <"$f")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && running "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
    echo "stop.sh: stopped $comm (pid $pid)" >&2
  fi
  rm -f "$f"
}

for p in "${parts[@]}"; do
  case "$p" in
    slurm)
      if [ -s "$DIR/pids/slurmctld.pid" ] && command -v scancel >/dev/null; then
        jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        if [ -n "${jobs// /}" ]; then
          # shellcheck disable=SC2086  # a list of numeric job ids
          scancel $jobs 2>/dev/null
          for ((i = 0; i < 100; i++)); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
        fi
      fi
      stop_pid "$DIR/pids/slurmd.pid" slurmd
      stop_pid "$DIR/pids/slurmctld.pid" slurmctld
      stop_pid "$DIR/pids/slurmdbd.pid" slurmdbd
      stop_pid "$DIR/pids/mariadbd.pid" mariadbd
      stop_pid "$DIR/pids/munged.pid" munged
      ;;
    docker)
      stop_pid "$DIR/pids/dockerd.pid" dockerd
      ;;
    ssh)
      for name in login jump password; do stop_pid "$DIR/pids/sshd-$name.pid" sshd; done
      ;;
  esac
done

if [ "$PURGE" = 1 ]; then
  for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf; do
    if [ -e "$f" ] && grep -qxF "$MARKER" "$f"; then
      rm -f "$f"; [ -e "$f.before-ptqv" ] && mv "$f.before-ptqv" "$f"
    fi
  done
  if grep -qF "$MARKER" /etc/hosts; then
    grep -vF "$MARKER" /etc/hosts >/etc/hosts.ptqv.tmp && cat /etc/hosts.ptqv.tmp >/etc/hosts
    rm -f /etc/hosts.ptqv.tmp
  fi
  case "$DIR" in /|/tmp|/var|/etc|/usr|"") echo "stop.sh: refusing to delete $DIR" >&2 ;; *) rm -rf "$DIR" ;; esac
fi
exit 0
