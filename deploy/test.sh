#!/usr/bin/env bash
# Offline checks of deploy/ (Docker and Kubernetes cannot run on the development machines):
# renders every Kubernetes overlay, validates it against the Kubernetes schemas and the project's
# rules, checks compose.yaml and the Dockerfile, runs the built service binaries with
# --print-config under the manifests' environment (when target/ has them), then runs the tests
# that prove the validator rejects broken fixtures. Creates .venv at the
# repository root and installs deploy/requirements.txt when missing. Exit status 0 only if all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=".venv/bin/python"
if [[ ! -x "${PYTHON}" ]]; then
    python3 -m venv .venv
fi
if ! "${PYTHON}" -c "import kubernetes_validate, yaml, jsonschema, importlib_resources" 2>/dev/null; then
    "${PYTHON}" -m pip install --quiet --disable-pip-version-check -r deploy/requirements.txt
fi
for script in deploy/dev-secrets.sh deploy/docker/migrate.sh deploy/test.sh; do
    bash -n "${script}"
done
echo "=== deploy: validate.py (all overlays, compose.yaml, Dockerfile)"
"${PYTHON}" deploy/validate.py
echo "=== deploy: tests (broken fixtures must be rejected)"
"${PYTHON}" - <<'PY'
import sys
import unittest

suite = unittest.defaultTestLoader.discover("deploy/tests", pattern="test_*.py")
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors)
skipped = len(result.skipped)
print(f"{result.testsRun - failed - skipped} passed, {failed} failed, {skipped} skipped")
sys.exit(0 if result.wasSuccessful() else 1)
PY
