#!/usr/bin/env bash
# Smoke test of the certgate image, run as an operator runs it (README "Docker"); .ci/run
# calls it after building the image. Containers use --network host, so every connection
# stays on 127.0.0.1; curl and openssl on the host are the clients, and a tiny origin runs
# on the host's loopback. It needs the ports 8443, 8444 and 8445 free (the image's
# defaults: its health check asks 127.0.0.1:8444). On a machine where something else holds
# them, CERTGATE_SMOKE_PORTS=TLS,ADMIN,PUBLIC moves certgate (--listen, --admin, --public,
# and CERTGATE_HEALTH_URL for the health check); the demo then gets those flags too.
#
# Usage: test/container/smoke.sh [IMAGE]     (IMAGE defaults to certgate; run from anywhere)
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:-certgate}
node=$PWD/node_modules/.bin/node # the project's Node 24: the test PKI and the origin
name=certgate-smoke-$$
volume=$name-data
tmp=$(mktemp -d)
origin_pid=
started=$SECONDS

cleanup() {
  docker rm -fv "$name-demo" "$name" >/dev/null 2>&1 || true
  docker volume rm "$volume" >/dev/null 2>&1 || true
  [ -z "$origin_pid" ] || kill "$origin_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # a timeout stops the script: clean up all the same
step() { printf 'container smoke [%3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() {
  echo "container smoke: FAIL: $*" >&2
  for c in "$name-demo" "$name"; do
    docker inspect "$c" >/dev/null 2>&1 && { echo "--- docker logs $c (last 30 lines)" >&2; docker logs "$c" 2>&1 | tail -n 30 >&2; }
  done
  exit 1
}
expect() { # expect WHAT HAYSTACK NEEDLE
  grep -qF -- "$3" <<<"$2" || fail "$1: expected \"$3\" in: $2"
}
# Waits until the container has logged "certgate listening" N times (N-th start), bounded.
wait_listening() {
  local c=$1 n=${2:-1}
  for _ in $(seq 1 180); do
    [ "$(docker logs "$c" 2>&1 | grep -c '"msg":"certgate listening"')" -ge "$n" ] && return 0
    [ "$(docker inspect -f '{{.State.Running}}' "$c")" = true ] || fail "$c exited: $(docker inspect -f '{{.State.ExitCode}}' "$c")"
    sleep 0.5
  done
  fail "$c: not listening after 90 s"
}

ports=${CERTGATE_SMOKE_PORTS:-8443,8444,8445}
IFS=, read -r tls_port admin_port public_port <<<"$ports"
moved=() move_env=()
if [ "$ports" != 8443,8444,8445 ]; then
  moved=(--listen "0.0.0.0:$tls_port" --admin "127.0.0.1:$admin_port" --public "127.0.0.1:$public_port")
  move_env=(-e "CERTGATE_HEALTH_URL=http://127.0.0.1:$admin_port/healthz")
fi
for port in "$tls_port" "$admin_port" "$public_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "port $port is in use on 127.0.0.1"; fi
done
docker image inspect "$image" >/dev/null || fail "no image $image (docker build -t $image .)"

# --- 1. The demo: no arguments, no bootstrap file (README "Docker": the demo) ---
step "demo: docker run $image (no --config)"
if [ ${#moved[@]} -eq 0 ]; then
  docker run -d --name "$name-demo" --network host "$image" >/dev/null
else
  docker run -d --name "$name-demo" --network host "${move_env[@]}" "$image" serve --data /data "${moved[@]}" >/dev/null
fi
wait_listening "$name-demo"
expect "demo banner" "$(docker logs "$name-demo" 2>&1)" "docker cp CONTAINER:/data/certs ."
(cd "$tmp" && docker cp "$name-demo:/data/certs" .)
out=$(cd "$tmp" && curl -sS --cacert certs/dev/server-ca.pem --cert certs/dev/client.pem --key certs/dev/client.key https://localhost:$tls_port/hello)
expect "demo, valid certificate" "$out" '"client-cert": ":'
docker rm -fv "$name-demo" >/dev/null
rm -rf "$tmp/certs"

# --- 2. A bootstrap file mounted read-only, a data volume, a read-only root filesystem, no
# capabilities (as compose.yaml runs it) ---
step "test PKI, origin and bootstrap file on the host"
mkdir -p "$tmp/etc"
"$node" src/cli.js certs dev --out "$tmp/etc/pki" >/dev/null
cat >"$tmp/origin.mjs" <<'EOF'
// The origin: names what it received; /slow answers after 3 s (a request in flight while the
// container stops). It prints its port, then one line per request it receives.
import http from "node:http";
const server = http.createServer((req, res) => {
  console.log(`request ${req.url}`);
  const answer = () => res.end(`origin answered ${req.method} ${req.url} client-cert=${req.headers["client-cert"] ? "yes" : "no"}\n`);
  if (req.url.startsWith("/slow")) setTimeout(answer, 3000);
  else answer();
});
server.listen(0, "127.0.0.1", () => console.log(`port ${server.address().port}`));
EOF
"$node" "$tmp/origin.mjs" >"$tmp/origin.log" &
origin_pid=$!
for _ in $(seq 1 50); do grep -q '^port ' "$tmp/origin.log" && break; sleep 0.1; done
origin_port=$(sed -n 's/^port //p' "$tmp/origin.log")
[ -n "$origin_port" ] || fail "the origin did not start"
cat >"$tmp/etc/certgate.yaml" <<EOF
certificates:
  - { id: localhost, cert_file: pki/server.pem, key_file: pki/server.key }
trust_bundles:
  - { id: clients, ca_file: pki/client-ca.pem }
hosts:
  - hostname: localhost
    mtls: { trust_bundle: clients, mode: enforced }
    forward_client_cert: { rfc9440: true }
routes:
  - { id: origin, hostname: localhost, path_prefix: /, origin: "http://127.0.0.1:$origin_port" }
default_certificate: localhost
EOF
# The container runs as uid 10001: the mounted files must be readable by it.
chmod 0755 "$tmp" "$tmp/etc" "$tmp/etc/pki" && chmod 0644 "$tmp"/etc/pki/* "$tmp/etc/certgate.yaml"

step "docker run --read-only -v etc:/etc/certgate:ro -v $volume:/data $image serve --config ..."
docker run -d --name "$name" --network host --read-only --cap-drop ALL --security-opt no-new-privileges --stop-timeout 45 \
  -v "$tmp/etc:/etc/certgate:ro" -v "$volume:/data" "${move_env[@]}" \
  "$image" serve --data /data --config /etc/certgate/certgate.yaml "${moved[@]}" >/dev/null
wait_listening "$name"
token=$(docker logs "$name" 2>&1 | grep -oE 'cgt_[A-Za-z0-9_-]{20,}' | head -n 1)
[ -n "$token" ] || fail "no generated admin token in docker logs"
expect "the image's OpenSSL configuration (one session ticket)" "$(docker logs "$name" 2>&1)" '"tls13_tickets_per_handshake":"1"'

cd "$tmp/etc"
step "valid certificate → the origin's answer"
out=$(curl -sS --cacert pki/server-ca.pem --cert pki/client.pem --key pki/client.key https://localhost:$tls_port/hello)
expect "valid certificate" "$out" "origin answered GET /hello client-cert=yes"

step "no certificate → TLS alert certificate_required (curl; openssl s_client sees the CA names asked for)"
# Every try must fail; one of up to five must report the alert. In TLS 1.3 the alert comes after
# curl's side of the handshake, and curl can lose the race with the close that follows it (exit
# 55: "Broken pipe" writing an HTTP/2 preface, which --http1.1 avoids; "getpeername() failed ...
# Transport endpoint is not connected", seen through docker-proxy).
for try in 1 2 3 4 5; do
  rc=0; out=$(curl -sS --http1.1 --cacert pki/server-ca.pem https://localhost:$tls_port/hello 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "no certificate: curl succeeded: $out"
  case "$out" in *"alert certificate required"*) break ;; esac
done
expect "no certificate (curl)" "$out" "alert certificate required"
out=$(openssl s_client -connect 127.0.0.1:$tls_port -servername localhost -CAfile pki/server-ca.pem </dev/null 2>&1 || true)
expect "no certificate (openssl)" "$out" "Acceptable client certificate CA names"
expect "no certificate (openssl)" "$out" "CN = certgate dev client CA"
expect "server certificate (openssl)" "$out" "Verify return code: 0 (ok)"

step "untrusted certificate → 403"
out=$(curl -sS --cacert pki/server-ca.pem --cert pki/untrusted.pem --key pki/untrusted.key -w ' status=%{http_code}' https://localhost:$tls_port/hello)
expect "untrusted certificate" "$out" "Client certificate error: untrusted."
expect "untrusted certificate" "$out" "status=403"
cd - >/dev/null

step "the health check turns healthy"
for _ in $(seq 1 60); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
  [ "$health" = healthy ] && break
  sleep 1
done
[ "$health" = healthy ] || fail "health: $health after 60 s"

step "every process runs as uid 10001; workers as outside; tini reaps orphans"
procs=$(docker top "$name" -o pid,uid,args | tail -n +2)
[ "$(wc -l <<<"$procs")" -ge 2 ] || fail "expected tini and certgate in docker top: $procs"
if awk '$2 != 10001 { bad = 1 } END { exit !bad }' <<<"$procs"; then fail "a process not run by uid 10001: $procs"; fi
expect "user" "$(docker exec "$name" id)" "uid=10001(certgate)"
expect "PID 1" "$(docker exec "$name" cat /proc/1/cmdline | tr '\0' ' ')" "tini -- node --openssl-config=/app/src/dataplane/tls/openssl.cnf --max-semi-space-size=16 /app/src/cli.js serve"
cpus=$(docker exec "$name" node -p 'require("node:os").availableParallelism()')
health_json=$(curl -sS http://127.0.0.1:$admin_port/healthz)
if [ "$cpus" -gt 1 ]; then
  [ "$(grep -o '"pid":' <<<"$health_json" | wc -l)" -eq "$cpus" ] || fail "expected $cpus workers in /healthz: $health_json"
fi
# An orphan of a `docker exec` is re-parented to PID 1; Node would leave it a zombie.
docker exec "$name" sh -c 'sleep 0.2 & exit 0'
sleep 1
zombies=$(docker exec "$name" sh -c 'for s in /proc/[0-9]*/stat; do cut -d" " -f2,3 "$s" 2>/dev/null; done' | grep -c ' Z$' || true)
[ "$zombies" -eq 0 ] || fail "$zombies zombie process(es) in the container"

step "an admin write through the admin API"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT http://127.0.0.1:$admin_port/v1/routes/written \
  -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d "{\"hostname\":\"localhost\",\"path_prefix\":\"/written\",\"origin\":\"http://127.0.0.1:$origin_port\"}")
[ "$code" = 201 ] || fail "PUT /v1/routes/written: $code"

step "docker stop with a request in flight: it finishes, the exit is clean"
: >"$tmp/slow.out"
(cd "$tmp/etc" && curl -sS --cacert pki/server-ca.pem --cert pki/client.pem --key pki/client.key -w ' status=%{http_code}' https://localhost:$tls_port/slow >"$tmp/slow.out" 2>&1) &
slow_pid=$!
for _ in $(seq 1 50); do grep -q '^request /slow' "$tmp/origin.log" && break; sleep 0.1; done
grep -q '^request /slow' "$tmp/origin.log" || fail "the slow request did not reach the origin"
t0=$(date +%s%N)
docker stop "$name" >/dev/null
stop_ms=$((($(date +%s%N) - t0) / 1000000))
wait "$slow_pid" || true
expect "request in flight during docker stop" "$(cat "$tmp/slow.out")" "origin answered GET /slow client-cert=yes"
expect "request in flight during docker stop" "$(cat "$tmp/slow.out")" "status=200"
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$exit_code" = 0 ] || fail "exit code $exit_code after docker stop (137: killed after the stop timeout)"
expect "shutdown log" "$(docker logs "$name" 2>&1)" '"msg":"shutting down","signal":"SIGTERM"'
step "stopped in ${stop_ms} ms (exit 0)"
files=$(docker run --rm -v "$volume:/data" --entrypoint ls "$image" -A /data)
expect "the volume" "$files" "certgate.db"
if grep -qx 'certgate.db-wal' <<<"$files"; then fail "certgate.db-wal left on the volume: the store was not checkpointed and closed"; fi

step "restart: the store on the volume holds the write (read back through the admin API)"
docker start "$name" >/dev/null
wait_listening "$name" 2
out=$(curl -sS http://127.0.0.1:$admin_port/v1/routes/written -H "Authorization: Bearer $token")
expect "route read back" "$out" '"path_prefix":"/written"'
out=$(curl -sS http://127.0.0.1:$admin_port/v1/config -H "Authorization: Bearer $token")
expect "config read back" "$out" '"id":"written"'
out=$(cd "$tmp/etc" && curl -sS --cacert pki/server-ca.pem --cert pki/client.pem --key pki/client.key https://localhost:$tls_port/written/x)
expect "after restart" "$out" "origin answered GET /written/x client-cert=yes"

step "the admin token: once in docker logs, never in the image"
seen=$(docker logs "$name" 2>&1 | grep -cF "$token" || true)
[ "$seen" -eq 1 ] || fail "the admin token appears $seen times in docker logs (expected once, when generated)"
[ -z "$(docker diff "$name")" ] || fail "the container wrote outside its volume: $(docker diff "$name")"
# (grep -c reads all of it: with -q, docker save would die of SIGPIPE and pipefail hide a match)
in_image=$(docker save "$image" | grep -caE 'cgt_[A-Za-z0-9_-]{43}' || true)
[ "$in_image" -eq 0 ] || fail "an admin token is in the image $image ($in_image matches in docker save)"

t0=$(date +%s%N)
docker stop "$name" >/dev/null
stop_ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(docker inspect -f '{{.State.ExitCode}}' "$name")" = 0 ] || fail "second docker stop: exit $(docker inspect -f '{{.State.ExitCode}}' "$name")"
step "idle docker stop in ${stop_ms} ms (exit 0)"
step "passed: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}') image $image"
