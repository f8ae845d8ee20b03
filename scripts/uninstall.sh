#!/usr/bin/env bash
# Removes what scripts/install.sh installed, as k3s-uninstall.sh does: stops and disables the
# services, stops every pod and removes the node's network setup (`rkube killall`), then
# deletes the binary, units, configuration and data (/var/lib/rkube, /etc/rkube).
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "$0: run as root" >&2; exit 1; }
for unit in rkube rkube-agent; do
  if [ -d /run/systemd/system ] && [ -e "/etc/systemd/system/$unit.service" ]; then
    systemctl disable --now "$unit.service"
  fi
done
if [ -x /usr/local/bin/rkube ]; then
  # A server's node lives under <data-dir>/agent of the server's data dir.
  for dir in /var/lib/rkube/server /var/lib/rkube; do
    [ -d "$dir" ] && /usr/local/bin/rkube killall --data-dir "$dir"
  done
fi
rm -f /etc/systemd/system/rkube.service /etc/systemd/system/rkube.service.env \
  /etc/systemd/system/rkube-agent.service /etc/systemd/system/rkube-agent.service.env
[ -d /run/systemd/system ] && systemctl daemon-reload
# Never delete through a mount (a hostPath volume would take the host's files with it).
if awk '{print $2}' /proc/self/mounts | grep -q '^/var/lib/rkube'; then
  echo "$0: mounts remain under /var/lib/rkube (see /proc/self/mounts); not deleting it" >&2
  exit 1
fi
rm -rf /var/lib/rkube /etc/rkube
rm -f /usr/local/bin/rkube /usr/local/bin/rkube-uninstall.sh
echo "rkube removed"
