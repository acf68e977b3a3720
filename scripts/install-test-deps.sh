#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 machine (as root), from scratch:
# the peers we test against (runc, crun, skopeo, umoci, podman, docker, the CNCF registry),
# busybox-static for offline base images, and the Python packages. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(busybox-static runc crun skopeo umoci podman docker.io docker-registry iptables iproute2 jq curl tini
      python3 python3-venv python3-pip file time gcc libc6-dev libseccomp2)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[deps] apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# crun refuses cgroup "hybrid mode" while a controller sits on the cgroup2 mount: give each such
# controller its own v1 hierarchy (what /work/shared/anchors/setup.sh does on this machine).
if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || true); do
    mkdir -p "/sys/fs/cgroup/$c"
    mountpoint -q "/sys/fs/cgroup/$c" || mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || true
  done
fi

# podman: the hard RLIMIT_NOFILE is 20000 here and CAP_SYS_RESOURCE is absent, so its default
# ulimits cannot be applied; ask only for what may be set.
if [[ ! -f /etc/containers/containers.conf ]] || ! grep -q default_ulimits /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  HN=$(ulimit -Hn); [[ "$HN" == unlimited ]] && HN=1048576
  HU=$(ulimit -Hu); [[ "$HU" == unlimited ]] && HU=32768
  ((HU > 32768)) && HU=32768
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' "$HN" "$HN" "$HU" "$HU" >> /etc/containers/containers.conf
fi

# dockerd, for the side-by-side tests (docker build / save / push comparisons)
if ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null; then
  setsid nohup dockerd >/tmp/dockyard-ci-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 && echo "[deps] dockerd started" || echo "[deps] dockerd did not start (tests that need it will skip)"
fi

# Python: a virtualenv with dockyard and the test extras
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e '.[test]'
echo "[deps] ready"
