#!/usr/bin/env bash
# Start the local DynamoDB-compatible server the dynamodb tests use: moto's
# server (`moto[server]` from PyPI), on 127.0.0.1:8000 unless
# MSS_DYNAMODB_PORT says otherwise.
#
# - Installs moto[server]==$MOTO_VERSION with pip when `moto_server` is
#   missing or another version.
# - Starts `moto_server -H 127.0.0.1 -p PORT` in the background when nothing
#   answers on the port, logging to /tmp/mss-moto-PORT.log (its pid in
#   /tmp/mss-moto-PORT.pid), and waits until it answers.
#
#   scripts/dynamodb.sh          # start (or reuse) the server
#   scripts/dynamodb.sh stop     # stop a server this script started
set -euo pipefail

MOTO_VERSION=5.2.5
PORT="${MSS_DYNAMODB_PORT:-8000}"
LOG="/tmp/mss-moto-${PORT}.log"
PIDFILE="/tmp/mss-moto-${PORT}.pid"

answers() {
  # moto answers any path; a connection refused means nothing listens.
  curl -s -o /dev/null -m 2 "http://127.0.0.1:${PORT}/" 2>/dev/null
}

if [ "${1:-}" = "stop" ]; then
  if [ -f "$PIDFILE" ]; then
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      # Busy past SIGTERM (a long request holds the interpreter): force it.
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    fi
    rm -f "$PIDFILE"
    echo "stopped moto_server (pid $pid)" >&2
  fi
  exit 0
fi

if answers; then
  exit 0
fi

installed_version() {
  python3 -m pip show moto 2>/dev/null | sed -n 's/^Version: //p'
}

if ! command -v moto_server >/dev/null 2>&1 || [ "$(installed_version)" != "$MOTO_VERSION" ]; then
  echo "installing moto[server]==${MOTO_VERSION} from PyPI" >&2
  python3 -m pip install --quiet "moto[server]==${MOTO_VERSION}" >&2
  hash -r
fi

echo "starting moto_server on 127.0.0.1:${PORT} (log: ${LOG})" >&2
# This is `moto_server -H 127.0.0.1 -p PORT` (moto.server.main) with two
# changes that make moto behave as DynamoDB does under concurrent requests:
#
# 1. A long interpreter switch interval. moto serves each request on a thread
#    of its own and takes no lock, so a condition check and the write it
#    guards could interleave with another request's. With a long switch
#    interval a thread yields the interpreter only at I/O, so each request's
#    work on the tables runs whole, as DynamoDB's single-item and
#    transactional writes do.
# 2. TransactWriteItems checks every condition first and cancels without
#    writing when one fails. moto's own version deep-copies the whole table
#    before each transaction to restore it on failure: that costs time in
#    proportion to the table, and restoring the copy would undo writes that
#    other requests made meanwhile. With (1) nothing runs in between, so the
#    copy is not needed once the conditions are known to hold.
nohup python3 -c '
import sys
sys.setswitchinterval(1000.0)

import moto.dynamodb.models as models
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import TransactionCanceledException

original = models.DynamoDBBackend.transact_write_items

class _NoCopy:
    @staticmethod
    def deepcopy(value):
        return value

def transact_write_items(self, transact_items):
    errors = []
    for item in transact_items:
        if len(item) != 1:
            return original(self, transact_items)
        op_type, op = next(iter(item.items()))
        if op_type not in ("ConditionCheck", "Put", "Delete", "Update"):
            return original(self, transact_items)
        table = self.get_table(op["TableName"])
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        current = self.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        if condition is not None and not get_filter_expression(
            condition,
            op.get("ExpressionAttributeNames"),
            op.get("ExpressionAttributeValues"),
        ).expr(current):
            errors.append(("ConditionalCheckFailed", "The conditional request failed", None))
        else:
            errors.append((None, None, None))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    saved = models.copy
    models.copy = _NoCopy
    try:
        return original(self, transact_items)
    finally:
        models.copy = saved

models.DynamoDBBackend.transact_write_items = transact_write_items

from moto.server import main
main(sys.argv[1:])
' -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 100); do
  if answers; then exit 0; fi
  sleep 0.2
done
echo "moto_server did not come up on 127.0.0.1:${PORT}; see ${LOG}" >&2
exit 1
