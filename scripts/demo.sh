#!/usr/bin/env bash
# Install dockyard and show the lifecycle on a throwaway state root, with the embedded defaults:
# build an image from a Dockerfile, push it to dockyard's own registry, pull it back, run it with a
# published port, and look at it (ps, logs, exec); deploy it as a replicated service on a
# single-node swarm and reach it through the load-balanced port; then clean everything up.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for p in busybox-static python3 python3-venv iptables iproute2 curl file; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[[ -x .venv/bin/python ]] || "${PYTHON:-python3}" -m venv .venv
# a current pip writes a `dockyard` script that does not import re (a few ms of every command)
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e . >/dev/null

export DOCKYARD_ROOT=${DOCKYARD_ROOT:-$(mktemp -d /tmp/dockyard-demo.XXXXXX)}
DY="$PWD/.venv/bin/dockyard"
step() { printf '\n\033[1m$ dockyard %s\033[0m\n' "$*"; "$DY" "$@"; }
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

REG_PORT=$(free_port)
WEB_PORT=$(free_port)
SVC_PORT=$(free_port)
REG="127.0.0.1:$REG_PORT"
CTX="$DOCKYARD_ROOT/demo-app"
REG_PID=""
cleanup() {
  "$DY" rm -f demo-web >/dev/null 2>&1 || true
  "$DY" swarm leave --force >/dev/null 2>&1 || true   # stops the manager, removes the services
  "$DY" network prune -f >/dev/null 2>&1 || true   # the default bridge stays up otherwise, like docker0
  [[ -n "$REG_PID" ]] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
}
trap cleanup EXIT

echo "state root: $DOCKYARD_ROOT"
step version

# -- build -----------------------------------------------------------------------------------------
step image busybox busybox:latest
mkdir -p "$CTX"
cat > "$CTX/Dockerfile" <<'DOCKERFILE'
FROM busybox
RUN mkdir -p /www && echo '<h1>hello from dockyard</h1>' > /www/index.html
COPY app.sh /app.sh
EXPOSE 80
CMD ["sh", "/app.sh"]
DOCKERFILE
printf 'echo "serving /www on :80"\nexec httpd -f -v -p 80 -h /www\n' > "$CTX/app.sh"
step build -t "$REG/demo/web:1" "$CTX"
step images

# -- ship ------------------------------------------------------------------------------------------
printf '\n\033[1m$ dockyard registry serve --addr %s --storage ...\033[0m  (in the background)\n' "$REG"
"$DY" registry serve --addr "$REG" --storage "$DOCKYARD_ROOT/registry" >"$DOCKYARD_ROOT/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
step push "$REG/demo/web:1"
step rmi "$REG/demo/web:1"
step pull "$REG/demo/web:1"
step image save -o "$DOCKYARD_ROOT/web.tar" "$REG/demo/web:1"
step image load -i "$DOCKYARD_ROOT/web.tar"

# -- run -------------------------------------------------------------------------------------------
step run -d --name demo-web -p "127.0.0.1:$WEB_PORT:80" "$REG/demo/web:1"
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$WEB_PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
printf '\n\033[1m$ curl http://127.0.0.1:%s/\033[0m\n' "$WEB_PORT"
curl -fsS "http://127.0.0.1:$WEB_PORT/"
step ps
step exec demo-web cat /etc/hostname
step logs demo-web
step run --rm busybox sh -c 'echo "pid 1 is: $(cat /proc/1/comm); hostname: $(hostname)"'
step rm -f demo-web
step system df

# -- deploy ----------------------------------------------------------------------------------------
step swarm init
step service create --name demo --replicas 2 -p "$SVC_PORT:80" "$REG/demo/web:1"
printf '\n\033[1m$ curl http://127.0.0.1:%s/\033[0m  (twice: two tasks behind one port)\n' "$SVC_PORT"
curl -fsS "http://127.0.0.1:$SVC_PORT/"
curl -fsS "http://127.0.0.1:$SVC_PORT/"
step service ls
step service ps demo
step service rm demo
step swarm leave --force
echo
echo "demo done (state root $DOCKYARD_ROOT; remove it with: rm -rf $DOCKYARD_ROOT)"
