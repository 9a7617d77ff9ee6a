#!/usr/bin/env bash
# Test hook: which datasource cloud-init used, as ds-identify chose it and cloud-init says.
set -euo pipefail
chosen=$(sed -n 's/^datasource_list: *\[\(.*\)\]/\1/p' /run/cloud-init/cloud.cfg | tr -d ' ')
echo "ds-identify chose: $chosen"
python3 - <<'PY'
import json

with open("/run/cloud-init/status.json", encoding="utf-8") as f:
    print("cloud-init datasource:", json.load(f)["v1"]["datasource"])
PY
