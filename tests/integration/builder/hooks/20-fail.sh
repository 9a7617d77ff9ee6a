#!/usr/bin/env bash
# Test payload: a hook that fails, so the build must fail and keep the old golden.
set -euo pipefail
echo "about to fail on purpose"
exit 7
