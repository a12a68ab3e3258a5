#!/usr/bin/env bash
# Start a local TAP server for the query_cone tests: GAVO DaCHS from Debian,
# on PostgreSQL with pgSphere, serving the M67 file as gaiadr3.gaia_source.
# Usage: .ci/dachs/start.sh DATA.fits.gz   (prints the TAP URL on success)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="$1"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

$sudo apt-get update -qq >&2
# PostgreSQL first: gavodachs2-server's set-up needs a running database, and
# without an init system nothing starts it. Debian's pgSphere 1.1.1 cannot be
# loaded into PostgreSQL 15.20 from bookworm-security ("commutator operator
# @> is already the commutator of operator <@"); 15.18 from bookworm works,
# so a machine without PostgreSQL gets the newest release before 15.20.
if ! dpkg -s postgresql-15 >/dev/null 2>&1; then
    version="$(apt-cache madison postgresql-15 |
        awk '$3 ~ /^15\.([0-9]|1[0-9])-/ {print $3; exit}')"
    $sudo apt-get install -y -qq --no-install-recommends \
        "postgresql-15${version:+=$version}" \
        "postgresql-client-15${version:+=$version}" >&2
fi
# Keep that release while gavodachs2-server's dependencies are installed.
$sudo apt-mark hold postgresql-15 postgresql-client-15 >&2
cluster="$(pg_lsclusters --no-header | awk 'NR == 1 {print $1, $2}')"
# shellcheck disable=SC2086
$sudo pg_ctlcluster $cluster start >&2 || true
$sudo apt-get install -y -qq --no-install-recommends gavodachs2-server >&2

resdir=/var/gavo/inputs/gaiadr3
$sudo mkdir -p "$resdir/data"
$sudo cp "$here/q.rd" "$resdir/q.rd"
gzip -dc "$data" | $sudo tee "$resdir/data/m67.fits" >/dev/null
$sudo chown -R gavo:gavo "$resdir"
(cd "$resdir" && $sudo dachs imp q >&2)
$sudo dachs serve start >&2 || $sudo dachs serve restart >&2

url=http://localhost:8080/tap
for _ in $(seq 60); do
    if curl -fsS -m 5 "$url/availability" >/dev/null 2>&1; then
        echo "$url"
        exit 0
    fi
    sleep 1
done
echo "DaCHS did not answer at $url within 60 s" >&2
exit 1
