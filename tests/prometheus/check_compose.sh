#!/usr/bin/env bash
# Validates deploy/docker-compose.yml, or it merged with an override such as
# deploy/docker-compose.tls.yml or docker-compose.scaleout.yml (check_compose.sh
# FILE [OVERRIDE...]), with `docker compose config` (or the standalone
# docker-compose). No Docker engine is needed. Exits 77 (skipped) when neither
# client is installed.
set -uo pipefail
files=()
for f in "$@"; do files+=(-f "$f"); done
if docker compose version >/dev/null 2>&1; then
  exec docker compose "${files[@]}" config -q
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose "${files[@]}" config -q
fi
echo "SKIP: neither 'docker compose' nor 'docker-compose' is installed"
exit 77
