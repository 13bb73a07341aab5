#!/usr/bin/env bash
# Start the real services the tests of the selected backends use, where they
# are not running. memory and sqlite need none.
#   scripts/services.sh postgres redis redis-cluster
set -euo pipefail

start_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 0.2; done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1
}

start_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  echo "starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.2; done
  echo "Redis did not come up on 127.0.0.1:6379" >&2; exit 1
}

for service in "$@"; do
  case "$service" in
    memory|sqlite) ;;
    postgres) start_postgres ;;
    redis) start_redis ;;
    redis-cluster) "$(dirname "$0")/redis-cluster.sh" ;;
    dynamodb) "$(dirname "$0")/dynamodb.sh" ;;
    *) echo "unknown service: $service" >&2; exit 2 ;;
  esac
done
