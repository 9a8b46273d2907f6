#!/usr/bin/env bash
# Start loopback-only test infrastructure for `ptqv launch` tests (Debian 12, as root, no systemd).
#
#   start.sh [tools] [slurm] [docker] [ssh]     (no argument = all four; idempotent)
#
#   tools   shellcheck (the lint of rendered job scripts)
#   slurm   munged + slurmctld + slurmd on 127.0.0.1, one node with fake GPU GRES, no cgroups,
#           batch_sched_delay=0 (a job round trip takes ~1 s instead of waiting for a 3 s tick);
#           with PTQV_INFRA_SLURMDBD=1 also MariaDB (unix socket only) + slurmdbd on 127.0.0.1, so
#           sacct answers (without it sacct says "accounting storage is disabled"); switching
#           restarts slurmctld
#   docker  dockerd with --bridge=none --iptables=false, private data/exec roots, its own socket;
#           plus a locally built FROM-scratch image (bash-static + busybox-static), since no
#           registry is reachable
#
#   ssh     three sshd on 127.0.0.1 for the test user $PTQV_INFRA_SSH_USER (ptqvtest), each with its
#           own config, fresh host key and PID file: the login node (key-only, SFTP), a jump host
#           (ProxyJump) and one that only offers password auth (the client must refuse, not prompt);
#           a client key and a known_hosts file with the [127.0.0.1]:PORT entries
#
# Missing Debian packages are installed with apt-get (policy-rc.d keeps their postinst scripts from
# starting services with default configs). Daemons are stopped by stop.sh, by PID file.
#
# Settings (environment):  PTQV_INFRA_DIR (default /tmp/ptqv-infra), PTQV_INFRA_FAKE_GPUS (1),
#   PTQV_INFRA_CTLD_PORT (6817), PTQV_INFRA_SLURMD_PORT (6818), PTQV_INFRA_SKIP_APT (0),
#   PTQV_INFRA_SSH_PORT (2222; the jump host is +1, the password-only server +2), PTQV_INFRA_SSH_USER
# Output: $PTQV_INFRA_DIR/env with KEY=VALUE lines for the tests (PTQV_SLURM_PARTITION,
#   PTQV_DOCKER_HOST, PTQV_DOCKER_IMAGE, ...).
set -euo pipefail

DIR="${PTQV_INFRA_DIR:-/tmp/ptqv-infra}"
FAKE_GPUS="${PTQV_INFRA_FAKE_GPUS:-1}"
CTLD_PORT="${PTQV_INFRA_CTLD_PORT:-6817}"
SLURMD_PORT="${PTQV_INFRA_SLURMD_PORT:-6818}"
SKIP_APT="${PTQV_INFRA_SKIP_APT:-0}"
SSH_PORT="${PTQV_INFRA_SSH_PORT:-2222}"
WITH_DBD="${PTQV_INFRA_SLURMDBD:-0}"
DBD_PORT="${PTQV_INFRA_DBD_PORT:-6819}"
SSH_USER="${PTQV_INFRA_SSH_USER:-ptqvtest}"
MARKER="# written by ptq-validators scripts/test-infra/start.sh"
IMAGE=ptqv-test/busybox:1

say() { printf '[ptqv-infra] %s\n' "$*" >&2; }
die() { printf '[ptqv-infra] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
[[ "$SSH_USER" =~ ^[a-z][a-z0-9]*$ ]] || { echo "bad PTQV_INFRA_SSH_USER" >&2; exit 1; }
for n in "$FAKE_GPUS" "$CTLD_PORT" "$SLURMD_PORT" "$SSH_PORT"; do [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: $n"; done

# A PID is running when /proc has it and it is not a zombie: where PID 1 is not an init, exited
# daemons stay zombies for a while and `kill -0` would still call them alive.
running() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }
# ours PIDFILE COMM: the PID in PIDFILE runs and is the program COMM (guards against PID reuse)
ours() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(tr -dc '0-9' <"$1")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && running "$pid"
}
# wait_until SECONDS CMD...: poll CMD every 0.1 s
wait_until() {
  local end=$((EPOCHSECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ "$EPOCHSECONDS" -lt "$end" ] || return 1; sleep 0.1; done
}
env_set() {   # env_set KEY VALUE: replace KEY's line in $DIR/env
  touch "$DIR/env"
  grep -v "^$1=" "$DIR/env" >"$DIR/env.tmp" || true
  printf '%s=%s\n' "$1" "$2" >>"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"
}

apt_install() {   # apt_install PACKAGE...: install what is missing, never start services
  [ "$SKIP_APT" = 1 ] && die "missing packages ($*) and PTQV_INFRA_SKIP_APT=1"
  say "apt-get install $*"
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

mkdir -p "$DIR"/{pids,logs}
chmod 755 "$DIR"

# ------------------------------------------------------------------------------------ tools
start_tools() {
  command -v shellcheck >/dev/null || apt_install shellcheck
  say "shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
}

# ------------------------------------------------------------------------------------ slurm
start_slurm() {
  local b need=0
  for b in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/ss; do
    [ -x "$b" ] || need=1
  done
  [ "$need" = 1 ] && apt_install munge slurmctld slurmd slurm-client iproute2
  if [ "$WITH_DBD" = 1 ] && { [ ! -x /usr/sbin/slurmdbd ] || [ ! -x /usr/sbin/mariadbd ]; }; then
    apt_install slurmdbd mariadb-server
  fi

  mkdir -p "$DIR"/slurm/{ctld,spool} "$DIR/dev"
  chown slurm:slurm "$DIR/slurm/ctld" "$DIR/logs"   # slurmctld runs as SlurmUser=slurm

  # munge: Debian's postinst made the key; no init system made the runtime directory
  install -d -m 755 -o munge -g munge /run/munge
  chmod 400 /etc/munge/munge.key
  munge_ok() { munge -n </dev/null | unmunge >/dev/null; }
  if ! munge_ok 2>/dev/null; then
    local force=()
    [ -S /run/munge/munge.socket.2 ] && force=(--force)   # stale socket left by a killed munged
    runuser -u munge -- /usr/sbin/munged "${force[@]}" </dev/null >>"$DIR/logs/munged.out" 2>&1
    wait_until 10 munge_ok || die "munged did not start (see /var/log/munge/munged.log)"
    cp /run/munge/munged.pid "$DIR/pids/munged.pid"   # stop.sh stops munged only when we started it
    say "munged started"
  fi

  # slurmctld binds to what the short hostname resolves to: it must resolve, to loopback
  local node ip
  node=$(hostname -s)
  ip=$(getent ahostsv4 "$node" | awk 'NR == 1 {print $1}' || true)
  if [ -z "$ip" ]; then
    printf '127.0.0.1 %s %s\n' "$node" "$MARKER" >>/etc/hosts
  elif [[ "$ip" != 127.* ]]; then
    die "hostname $node resolves to $ip, not a loopback address; slurmctld would listen there"
  fi

  # the node line must not claim more than the machine has, or the node drains
  local hw mem gres="" gres_types="" i dev
  hw=$(/usr/sbin/slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  hw=${hw/RealMemory=$mem/RealMemory=$((mem * 90 / 100))}
  local gres_conf="$MARKER"$'\nAutoDetect=off\n'
  if [ "$FAKE_GPUS" -gt 0 ]; then
    gres="Gres=gpu:$FAKE_GPUS"; gres_types="GresTypes=gpu"
    # one distinct character device per fake GPU (clones of /dev/null): slurmd rejects duplicate
    # or regular files; nothing opens them because TaskPlugin=task/none
    for ((i = 0; i < FAKE_GPUS; i++)); do
      dev="$DIR/dev/fakegpu$i"
      [ -c "$dev" ] || { rm -f "$dev"; mknod -m 666 "$dev" c 1 3; }
      gres_conf+="NodeName=$node Name=gpu File=$dev"$'\n'
    done
  fi
  local conf acct_lines="JobAcctGatherType=jobacct_gather/none"$'\n'"AccountingStorageType=accounting_storage/none"
  if [ "$WITH_DBD" = 1 ]; then
    acct_lines="JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT"
  fi
  conf=$(cat <<CONF
$MARKER
ClusterName=ptqvtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=$DIR/slurm/ctld
SlurmdSpoolDir=$DIR/slurm/spool
SlurmctldPidFile=$DIR/pids/slurmctld.pid
SlurmdPidFile=$DIR/pids/slurmd.pid
SlurmctldLogFile=$DIR/logs/slurmctld.log
SlurmdLogFile=$DIR/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$acct_lines
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
$gres_types
NodeName=$node NodeAddr=127.0.0.1 $hw $gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
)
  mkdir -p /etc/slurm
  local f changed=0
  for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do   # keep a foreign config once
    if [ -e "$f" ] && ! grep -qxF "$MARKER" "$f" && [ ! -e "$f.before-ptqv" ]; then cp -p "$f" "$f.before-ptqv"; fi
  done
  if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
    printf '%s\n' "$conf" >/etc/slurm/slurm.conf; changed=1
  fi
  if [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" != "${gres_conf%$'\n'}" ]; then
    printf '%s' "$gres_conf" >/etc/slurm/gres.conf; changed=1
  fi
  if [ "$changed" = 1 ] && { ours "$DIR/pids/slurmctld.pid" slurmctld || ours "$DIR/pids/slurmd.pid" slurmd; }; then
    say "slurm config changed: restarting"
    bash "$(dirname "$0")/stop.sh" slurm
    start_slurm   # again from the top: stop.sh also stopped munged (the config is current now)
    return
  fi

  [ "$WITH_DBD" = 1 ] && start_slurmdbd "$node"
  if ! ours "$DIR/pids/slurmctld.pid" slurmctld; then
    /usr/sbin/slurmctld </dev/null >>"$DIR/logs/slurmctld.out" 2>&1 || die "slurmctld failed (see $DIR/logs/slurmctld.log)"
  fi
  wait_until 20 bash -c 'scontrol ping | grep -q "is UP"' || die "slurmctld not answering (see $DIR/logs/slurmctld.log)"
  if ! ours "$DIR/pids/slurmd.pid" slurmd; then
    /usr/sbin/slurmd -N "$node" </dev/null >>"$DIR/logs/slurmd.out" 2>&1 || die "slurmd failed (see $DIR/logs/slurmd.log)"
  fi
  node_ready() { sinfo -h -N -n "$node" -o %t | grep -qE '^(idle|mix|alloc)'; }
  if ! wait_until 20 node_ready; then   # a node left DOWN by an unclean stop: resume it once
    scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
    wait_until 10 node_ready || die "node $node is not idle (see $DIR/logs/slurmd.log)"
  fi
  env_set PTQV_SLURM_PARTITION debug
  env_set PTQV_SLURM_FAKE_GPUS "$FAKE_GPUS"
  env_set PTQV_SLURM_SACCT "$WITH_DBD"
  say "slurm up: node $node, partition debug, $FAKE_GPUS fake GPU(s)"
}

# start_slurmdbd NODE: MariaDB without networking, slurmdbd on 127.0.0.1:$DBD_PORT
start_slurmdbd() {
  local node=$1 dbd
  install -d -m 755 -o mysql -g mysql /run/mysqld "$DIR/mysql"
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$DIR/logs/mariadb-install.log" 2>&1
  db_ok() { mariadb -e 'select 1'; }
  if ! { ours "$DIR/pids/mariadbd.pid" mariadbd && db_ok >/dev/null 2>&1; }; then
    setsid runuser -u mysql -- /usr/sbin/mariadbd --skip-networking --socket=/run/mysqld/mysqld.sock \
      --datadir=/var/lib/mysql --pid-file="$DIR/mysql/mariadbd.pid" --log-error="$DIR/logs/mariadbd.err" \
      </dev/null >/dev/null 2>&1 &
    wait_until 30 db_ok || die "mariadbd did not start (see $DIR/logs/mariadbd.err)"
    cp "$DIR/mysql/mariadbd.pid" "$DIR/pids/mariadbd.pid"
  fi
  # the OS user slurm is the DB user slurm through the socket: no password anywhere
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  dbd="$MARKER
AuthType=auth/munge
DbdHost=$node
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
CommunicationParameters=NoInAddrAny
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
PidFile=$DIR/pids/slurmdbd.pid
LogFile=$DIR/logs/slurmdbd.log"
  if [ "$(cat /etc/slurm/slurmdbd.conf 2>/dev/null)" != "$dbd" ]; then
    printf '%s\n' "$dbd" >/etc/slurm/slurmdbd.conf
  fi
  chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf   # slurmdbd insists
  if ! ours "$DIR/pids/slurmdbd.pid" slurmdbd; then
    /usr/sbin/slurmdbd </dev/null >>"$DIR/logs/slurmdbd.out" 2>&1 || die "slurmdbd failed (see $DIR/logs/slurmdbd.log)"
    dbd_up() { ss -Hltn "sport = :$DBD_PORT" | grep -q .; }
    wait_until 20 dbd_up || die "slurmdbd not listening (see $DIR/logs/slurmdbd.log)"
  fi
}

# ------------------------------------------------------------------------------------ docker
start_docker() {
  if [ ! -x /usr/sbin/dockerd ] || [ ! -x /bin/busybox ] || [ ! -x /bin/bash-static ]; then
    apt_install docker.io busybox-static bash-static
  fi
  command -v docker >/dev/null || die "no docker client"
  local root="$DIR/docker" sock="$DIR/docker/docker.sock"
  mkdir -p "$root"
  export DOCKER_HOST="unix://$sock"
  if ! ours "$DIR/pids/dockerd.pid" dockerd; then
    # no bridge, no iptables: nothing touches the host network; containers use --network=none
    setsid /usr/sbin/dockerd --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
      --ip-masq=false --host="$DOCKER_HOST" --data-root="$root/data" --exec-root="$root/exec" \
      --pidfile="$DIR/pids/dockerd.pid" </dev/null >>"$DIR/logs/dockerd.log" 2>&1 &
  fi
  wait_until 30 docker info || die "dockerd did not answer (see $DIR/logs/dockerd.log)"
  if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    local ctx="$root/image"
    rm -rf "$ctx"; mkdir -p "$ctx/bin"
    cp /bin/busybox "$ctx/bin/busybox"
    cp /bin/bash-static "$ctx/bin/bash"
    printf 'FROM scratch\nCOPY bin /bin\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n' >"$ctx/Dockerfile"
    docker build -q -t "$IMAGE" "$ctx" >/dev/null || die "docker build of $IMAGE failed"
  fi
  env_set PTQV_DOCKER_HOST "$DOCKER_HOST"
  env_set PTQV_DOCKER_IMAGE "$IMAGE"
  say "docker up: $DOCKER_HOST, image $IMAGE"
}

# ------------------------------------------------------------------------------------ ssh
# start_one_sshd NAME PORT AUTH-LINES: sshd NAME on 127.0.0.1:PORT with its own host key
start_one_sshd() {
  local name=$1 port=$2 auth=$3 dir="$DIR/ssh" conf
  # sftp-server run through the user's shell, logging `close "PATH" bytes read N` per file: the
  # remote gate tests check the bytes read against the server's own count
  local sftp="Subsystem sftp /usr/lib/openssh/sftp-server -e -l INFO 2>>$DIR/logs/sftp-$name.log"
  [ -e "$DIR/logs/sftp-$name.log" ] || install -m 644 -o "$SSH_USER" /dev/null "$DIR/logs/sftp-$name.log"
  [ -s "$dir/host_$name" ] || ssh-keygen -q -t ed25519 -N '' -C "ptqv-$name" -f "$dir/host_$name"
  conf="$MARKER
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_$name
PidFile $DIR/pids/sshd-$name.pid
AllowUsers $SSH_USER
PermitRootLogin no
UsePAM no
StrictModes yes
X11Forwarding no
PrintMotd no
MaxStartups 50:30:100
MaxSessions 50
LogLevel VERBOSE
$sftp
$auth"
  if [ "$(cat "$dir/sshd_$name.conf" 2>/dev/null)" != "$conf" ]; then
    printf '%s\n' "$conf" >"$dir/sshd_$name.conf"
    ours "$DIR/pids/sshd-$name.pid" sshd && kill -HUP "$(cat "$DIR/pids/sshd-$name.pid")"
  fi
  if ! ours "$DIR/pids/sshd-$name.pid" sshd; then
    ss -Hltn "sport = :$port" | grep -q . && die "port $port is in use"
    /usr/sbin/sshd -t -f "$dir/sshd_$name.conf" || die "sshd config $name is invalid"
    /usr/sbin/sshd -f "$dir/sshd_$name.conf" -E "$DIR/logs/sshd-$name.log" </dev/null >/dev/null 2>&1
  fi
  banner() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && head -c 4 <&3" | grep -q '^SSH-'; }
  wait_until 10 banner || die "sshd $name not answering on 127.0.0.1:$port (see $DIR/logs/sshd-$name.log)"
  printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_$name.pub")" >>"$dir/known_hosts.tmp"
}

start_ssh() {
  [ -x /usr/sbin/sshd ] || apt_install openssh-server
  local dir="$DIR/ssh" home
  mkdir -p "$dir" && chmod 700 "$dir"
  install -d -m 755 /run/sshd   # privilege separation dir, normally made by the init system
  id "$SSH_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$SSH_USER"
  usermod -p '*' "$SSH_USER"    # '!' (locked) makes sshd without PAM refuse even keys
  home=$(getent passwd "$SSH_USER" | cut -d: -f6)
  [ -s "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "ptqv-client" -f "$dir/id_ed25519"
  install -d -m 700 -o "$SSH_USER" -g "$SSH_USER" "$home/.ssh"
  install -m 600 -o "$SSH_USER" -g "$SSH_USER" "$dir/id_ed25519.pub" "$home/.ssh/authorized_keys"
  rm -f "$dir/known_hosts.tmp"
  local keys=$'PubkeyAuthentication yes\nAuthorizedKeysFile .ssh/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no'
  start_one_sshd login "$SSH_PORT" "$keys"$'\nAllowTcpForwarding no'
  start_one_sshd jump $((SSH_PORT + 1)) "$keys"$'\nAllowTcpForwarding yes'
  start_one_sshd password $((SSH_PORT + 2)) $'PubkeyAuthentication no\nPasswordAuthentication yes\nKbdInteractiveAuthentication yes'
  mv "$dir/known_hosts.tmp" "$dir/known_hosts"
  env_set PTQV_SSH_HOST 127.0.0.1
  env_set PTQV_SSH_PORT "$SSH_PORT"
  env_set PTQV_SSH_JUMP_PORT $((SSH_PORT + 1))
  env_set PTQV_SSH_PASSWORD_PORT $((SSH_PORT + 2))
  env_set PTQV_SSH_USER "$SSH_USER"
  env_set PTQV_SSH_HOME "$home"
  env_set PTQV_SSH_KEY "$dir/id_ed25519"
  env_set PTQV_SSH_KNOWN_HOSTS "$dir/known_hosts"
  say "ssh up: 127.0.0.1:$SSH_PORT (login), $((SSH_PORT + 1)) (jump), $((SSH_PORT + 2)) (password only), user $SSH_USER"
}

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tools slurm docker ssh)
for p in "${parts[@]}"; do
  case "$p" in
    tools) start_tools ;;
    slurm) start_slurm ;;
    docker) start_docker ;;
    ssh) start_ssh ;;
    *) die "unknown part '$p' (tools, slurm, docker, ssh)" ;;
  esac
done
