#!/usr/bin/env bash
# Start the local Redis Cluster the tests use, where it is not running: three
# primaries on 127.0.0.1 (ports from MSS_TEST_REDIS_CLUSTER_PORTS, default
# "7101 7102 7103"), slots split evenly by `redis-cli --cluster create`,
# nothing saved to disk. Node files and logs: /var/tmp/mss-redis-cluster.
# A half-formed cluster (an earlier start that was cut short) is reset and
# formed again. Uses redis-server and redis-cli (Debian: redis-server).
set -euo pipefail

read -r -a ports <<<"${MSS_TEST_REDIS_CLUSTER_PORTS:-7101 7102 7103}"
dir=/var/tmp/mss-redis-cluster
cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }
healthy() {
  for p in "${ports[@]}"; do
    cli "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    cli "$p" cluster info 2>/dev/null | grep -q "^cluster_known_nodes:${#ports[@]}" || return 1
  done
}

if healthy; then exit 0; fi
echo "starting a Redis Cluster on 127.0.0.1 ports ${ports[*]}" >&2
mkdir -p "$dir"
for p in "${ports[@]}"; do
  if ! cli "$p" ping >/dev/null 2>&1; then
    rm -f "$dir/nodes-$p.conf"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" \
      --cluster-enabled yes --cluster-config-file "$dir/nodes-$p.conf" \
      --cluster-node-timeout 2000 --save "" --appendonly no \
      --dir "$dir" --logfile "$dir/redis-$p.log"
  fi
done
for p in "${ports[@]}"; do
  for _ in $(seq 50); do cli "$p" ping >/dev/null 2>&1 && break; sleep 0.2; done
  cli "$p" ping >/dev/null 2>&1 || { echo "Redis did not come up on 127.0.0.1:$p" >&2; exit 1; }
done
# Not healthy: form it from scratch (test data only).
for p in "${ports[@]}"; do
  cli "$p" flushall >/dev/null
  cli "$p" cluster reset hard >/dev/null
done
addrs=()
for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 150); do healthy && exit 0; sleep 0.2; done
echo "the Redis Cluster on ports ${ports[*]} did not become healthy" >&2
for p in "${ports[@]}"; do cli "$p" cluster info >&2 || true; done
exit 1
