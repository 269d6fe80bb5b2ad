#!/usr/bin/env bash
# The README's main command (`make demo`): build, start a throwaway cluster and the
# bundled ThingSpace simulator, import the foreign schema, and run a few queries.
# KEEP=1 leaves the cluster and simulator running for exploration.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
"$repo/test/deps.sh"
make -s COPT=-Werror
make -s install >/dev/null

work=$(mktemp -d /tmp/thingspace_fdw_demo.XXXXXX)
if [ "${KEEP:-0}" != 1 ]; then
  trap '"$repo/test/cluster.sh" stop "$work"' EXIT
fi
"$repo/test/cluster.sh" start "$work"
# shellcheck disable=SC1091
. "$work/env"
psql_() { psql -X -v ON_ERROR_STOP=1 -q "$@"; }

psql_ <<SQL
CREATE EXTENSION thingspace_fdw;
CREATE SERVER thingspace FOREIGN DATA WRAPPER thingspace_fdw
  OPTIONS (base_url '$SIM_URL', account '0000123456-00002', callback_timeout '30s');
CREATE USER MAPPING FOR CURRENT_USER SERVER thingspace
  OPTIONS (client_id 'test-client', client_secret 'test-secret', username 'test-user', password 'test-pass');
CREATE SCHEMA ts;
IMPORT FOREIGN SCHEMA thingspace FROM SERVER thingspace INTO ts;
SQL

run() { echo; echo "-- $1"; shift; echo "$*"; psql_ -c "$*"; }

run "Billed usage per APN (an account with real-time rating)" \
  "SELECT segment_name, billed_amount, billed_usage, total_usage
     FROM ts.billed_usage_segments
    WHERE account_name = '0000123456-00002' AND billing_from = '2023-09-01'"
run "Per rating group (an account without real-time rating)" \
  "SELECT segment_kind, segment_name, sum(billed_amount) AS billed
     FROM ts.billed_usage_segments
    WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01'
    GROUP BY 1, 2"
run "Per country, current and delayed usage" \
  "SELECT segment_name, usage_type, country_code, charge_amount, billed_usage
     FROM ts.billed_usage_countries
    WHERE account_name = '0000123456-00001' AND billing_from = '2023-09-01'
    ORDER BY usage_type, country_code"
run "Line level: the top devices of a generated 5,000-device account" \
  "SELECT device_kind, device_id, total_billed_amount, total_usage
     FROM ts.billed_usage
    WHERE account_name = 'gen-apn-5000' AND billing_from = '2023-09-01' AND line_level
    ORDER BY total_billed_amount DESC, device_id LIMIT 5"
run "The request the last kind of query sends" \
  "EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM ts.billed_usage
    WHERE account_name = 'gen-apn-5000' AND billing_from = '2023-09-01' AND line_level"
run "What the callback spool holds" \
  "SELECT request_id, count(*) AS pages, sum(bytes) AS bytes FROM thingspace_callbacks() GROUP BY 1 ORDER BY 1"

if [ "${KEEP:-0}" = 1 ]; then
  echo
  echo "The cluster keeps running. Connect with:"
  echo "  . $work/env && psql"
  echo "Stop it with: test/cluster.sh stop $work"
fi
