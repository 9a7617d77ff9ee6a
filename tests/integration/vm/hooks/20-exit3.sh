#!/usr/bin/env bash
# Test hook: prints a few lines, then fails with exit status 3.
set -euo pipefail
for i in 1 2 3; do
    echo "exit3 line $i"
done
echo "exit3 about to fail" >&2
exit 3
