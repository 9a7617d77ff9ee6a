#!/usr/bin/env bash
# Test hook: succeeds after a little work.
set -euo pipefail
echo "second hook: $(nproc) cpus, $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB"
