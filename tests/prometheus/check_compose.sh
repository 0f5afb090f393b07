#!/usr/bin/env bash
# Validates deploy/docker-compose.yml with `docker compose config` (or the
# standalone docker-compose). No Docker engine is needed. Exits 77 (skipped)
# when neither client is installed.
set -uo pipefail
file="$1"
if docker compose version >/dev/null 2>&1; then
  exec docker compose -f "$file" config -q
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose -f "$file" config -q
fi
echo "SKIP: neither 'docker compose' nor 'docker-compose' is installed"
exit 77
