#!/usr/bin/env bash
# Local services for FleetPulse, without Docker: a real Apache Kafka broker (KRaft, one combined
# broker+controller node, jars from Maven Central) and a real PostgreSQL 15 cluster with
# TimescaleDB (Apache-2 edition, built from Debian's source package).
#
#   infra/services.sh setup    install packages, build TimescaleDB, fetch Kafka jars, make the venv,
#                              build the dashboard (independent steps run side by side)
#   infra/services.sh web      build the dashboard alone (npm ci + vite build, both cached)
#   infra/services.sh start    start PostgreSQL and Kafka (idempotent), wait until both answer
#   infra/services.sh stop     stop both (SIGTERM, then SIGKILL after a grace period)
#   infra/services.sh status   say what runs where
#
# Every step is cached: a second `setup` on the same machine takes seconds. All state lives in one
# git-ignored folder, $FLEETPULSE_STATE_DIR (default: .state at the repository root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${FLEETPULSE_STATE_DIR:-$ROOT/.state}
# Defaults stay clear of a PostgreSQL (5432) or Kafka (9092/9093) the machine may already run.
PG_PORT=${FLEETPULSE_PG_PORT:-15432}
KAFKA_PORT=${FLEETPULSE_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${FLEETPULSE_KAFKA_CONTROLLER_PORT:-19093}
KAFKA_HEAP=${FLEETPULSE_KAFKA_HEAP:-1g}
PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
PG_DIR=$STATE/postgres
KAFKA_DIR=$STATE/kafka
KAFKA_LIB=$KAFKA_DIR/lib
VENV=${FLEETPULSE_VENV:-$ROOT/.venv}
WEB=$ROOT/web
NODE_MIN=20.19
PYTHON=${FLEETPULSE_PYTHON:-python3.11}
TSDB_MIN_VERSION=2.19

log() { printf '\033[1m[services]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user.
as_pg() {
  # From / : the caller's working directory may be one postgres cannot enter.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------------------------------- setup

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated = 0 ]; then log "apt-get update"; sudo_ apt-get update -q >/dev/null; apt_updated=1; fi
  log "installing Debian packages: ${missing[*]}"
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

setup_packages() {
  local browser=()
  # The browser tests drive Debian's Chromium (`make test` asks for it; `make run` does not).
  if [ "${FLEETPULSE_SETUP_BROWSER:-0}" = 1 ]; then browser=(chromium); fi
  apt_install postgresql-$PG_VERSION postgresql-server-dev-$PG_VERSION cmake gcc make libssl-dev \
    openjdk-17-jre-headless maven xz-utils ca-certificates "${browser[@]}"
  # Debian's postgresql-common creates a default cluster on 5432; ours has its own directory and
  # port, so the default one is left alone (and not started by us).
}

tsdb_installed_version() {
  local f
  f=$(ls "$("$PG_BIN/pg_config" --pkglibdir)"/timescaledb-[0-9]*.so 2>/dev/null | sort -V | tail -1) || true
  if [ -n "$f" ]; then basename "$f" .so | sed 's/^timescaledb-//'; fi
}

setup_timescaledb() {
  local have
  have=$(tsdb_installed_version)
  if [ -n "$have" ]; then log "TimescaleDB $have already installed"; return 0; fi
  log "building TimescaleDB (Apache-2 edition) from Debian's source package"
  # A deb-src entry of its own for trixie: binary packages still come from the machine's release.
  local src=/etc/apt/sources.list.d/fleetpulse-trixie-src.sources
  if [ ! -f "$src" ]; then
    sudo_ tee "$src" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  sudo_ apt-get update -q >/dev/null
  apt_updated=1
  local build=$STATE/build/timescaledb
  rm -rf "$build" && mkdir -p "$build"
  (cd "$build" && apt-get source --download-only -q -o APT::Sandbox::User=root timescaledb >/dev/null)
  local orig
  orig=$(ls "$build"/timescaledb_*.orig.tar.* | head -1)
  [ -n "$orig" ] || die "apt-get source gave no timescaledb orig tarball"
  log "unpacking $(basename "$orig")"
  tar -C "$build" -xf "$orig"
  local srcdir
  srcdir=$(find "$build" -mindepth 1 -maxdepth 1 -type d | head -1)
  (
    cd "$srcdir"
    log "configuring (cmake, APACHE_ONLY)"
    ./bootstrap -DCMAKE_BUILD_TYPE=Release -DPG_CONFIG="$PG_BIN/pg_config" -DAPACHE_ONLY=1 \
      -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
      -DWARNINGS_AS_ERRORS=OFF >"$build/configure.log" 2>&1 || { tail -30 "$build/configure.log"; die "cmake failed"; }
    cd build
    log "compiling (make -j$(nproc))"
    make -j"$(nproc)" >"$build/make.log" 2>&1 || { tail -30 "$build/make.log"; die "make failed"; }
    sudo_ make install >"$build/install.log" 2>&1 || { tail -30 "$build/install.log"; die "make install failed"; }
  )
  log "TimescaleDB $(tsdb_installed_version) installed"
}

setup_kafka() {
  local stamp=$KAFKA_LIB/.stamp want
  want=$(hash_of "$ROOT/infra/kafka/pom.xml")
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then log "Kafka jars up to date"; return 0; fi
  log "collecting the Kafka broker's jars from Maven Central (first time: a minute or two)"
  rm -rf "$KAFKA_LIB" && mkdir -p "$KAFKA_LIB"
  mvn -B -q -ntp -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIB"
  ls "$KAFKA_LIB"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar after the Maven step"
  echo "$want" >"$stamp"
  log "Kafka jars: $(ls "$KAFKA_LIB" | wc -l) files"
}

setup_venv() {
  local stamp=$VENV/.fleetpulse-stamp want
  want=$(hash_of "$ROOT/pyproject.toml" "$ROOT/agent/pyproject.toml" "$ROOT/constraints.txt")
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then log "Python environment up to date"; return 0; fi
  log "creating the Python environment in $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
  # The agent's own distribution (agent/), editable, after the server's: make run's agents, the
  # benchmarks and the tests import it as `fleetpulse_agent`.
  "$VENV/bin/pip" install -q --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT/agent[docker]"
  echo "$want" >"$stamp"
}

# The dashboard (web/): npm packages from the committed lockfile, then the Vite build. Each is
# skipped when its inputs did not change: node_modules carries the lockfile's hash, and the build
# stamp (in the state folder, one per checkout) the hash of the lockfile and every source file.
node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
  local have
  have=$(node -p 'process.versions.node' 2>/dev/null) || return 1
  [ "$(printf '%s\n%s\n' "$NODE_MIN" "$have" | sort -V | head -1)" = "$NODE_MIN" ]
}

web_sources_hash() {
  (cd "$WEB" && find package.json package-lock.json vite.config.ts tsconfig.json index.html src public \
    -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

setup_node() {
  node_ok || die "the dashboard needs Node.js $NODE_MIN or newer with npm (found: $(node --version 2>/dev/null || echo none))"
  local stamp=$WEB/node_modules/.fleetpulse-stamp want
  want=$(hash_of "$WEB/package-lock.json")
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then log "dashboard npm packages up to date"; return 0; fi
  log "installing the dashboard's npm packages (npm ci, from the lockfile)"
  mkdir -p "$STATE/logs"
  (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error) >"$STATE/logs/npm-ci.log" 2>&1 \
    || { tail -30 "$STATE/logs/npm-ci.log"; die "npm ci failed"; }
  echo "$want" >"$stamp"
}

build_web() {
  setup_node
  local want stamp
  want=$(web_sources_hash)
  stamp="$STATE/web/build-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12).stamp"
  if [ -f "$WEB/dist/index.html" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "dashboard build up to date"
    return 0
  fi
  log "building the dashboard (vite build)"
  mkdir -p "$STATE/web" "$STATE/logs"
  (cd "$WEB" && ./node_modules/.bin/vite build --logLevel warn) >"$STATE/logs/web-build.log" 2>&1 \
    || { tail -30 "$STATE/logs/web-build.log"; die "the dashboard's build failed"; }
  echo "$want" >"$stamp"
  log "dashboard built: $(du -sh "$WEB/dist" | cut -f1) in web/dist"
}

# Steps that need nothing from each other run side by side: the venv, the dashboard and (once
# Java and Maven are there) the Kafka jars, while apt installs packages and TimescaleDB compiles.
JOB_PIDS=()
JOB_NAMES=()
spawn() {
  local name=$1
  shift
  ("$@") &
  JOB_PIDS+=($!)
  JOB_NAMES+=("$name")
}

wait_jobs() {
  local failed=() i
  for i in "${!JOB_PIDS[@]}"; do
    wait "${JOB_PIDS[$i]}" || failed+=("${JOB_NAMES[$i]}")
  done
  JOB_PIDS=()
  JOB_NAMES=()
  [ ${#failed[@]} -eq 0 ] || die "set-up step(s) failed: ${failed[*]} (their messages are above)"
}

kill_jobs() {
  local pid
  for pid in "${JOB_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}

cmd_setup() {
  local t0=$SECONDS kafka_spawned=0
  mkdir -p "$STATE"
  trap kill_jobs EXIT
  spawn venv setup_venv
  spawn dashboard build_web
  if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
    spawn kafka setup_kafka
    kafka_spawned=1
  fi
  setup_packages
  [ $kafka_spawned = 1 ] || spawn kafka setup_kafka
  setup_timescaledb
  wait_jobs
  trap - EXIT
  log "setup done in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------------------- postgres

pg_running() { [ -f "$PG_DIR/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; }

# As root the cluster runs as `postgres`, which must reach the data directory. When the checkout
# sits below a folder it cannot enter (a 700 home directory, say), the cluster lives in postgres's
# home instead, in a folder named after this state folder, and the state folder links to it.
# Every path postgres is given is the resolved one (it cannot pass through the state folder).
PG_RESOLVED=0
resolve_pg_dir() {
  [ "$PG_RESOLVED" = 1 ] && return 0
  PG_RESOLVED=1
  local link=$STATE/postgres
  if [ -L "$link" ]; then PG_DIR=$(readlink -f "$link"); return 0; fi
  [ "$(id -u)" = 0 ] || return 0
  mkdir -p "$STATE"
  runuser -u postgres -- test -x "$STATE" && return 0
  local home target
  home=$(getent passwd postgres | cut -d: -f6)
  target="$home/fleetpulse-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)"
  log "postgres cannot enter $STATE: the cluster lives in $target"
  if [ -e "$link" ]; then
    # Only an empty leftover may be replaced by the link: never delete a cluster.
    rm -rf "$link/run" && rmdir "$link" 2>/dev/null || die "$link is in the way of the link to $target"
  fi
  mkdir -p "$target" && chown postgres: "$target"
  ln -s "$target" "$link"
  PG_DIR=$target
}

start_postgres() {
  [ -n "$(tsdb_installed_version)" ] || die "TimescaleDB is not installed: run '$0 setup' first"
  resolve_pg_dir
  mkdir -p "$PG_DIR/run"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$PG_DIR"; fi
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "initialising the PostgreSQL cluster in $PG_DIR/data"
    # Loopback-only development cluster: trust on 127.0.0.1 and the private socket directory.
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg tee -a "$PG_DIR/data/postgresql.conf" >/dev/null <<EOF

# FleetPulse's development cluster
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR/run'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 300
shared_buffers = 256MB
log_min_messages = warning
EOF
  fi
  if pg_running; then log "PostgreSQL already running on 127.0.0.1:$PG_PORT"; return 0; fi
  local t0=$SECONDS
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null \
    || { tail -20 "$PG_DIR/postgres.log"; die "PostgreSQL did not start"; }
  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qtAX -v ON_ERROR_STOP=1)
  # The application's role; the development cluster makes it superuser so migrations can create
  # the extension and the analyst role. Production provisions roles on its own.
  "${psql[@]}" -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='fleetpulse') THEN CREATE ROLE fleetpulse LOGIN SUPERUSER; END IF; END\$\$;"
  "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='fleetpulse'" | grep -q 1 \
    || "${psql[@]}" -c "CREATE DATABASE fleetpulse OWNER fleetpulse"
  log "PostgreSQL up on 127.0.0.1:$PG_PORT in $((SECONDS - t0)) s"
}

stop_postgres() {
  resolve_pg_dir
  if pg_running; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null && log "PostgreSQL stopped"
  else
    log "PostgreSQL not running"
  fi
}

# ---------------------------------------------------------------------------------------- kafka

kafka_pid() { [ -f "$KAFKA_DIR/broker.pid" ] && cat "$KAFKA_DIR/broker.pid"; }
kafka_running() { local p; p=$(kafka_pid) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

write_kafka_props() {
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Generated by infra/services.sh: single-node KRaft, combined broker + controller, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=12
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
log.retention.check.interval.ms=60000
EOF
}

start_kafka() {
  ls "$KAFKA_LIB"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no Kafka jars: run '$0 setup' first"
  if kafka_running; then log "Kafka already running on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  mkdir -p "$KAFKA_DIR/logs"
  write_kafka_props
  local cp="$KAFKA_LIB/*" log4j="-Dlog4j.configuration=file:$ROOT/infra/kafka/log4j.properties"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -Xmx256m -cp "$cp" "$log4j" kafka.tools.StorageTool random-uuid)
    java -Xmx256m "$log4j" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_DIR/server.properties" --ignore-formatted >/dev/null
    log "formatted Kafka storage (cluster $cluster_id)"
  fi
  local t0=$SECONDS
  : >"$KAFKA_DIR/broker.out"
  # Many topics x 12 partitions: the broker keeps a few descriptors per segment. Ask for 65536,
  # or for as many as the hard limit allows.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  nohup java -Xms256m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$KAFKA_DIR/logs" "$log4j" -cp "$cp" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/broker.out" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/broker.pid"
  local deadline=$((SECONDS + 120))
  until grep -q "Kafka Server started" "$KAFKA_DIR/broker.out"; do
    kafka_running || { tail -30 "$KAFKA_DIR/broker.out"; die "Kafka exited before it was ready"; }
    [ $SECONDS -lt $deadline ] || { tail -30 "$KAFKA_DIR/broker.out"; die "Kafka not ready after 120 s"; }
    sleep 0.2
  done
  # The log line is not proof that clients are served: ask for metadata like a client would.
  if [ -x "$VENV/bin/python" ]; then
    "$VENV/bin/python" -m ops.wait kafka --bootstrap "127.0.0.1:$KAFKA_PORT" --timeout 60
  fi
  log "Kafka up on 127.0.0.1:$KAFKA_PORT in $((SECONDS - t0)) s"
}

stop_kafka() {
  if ! kafka_running; then log "Kafka not running"; rm -f "$KAFKA_DIR/broker.pid"; return 0; fi
  local pid
  pid=$(kafka_pid)
  kill -TERM "$pid"
  # The broker's shutdown hook does a controlled shutdown; give it a grace period.
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; log "Kafka killed after 20 s"; else log "Kafka stopped"; fi
  rm -f "$KAFKA_DIR/broker.pid"
}

# ---------------------------------------------------------------------------------------- main

cmd_status() {
  resolve_pg_dir
  if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT (data $PG_DIR/data)"; else echo "postgres: stopped"; fi
  if kafka_running; then echo "kafka:    running on 127.0.0.1:$KAFKA_PORT (pid $(kafka_pid))"; else echo "kafka:    stopped"; fi
  echo "timescaledb: $(tsdb_installed_version || echo 'not installed')"
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0  # sourced: functions only

case "${1:-}" in
  setup) cmd_setup ;;
  web) mkdir -p "$STATE"; build_web ;;
  start) mkdir -p "$STATE"; start_postgres; start_kafka ;;
  stop) stop_kafka; stop_postgres ;;
  restart-postgres) stop_postgres; start_postgres ;;
  status) cmd_status ;;
  *) echo "usage: $0 setup|web|start|stop|status" >&2; exit 2 ;;
esac
