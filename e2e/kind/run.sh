#!/usr/bin/env bash
# End to end on a kind cluster; needs Docker and kind (the test suite never runs it: no Docker
# on the build machines, where e2e/controlplane covers the chart on a real control plane).
#
#   1. creates the kind cluster $CEX_KIND_CLUSTER (default cex-e2e) unless it exists;
#   2. builds the image from the Dockerfile and loads it into the cluster;
#   3. helm-installs charts/cex with the dev Kafka, PostgreSQL and Redis (devInfra);
#   4. applies examples/ and waits until every Market is Ready (its engine serves);
#   5. funds a user (`cex admin`, in the trading pod) and places an order through the trading
#      API, then waits until the engine has accepted it (status no longer PENDING).
#
# The cluster is kept for a look around; `kind delete cluster --name cex-e2e` removes it.
set -euo pipefail

log() { printf '[kind-e2e] %s\n' "$*" >&2; }
die() { printf '[kind-e2e] ERROR: %s\n' "$*" >&2; exit 1; }

missing=()
for tool in docker kind kubectl helm curl python3; do
  command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
done
if ((${#missing[@]})); then
  die "missing on PATH: ${missing[*]}. This run needs Docker and kind (e2e/kind/README.md); without them use the control-plane tests: .venv/bin/pytest e2e/controlplane"
fi
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer (docker info failed)"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${CEX_KIND_CLUSTER:-cex-e2e}"
NS="${CEX_KIND_NAMESPACE:-cex}"
RELEASE=cex # object names: cex-<component>
IMAGE="cex:e2e-$(git -C "${REPO_ROOT}" rev-parse --short HEAD 2>/dev/null || echo dev)"
PORT="${CEX_KIND_TRADING_PORT:-18180}"
k() { kubectl --context "kind-${CLUSTER}" -n "${NS}" "$@"; }

if kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
  log "cluster ${CLUSTER}: exists"
else
  log "cluster ${CLUSTER}: creating"
  kind create cluster --name "${CLUSTER}" --wait 180s
fi

log "image ${IMAGE}: building and loading into ${CLUSTER}"
docker build -t "${IMAGE}" "${REPO_ROOT}"
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

log "helm: installing charts/cex (devInfra) into ${NS}"
helm --kube-context "kind-${CLUSTER}" upgrade --install "${RELEASE}" "${REPO_ROOT}/charts/cex" \
  --namespace "${NS}" --create-namespace \
  --set image.repository="${IMAGE%%:*}" --set image.tag="${IMAGE#*:}" --set image.pullPolicy=Never \
  --set environment=dev --set devInfra.enabled=true --set components.trading.replicas=1 \
  --wait --wait-for-jobs --timeout 15m

log "markets: applying examples/ and waiting for Ready"
k apply -f "${REPO_ROOT}/examples/"
for market in $(k get markets -o name); do
  k wait --for=condition=Ready "${market}" --timeout=10m
done
k get markets

log "trading API: port-forward on 127.0.0.1:${PORT}"
k port-forward "svc/${RELEASE}-trading" "${PORT}:8080" >/dev/null 2>&1 &
forward=$!
trap 'kill "${forward}" 2>/dev/null || true' EXIT
api="http://127.0.0.1:${PORT}"
for _ in $(seq 60); do curl -fsS "${api}/readyz" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "${api}/readyz" >/dev/null || die "the trading API does not answer on ${api}"
curl -fsS -X POST "${api}/internal/v1/markets/refresh" >/dev/null

json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
email="kind-e2e-$(date +%s)@example.com"
user_id="$(k exec "deploy/${RELEASE}-trading" -- cex admin user create "${email}" | json '["user_id"]')"
k exec "deploy/${RELEASE}-trading" -- cex admin deposit "${email}" USDT 1000 --external-id "${email}" >/dev/null
log "user ${user_id} (${email}) funded with 1000 USDT; placing a BUY 0.001 BTCUSDT @ 20000"

order="$(curl -fsS -X POST "${api}/internal/v1/orders" -H 'Content-Type: application/json' -d "{
  \"user_id\": ${user_id}, \"symbol\": \"BTCUSDT\", \"side\": \"BUY\", \"type\": \"LIMIT\",
  \"timeInForce\": \"GTC\", \"quantity\": \"0.001\", \"price\": \"20000\",
  \"newClientOrderId\": \"kind-e2e-1\"}")"
order_id="$(json '["orderId"]' <<<"${order}")"

status=""
for _ in $(seq 120); do
  status="$(curl -fsS "${api}/internal/v1/orders/${order_id}?user_id=${user_id}&symbol=BTCUSDT" | json '["status"]')"
  [[ "${status}" != PENDING ]] && break
  sleep 1
done
[[ "${status}" == NEW ]] || die "order ${order_id} is ${status} after 120s, expected NEW (relay → engine → settlement)"
log "order ${order_id} is NEW: the relay published it, the engine booked it, settlement recorded it"
log "done; the cluster ${CLUSTER} stays up (kind delete cluster --name ${CLUSTER})"
