#!/usr/bin/env bash
# The main job on the bundled example: plan, apply, show, prove connectivity, destroy.
# Run as root after `bash scripts/setup`. Only the example's own namespaces are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
nsnet=.venv/bin/nsnet
topology=examples/topology.yaml
trap '$nsnet destroy $topology' EXIT

$nsnet plan $topology
$nsnet apply $topology
$nsnet show $topology

echo "--- connectivity: web2 -> web1 (172.30.0.10:80), host -> web1"
ip netns exec web1 python3 examples/webserver.py 80 "hello from web1" &
server=$!
trap 'kill $server 2>/dev/null; $nsnet destroy $topology' EXIT
for _ in $(seq 50); do ip netns exec web1 ss -Htln 'sport = :80' | grep -q . && break; sleep 0.1; done
echo -n "web2 -> web1: "; ip netns exec web2 curl -sS http://172.30.0.10/
echo -n "host -> web1: "; curl -sS http://172.30.0.10/

echo "--- a second plan finds nothing to do"
$nsnet plan --detailed-exitcode $topology
