#!/usr/bin/env bash
# Test payload: leaves a file in the golden that the test finds on the sealed volume.
set -euo pipefail
install -d /etc/imagefactory
printf '{"test_marker": "%s"}\n' "${KLAB_DISTRO}" >/etc/imagefactory/golden.json
echo "marker written for ${KLAB_DISTRO} (${KLAB_LINEAGE})"
