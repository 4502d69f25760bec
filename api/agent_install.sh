#!/bin/sh
# The FleetPulse agent's installer, served by FleetPulse at /install.sh (docs/agent-install.md):
#
#   curl -fsSL https://FLEETPULSE/install.sh | sudo sh -s -- --key fpk_...
#
# It creates a virtual environment in /opt/fleetpulse-agent, installs the agent from this FleetPulse
# server's wheels (no other package index), writes /etc/fleetpulse/agent.toml, checks the key
# against the server, writes a hardened systemd unit that runs the agent as the unprivileged user
# fleetpulse-agent, starts it and says how to check it.
#
# Options:
#   --key KEY          the server's API key (required to install)
#   --url URL          FleetPulse's URL (default: the one that served this script)
#   --agent-url URL    the agent socket, if not beside the API (default: given by the server)
#   --python PATH      the Python to use (default: the newest python3.X >= 3.9 on PATH)
#   --root DIR         install everything under DIR, for tests and trials (implies --no-start)
#   --no-start         write the unit but neither enable nor start it
#   --no-user          do not create the fleetpulse-agent user (it must exist, or --root is given)
#   --uninstall        stop and remove the agent, its unit and its configuration
#   --purge            with --uninstall: also remove its spool and its user
set -eu

FLEETPULSE_URL=@@PUBLIC_URL@@
AGENT_URL=@@AGENT_URL@@
KEY=""
ROOT=""
PYTHON=""
START=1
MAKE_USER=1
ACTION=install
PURGE=0
AGENT_USER=fleetpulse-agent

say() { printf '%s\n' "fleetpulse: $*"; }
die() { printf '%s\n' "fleetpulse: error: $*" >&2; exit 1; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --key) need_value "$@"; KEY=$2; shift 2 ;;
    --key=*) KEY=${1#*=}; shift ;;
    --url) need_value "$@"; FLEETPULSE_URL=$2; shift 2 ;;
    --agent-url) need_value "$@"; AGENT_URL=$2; shift 2 ;;
    --python) need_value "$@"; PYTHON=$2; shift 2 ;;
    --root) need_value "$@"; ROOT=$2; START=0; shift 2 ;;
    --no-start) START=0; shift ;;
    --no-user) MAKE_USER=0; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,21p' "$0" 2>/dev/null || true; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

FLEETPULSE_URL=${FLEETPULSE_URL%/}
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
fi
PREFIX=$ROOT/opt/fleetpulse-agent
CONF_DIR=$ROOT/etc/fleetpulse
CONF=$CONF_DIR/agent.toml
STATE=$ROOT/var/lib/fleetpulse-agent
UNIT=$ROOT/etc/systemd/system/fleetpulse-agent.service

if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
  die "run as root (curl ... | sudo sh -s -- ...), or try it unprivileged with --root DIR"
fi

have_systemd() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

if [ "$ACTION" = uninstall ]; then
  if have_systemd; then
    systemctl disable --now fleetpulse-agent.service >/dev/null 2>&1 || true
  fi
  rm -f "$UNIT"
  have_systemd && systemctl daemon-reload || true
  rm -rf "$PREFIX"
  rm -f "$CONF" "$CONF.new"
  rmdir "$CONF_DIR" 2>/dev/null || true
  if [ "$PURGE" = 1 ]; then
    rm -rf "$STATE"
    if [ -z "$ROOT" ] && id "$AGENT_USER" >/dev/null 2>&1; then userdel "$AGENT_USER" || true; fi
    say "removed the agent, its configuration, its spool and its user"
  else
    say "removed the agent and its configuration (its spool stays in $STATE; --purge removes it)"
  fi
  exit 0
fi

[ -n "$KEY" ] || die "--key is required (the API key FleetPulse showed when you created it)"
case "$KEY" in *[!A-Za-z0-9_-]*) die "--key holds characters an API key never has" ;; esac

# A Python from 3.9 on, with its venv module (Debian and Ubuntu ship it as python3-venv): the
# system's first (the agent's user must be able to run it: not one inside a private home).
if [ -z "$PYTHON" ]; then
  for candidate in /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 /usr/bin/python3.10 \
    /usr/bin/python3.9 /usr/bin/python3 /usr/local/bin/python3 python3.13 python3.12 python3.11 \
    python3.10 python3.9 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
      PYTHON=$(command -v "$candidate"); break
    fi
  done
fi
[ -n "$PYTHON" ] || die "no Python 3.9 or newer found: install python3 (and python3-venv), or pass --python"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$PYTHON is older than 3.9"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$PYTHON has no venv module: install it (Debian/Ubuntu: apt-get install python3-venv)"
say "using $("$PYTHON" -c 'import sys; print("Python %d.%d.%d" % sys.version_info[:3])') ($PYTHON)"

# The agent and its dependencies, from this FleetPulse server only.
[ -x "$PREFIX/bin/python" ] || "$PYTHON" -m venv "$PREFIX"
set -- --disable-pip-version-check --no-input -q install --upgrade --no-index \
  --find-links "$FLEETPULSE_URL/agent/wheels/"
case "$FLEETPULSE_URL" in
  http://*)
    host=${FLEETPULSE_URL#http://}; host=${host%%/*}; host=${host%%:*}
    say "warning: $FLEETPULSE_URL is plain HTTP: use an https:// URL outside a trusted network"
    set -- "$@" --trusted-host "$host" ;;
esac
"$PREFIX/bin/python" -m pip "$@" fleetpulse-agent </dev/null \
  || die "installing the agent from $FLEETPULSE_URL/agent/wheels/ failed (is this a supported Python and CPU?)"
say "installed $("$PREFIX/bin/fleetpulse-agent" --version)"

# The unprivileged user the agent runs as (reading the journal, if asked to, needs its group).
if [ "$MAKE_USER" = 1 ] && [ -z "$ROOT" ] && ! id "$AGENT_USER" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /var/lib/fleetpulse-agent \
    --shell /usr/sbin/nologin "$AGENT_USER" 2>/dev/null \
    || useradd --system --no-create-home --home-dir /var/lib/fleetpulse-agent "$AGENT_USER"
  if getent group systemd-journal >/dev/null 2>&1; then usermod -a -G systemd-journal "$AGENT_USER"; fi
  say "created the system user $AGENT_USER"
fi

# Run a command as the agent's user (util-linux runuser, else su).
as_agent() {
  if command -v runuser >/dev/null 2>&1; then
    runuser -u "$AGENT_USER" -- "$@"
  else
    su -s /bin/sh "$AGENT_USER" -c "$(printf "'%s' " "$@")"
  fi
}
AS_AGENT=""
if [ -z "$ROOT" ] && id "$AGENT_USER" >/dev/null 2>&1; then
  AS_AGENT=as_agent
  as_agent "$PREFIX/bin/python" -c 'import fleetpulse_agent' >/dev/null 2>&1 \
    || die "the user $AGENT_USER cannot run $PYTHON (is it inside a private home folder?): pass --python with a system Python, e.g. --python /usr/bin/python3"
fi

# The configuration: kept if there is one (only the key and the URL are replaced), else written.
mkdir -p "$CONF_DIR" "$STATE"
umask 077
if [ -f "$CONF" ]; then
  grep -v -e '^api_key *=' -e '^server_url *=' "$CONF" >"$CONF.new" || true
  {
    printf 'server_url = "%s"\napi_key = "%s"\n' "$AGENT_URL" "$KEY"
    cat "$CONF.new"
  } >"$CONF"
  rm -f "$CONF.new"
  say "kept $CONF (its server_url and api_key replaced)"
else
  cat >"$CONF" <<EOF
# The FleetPulse agent's configuration, written by install.sh. Every setting is in
# docs/agent-install.md; restart the agent after a change (systemctl restart fleetpulse-agent).
server_url = "$AGENT_URL"
api_key = "$KEY"
state_dir = "$STATE"
interval_seconds = 5
top_processes = 10
# log_files = ["/var/log/syslog"]
# journal_units = ["ssh.service", "nginx.service"]
# Remote commands stay off unless you allow them here, on this server.
commands_enabled = false
command_allowlist = []
EOF
  say "wrote $CONF"
fi
if [ -z "$ROOT" ] && id "$AGENT_USER" >/dev/null 2>&1; then
  chown "root:$AGENT_USER" "$CONF" && chmod 0640 "$CONF"
  chown "$AGENT_USER:$AGENT_USER" "$STATE" && chmod 0700 "$STATE"
fi

# The key, checked against the server now rather than in the service's log later, as the agent's
# user (so its right to read the configuration is checked too).
set +e
$AS_AGENT "$PREFIX/bin/fleetpulse-agent" check --config "$CONF"
checked=$?
set -e
case $checked in
  0) ;;
  3) die "the server refused this API key: create a new one in FleetPulse and run this again" ;;
  2) die "the configuration $CONF is not usable (the message above names the setting)" ;;
  *) say "warning: the server did not answer the check; the agent will keep trying once started" ;;
esac

# The hardened unit: an unprivileged user, a read-only system, nothing but its spool writable.
mkdir -p "$(dirname "$UNIT")"
umask 022
cat >"$UNIT" <<EOF
# The FleetPulse agent, written by install.sh (docs/agent-install.md).
[Unit]
Description=FleetPulse agent: metrics and logs of this server
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=$AGENT_USER
Group=$AGENT_USER
ExecStart=$PREFIX/bin/fleetpulse-agent run --config $CONF
Restart=on-failure
RestartSec=5
# 2: the configuration is unusable; 3: the server refused the key; 4: a newer agent took over.
RestartPreventExitStatus=2 3 4
TimeoutStopSec=20
ReadWritePaths=$STATE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
UMask=0077

[Install]
WantedBy=multi-user.target
EOF
say "wrote $UNIT"

if [ "$START" = 1 ] && have_systemd; then
  systemctl daemon-reload
  systemctl enable --now fleetpulse-agent.service
  say "the agent is running; this server appears online in FleetPulse within seconds ($FLEETPULSE_URL)"
  say "check it:   systemctl status fleetpulse-agent   and   journalctl -u fleetpulse-agent -f"
elif [ "$START" = 1 ]; then
  say "systemd is not running here: start the agent yourself, as $AGENT_USER:"
  say "  $PREFIX/bin/fleetpulse-agent run --config $CONF"
else
  say "not started (--no-start or --root); start it with:"
  say "  $PREFIX/bin/fleetpulse-agent run --config $CONF"
fi
say "uninstall:  curl -fsSL $FLEETPULSE_URL/install.sh | sudo sh -s -- --uninstall"
