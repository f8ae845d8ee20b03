#!/usr/bin/env bash
# Installs rkube as a systemd service, as k3s' installer does: the binary in /usr/local/bin,
# the unit and its environment file in /etc/systemd/system, the uninstaller as
# /usr/local/bin/rkube-uninstall.sh; then enables and starts it.
#   scripts/install.sh            # a server (rkube.service)
#   RKUBE_URL=https://SERVER:6443 RKUBE_TOKEN=K10... scripts/install.sh agent   # rkube-agent.service
# The binary is target/release/rkube (built if missing) or $RKUBE_BINARY. Flags go in
# /etc/rkube/config.yaml, every flag a key.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
role=${1:-server}
case "$role" in
  server) unit=rkube ;;
  agent) unit=rkube-agent ;;
  *) echo "usage: $0 [server|agent]" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "$0: run as root" >&2; exit 1; }
if [ "$role" = agent ] && { [ -z "${RKUBE_URL:-}" ] || [ -z "${RKUBE_TOKEN:-}" ]; }; then
  echo "$0: an agent needs RKUBE_URL and RKUBE_TOKEN (rkube token create on the server)" >&2
  exit 1
fi

"$repo/scripts/install-deps.sh"
binary=${RKUBE_BINARY:-$repo/target/release/rkube}
if [ -z "${RKUBE_BINARY:-}" ] && [ ! -x "$binary" ]; then
  (cd "$repo" && cargo build --release -p rkube)
fi
install -m 0755 "$binary" /usr/local/bin/rkube
install -m 0755 "$repo/scripts/uninstall.sh" /usr/local/bin/rkube-uninstall.sh
install -m 0644 "$repo/contrib/systemd/$unit.service" "/etc/systemd/system/$unit.service"
env_file=/etc/systemd/system/$unit.service.env
if [ ! -e "$env_file" ]; then
  install -m 0600 "$repo/contrib/systemd/rkube.service.env" "$env_file"
fi
if [ "$role" = agent ]; then
  # The join details replace earlier ones; the file is the root's alone (it holds the token).
  sed -i '/^RKUBE_URL=/d; /^RKUBE_TOKEN=/d' "$env_file"
  printf 'RKUBE_URL=%s\nRKUBE_TOKEN=%s\n' "$RKUBE_URL" "$RKUBE_TOKEN" >>"$env_file"
fi
mkdir -p /etc/rkube
echo "installed /usr/local/bin/rkube ($(/usr/local/bin/rkube --version)) and $unit.service"
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now "$unit.service"
  echo "started: systemctl status $unit; journalctl -u $unit"
else
  echo "systemd is not running here: start it by hand with /usr/local/bin/rkube $role"
fi
