#!/usr/bin/env bash
# Test hook: must never run, because an earlier hook failed.
set -euo pipefail
echo "30-never ran"
