#!/usr/bin/env bash
# Installs the Debian packages rkube needs to build and run a node (and, with --test, the ones
# its tests use), skipping what is already there. The README's first command runs it before
# `cargo run`; `.ci/run` runs it with --test. Debian 12 (bookworm) or newer, as root or with sudo.
set -euo pipefail

with_tests=0
case "${1:-}" in
  --test) with_tests=1 ;;
  "") ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
need=()
want() { installed "$1" || need+=("$1"); }

# Building: a C compiler and libc headers (rustc links with cc; mimalloc, SQLite and the
# kubelet's static pause program are C), protoc for the etcd and CRI gRPC stubs, and
# libprotobuf-dev for protoc's well-known imports (google/protobuf/*.proto) -- only a Recommends
# of protobuf-compiler, so an install with --no-install-recommends leaves it out.
want gcc
want libc6-dev
want protobuf-compiler
want libprotobuf-dev
# Running a node: containerd and runc, the CNI plugins (/usr/lib/cni), nftables and conntrack
# for kube-proxy, iproute2 for routes and devices; busybox-static is what `rkube image build
# --busybox` builds images from.
want containerd
want runc
want containernetworking-plugins
want nftables
want conntrack
want iproute2
want busybox-static
# fuse3: fusermount3, with which `rkube nfs-mount` (the kubelet's NFS client where the kernel
# has no NFS) mounts when not run as root; as root it opens /dev/fuse and mounts itself.
want fuse3
if ((with_tests)); then
  # etcd-server: the etcd backend's tests start a real etcd on loopback; etcd-client: its
  # etcdctl, with which `rkube server --cluster-reset-restore-path` restores a snapshot (the
  # etcd_snapshot test). docker-registry, skopeo and apache2-utils (htpasswd): the image-pull
  # tests' registry on loopback. curl: the services end-to-end test. python3-venv: the official Python client's tests. procps: the
  # tests stop servers with kill(1) (a minimal Debian root lacks it).
  want procps
  want etcd-server
  want etcd-client
  want docker-registry
  want skopeo
  want apache2-utils
  want curl
  want python3-venv
  # nfs-ganesha and its VFS backend nfs-ganesha-vfs (ganesha pulls in rpcbind): the NFS
  # tests' server, run in a network namespace of the test's own.
  want nfs-ganesha
  want nfs-ganesha-vfs
fi

if ((${#need[@]} == 0)); then
  exit 0
fi
echo "== installing ${need[*]}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
