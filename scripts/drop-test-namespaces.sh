#!/usr/bin/env bash
# Drop every test namespace (names starting with mss_t_) that a test run
# left on the servers named by MSS_TEST_BACKENDS: PostgreSQL schemas, Redis
# keys (on a single server and on the test cluster), DynamoDB tables. The Rust suites drop their own per test; the
# binding suites rely on this after their run. A server that does not answer
# is skipped.
set -uo pipefail
backends="${MSS_TEST_BACKENDS:-memory,sqlite}"
pg_url="${MSS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
redis_url="${MSS_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
cluster_url="${MSS_TEST_REDIS_CLUSTER_URL:-redis://127.0.0.1:7101}"
cluster_url="${cluster_url%%\?*}"
dynamo_endpoint="${MSS_TEST_DYNAMODB_ENDPOINT:-http://127.0.0.1:8000}"
dropped=0

if [[ ",$backends," == *,postgres,* ]]; then
  for schema in $(psql -Atq "$pg_url" -c "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'mss\_t\_%'" 2>/dev/null); do
    psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 && dropped=$((dropped + 1))
  done
fi

if [[ ",$backends," == *,redis,* ]]; then
  n=$(redis-cli -u "$redis_url" --scan --pattern '*mss_t_*' 2>/dev/null | xargs -r -n 500 redis-cli -u "$redis_url" DEL 2>/dev/null | awk '{s+=$1} END {print s+0}')
  dropped=$((dropped + ${n:-0}))
fi

if [[ ",$backends," == *,redis-cluster,* ]]; then
  # Every primary, key by key (a cluster refuses a DEL across slots).
  for node in $(redis-cli -u "$cluster_url" cluster nodes 2>/dev/null | awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "@"); print a[1]}'); do
    n=$(redis-cli -h "${node%:*}" -p "${node##*:}" --scan --pattern '*mss_t_*' 2>/dev/null | xargs -r -n 1 redis-cli -h "${node%:*}" -p "${node##*:}" UNLINK 2>/dev/null | awk '{s+=$1} END {print s+0}')
    dropped=$((dropped + ${n:-0}))
  done
fi

if [[ ",$backends," == *,dynamodb,* ]]; then
  n=$(MSS_ENDPOINT="$dynamo_endpoint" python3 - <<'PY' 2>/dev/null
import os, boto3
c = boto3.client("dynamodb", endpoint_url=os.environ["MSS_ENDPOINT"], region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
n = 0
for page in c.get_paginator("list_tables").paginate():
    for t in page["TableNames"]:
        if t.startswith("mss_t_"):
            c.delete_table(TableName=t)
            n += 1
print(n)
PY
)
  dropped=$((dropped + ${n:-0}))
fi
echo "dropped $dropped leftover test namespace objects"
