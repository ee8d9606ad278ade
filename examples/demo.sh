#!/usr/bin/env bash
# The main job on the bundled example, Docker's two-nginx scenario: plan, apply,
# show, start a web server on port 80 in each namespace, fetch both pages
# through the published ports 8080 and 8081 on localhost, destroy.
# Run as root after `bash scripts/setup`. Only 127.0.0.1 and the example's own
# namespaces are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
nsnet=.venv/bin/nsnet
topology=examples/topology.yaml
servers=()
cleanup() {
    ((${#servers[@]})) && kill "${servers[@]}" 2>/dev/null
    wait  # until they have exited: a process keeps its namespace, and the veth, alive
    $nsnet destroy $topology
}
trap cleanup EXIT

$nsnet plan $topology
$nsnet apply $topology
$nsnet show $topology

for ns in web1 web2; do
    $nsnet exec $topology $ns -- python3 examples/webserver.py 80 "hello from $ns" &
    servers+=($!)
done
for ns in web1 web2; do  # wait until each server listens
    until $nsnet exec $topology $ns -- ss -Htln 'sport = :80' | grep -q .; do sleep 0.1; done
done

echo "--- curl from the host, like docker run -p 8080:80 / -p 8081:80"
echo -n "127.0.0.1:8080 -> "; curl -sS http://127.0.0.1:8080/
echo -n "127.0.0.1:8081 -> "; curl -sS http://127.0.0.1:8081/
echo -n "web2 -> 172.30.0.1:8080 (hairpin) -> "; $nsnet exec $topology web2 -- curl -sS http://172.30.0.1:8080/

echo "--- a second plan finds nothing to do"
$nsnet plan --detailed-exitcode $topology
