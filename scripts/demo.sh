#!/usr/bin/env bash
# Install dockyard and show what it does, on a throwaway state root:
# an offline busybox image, the image store (ls, inspect, save/load round trip), and — as those
# capabilities land — build, push to dockyard's own registry, run and deploy.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for p in busybox-static python3 python3-venv file; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[[ -x .venv/bin/python ]] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/pip install -q -e . >/dev/null

export DOCKYARD_ROOT=${DOCKYARD_ROOT:-$(mktemp -d /tmp/dockyard-demo.XXXXXX)}
DY=.venv/bin/dockyard
step() { printf '\n\033[1m$ dockyard %s\033[0m\n' "$*"; $DY "$@"; }

echo "state root: $DOCKYARD_ROOT"
step version
step image busybox busybox:latest
step images
step image inspect --format '{{.Id}} {{json .Config.Cmd}} {{.Os}}/{{.Architecture}}' busybox
step tag busybox demo/busybox:1.0
step image save -o "$DOCKYARD_ROOT/busybox.tar" demo/busybox:1.0
step rmi demo/busybox:1.0
step image load -i "$DOCKYARD_ROOT/busybox.tar"
step images --digests
[[ -f scripts/demo.d/run.sh ]] && source scripts/demo.d/run.sh
step system df
echo
echo "demo done (state root $DOCKYARD_ROOT; remove it with: rm -rf $DOCKYARD_ROOT)"
