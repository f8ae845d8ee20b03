#!/usr/bin/env bash
# Runs the README's two quick-start commands on a fresh Debian 12 (bookworm), as a new user
# would: a minimal root made by debootstrap, with nothing from this machine but the Rust
# toolchain (rustc's sysroot, read-only), the cargo registry cache, kubectl (Debian 12
# packages only kubectl 1.20, so a user gets it from upstream as this one came) and the
# network's resolv.conf and TLS roots. In a mount
# namespace of its own whose root is the new root (pivot_root, not a chroot), command 1 must
# bring up a node that turns Ready (then it is stopped and `rkube killall` cleans up) and
# command 2 must pass.
#
# What this does not cover: it shares this machine's kernel, network namespace and cgroup
# tree, so kernel modules and sysctls already set here are not tested, and nothing else must be
# using the node's network (another cluster, a CI run) while it runs. As root; about an hour
# (two cold builds). Logs: $RKUBE_FRESH_DIR/{command1,command2}.log.
#
# RKUBE_FRESH_AGAIN=1 runs command 2 again in the root the last run left (its repository
# brought up to this one's HEAD, its build warm), without command 1: for a fix to what
# command 2 found, once a full run has built both cold. Say so when quoting its result.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${RKUBE_FRESH_DIR:-/var/tmp/rkube-fresh}
base=$work/base
root=$work/root
mirror=http://deb.debian.org/debian

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'fresh-root-check: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, mounts and the node need it)"
command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap

# The README's two commands: the non-comment lines of the Quick start's sh block.
mapfile -t cmds < <(awk '/^## Quick start/{q=1} q&&/^```sh/{b=1;next} q&&b&&/^```/{exit} q&&b' \
  "$repo/README.md" | grep -v '^ *#' | grep -v '^ *$')
((${#cmds[@]} == 2)) || die "expected two commands in the README's Quick start, found ${#cmds[@]}"
log "command 1: ${cmds[0]}"
log "command 2: ${cmds[1]}"

# The debootstrap result is kept as a pristine base and copied for each run. ca-certificates
# is there because rustup's own installer needs it on any machine that has a toolchain.
mkdir -p "$work"
if [ ! -d "$base" ]; then
  log "debootstrap bookworm (minbase) into $base"
  rm -rf "$base.tmp"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$base.tmp" "$mirror"
  mv "$base.tmp" "$base"
fi
again=${RKUBE_FRESH_AGAIN:-0}
if [ "$again" = 1 ]; then
  [ -d "$root/root/rkube" ] || die "RKUBE_FRESH_AGAIN=1 needs the root of an earlier run in $root"
  git -C "$root/root/rkube" fetch -q "$repo" HEAD
  git -C "$root/root/rkube" checkout -q --detach FETCH_HEAD
  log "again in $root at $(git -C "$root/root/rkube" rev-parse --short HEAD): command 2 only"
else
rm -rf "$root"
cp -a "$base" "$root"
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This network's own TLS roots (a machine here trusts its egress proxy's CA; PyPI is reached
# through it), as its resolv.conf: part of the network, not of the machine's software.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
git clone -q "$repo" "$root/root/rkube"
fi

sysroot=$(rustc --print sysroot)
kubectl=$(command -v kubectl.1.33 || true)
[ -n "$kubectl" ] || kubectl=$(readlink -f "$(command -v kubectl)")
registry=${CARGO_HOME:-$HOME/.cargo}/registry
mkdir -p "$root/opt/rust" "$root/root/.cargo/registry" "$registry"
touch "$root/usr/local/bin/kubectl"

# Inside the root: command 1 in its own session (it serves until stopped), wait for a Ready
# node, stop it, clean the node, then command 2.
inner=$(cat <<'EOF'
set -uo pipefail
cd /root/rkube
export KUBECONFIG=/tmp/rkube/kubeconfig.yaml
if [ "$AGAIN" != 1 ]; then
  start=$SECONDS
  setsid bash -c "$CMD1" >/root/command1.log 2>&1 &
  pid=$!
  ready=0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS - start < 5400)); do
    if [ -f "$KUBECONFIG" ] && kubectl get nodes --no-headers 2>/dev/null | grep -q ' Ready '; then
      ready=1
      break
    fi
    sleep 2
  done
  if ((ready)); then
    echo "command 1: node Ready after $((SECONDS - start)) s"
    kubectl get nodes -o wide
    kubectl get --raw /readyz
    echo
    target/release/rkube --version
  fi
  kill -INT -- "-$pid" 2>/dev/null
  wait "$pid"
  target/release/rkube killall --data-dir /tmp/rkube >/dev/null 2>&1
  if ((!ready)); then
    echo "command 1 did not bring up a Ready node; the end of its log:"
    tail -40 /root/command1.log
    exit 1
  fi
fi
start=$SECONDS
bash -c "$CMD2" >/root/command2.log 2>&1
rc=$?
echo "command 2: exit $rc after $((SECONDS - start)) s"
grep '^test result' /root/command2.log | awk '{p+=$4; f+=$6; i+=$8} END {print NR " test binaries, " p " passed, " f " failed, " i " ignored"}'
((rc == 0)) || tail -60 /root/command2.log
exit $rc
EOF
)

# Inside a new mount namespace: the root's mounts, then the root becomes the namespace's own
# root (pivot_root), as on a machine. Not a chroot: runc makes "/" private (EINVAL on a plain
# directory), and in a chroot it falls back to chroot-ing containers, so an exec that joins
# one lands in the outer root.
enter=$(cat <<'EOF'
set -e
host_ns=$1 root=$2
# Everything below changes mounts: never in this machine's own mount namespace.
if [ "$(readlink /proc/self/ns/mnt)" = "$host_ns" ]; then
  echo "fresh-root-check: not in a new mount namespace; refusing to pivot" >&2
  exit 1
fi
mount --bind "$root" "$root"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
mount --bind "$3" "$root/opt/rust"
mount -o remount,bind,ro "$root/opt/rust"
mount --bind "$4" "$root/root/.cargo/registry"
mount --bind "$5" "$root/usr/local/bin/kubectl"
mkdir -p "$root/.oldroot"
cd "$root"
pivot_root . .oldroot
umount -l /.oldroot
cd /
exec /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
  PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  CARGO_HOME=/root/.cargo CMD1="$6" CMD2="$7" AGAIN="$9" bash -c "$8"
EOF
)

log "running both commands in the fresh root $root"
set +e
unshare --mount --propagation private bash -c "$enter" _ "$(readlink /proc/self/ns/mnt)" \
  "$root" "$sysroot" "$registry" "$kubectl" "${cmds[0]}" "${cmds[1]}" "$inner" "$again"
rc=$?
set -e
cp -f "$root/root/command1.log" "$root/root/command2.log" "$work/" 2>/dev/null || true
if ((rc == 0)); then
  log "fresh root: both README commands succeeded"
else
  log "fresh root: FAILED (exit $rc); logs in $work"
fi
exit $rc
