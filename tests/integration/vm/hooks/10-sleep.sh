#!/usr/bin/env bash
# Test hook: sleeps far past any timeout the test gives it.
set -euo pipefail
echo "sleeping past the timeout"
sleep 3600
