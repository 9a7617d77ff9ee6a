#!/usr/bin/env bash
# Test hook: succeeds and says where it ran.
set -euo pipefail
echo "hello from $(hostname) as $(id -un), kernel $(uname -r)"
echo "greeting=${GREETING:-unset}"
