#!/usr/bin/env bash
# Installs dcmtk (for dcmdump, used by the synthetic cohort tests) when it is missing.
# Idempotent: does nothing when dcmdump is already on PATH. Runs `apt-get update` only when the
# first install attempt fails. Waits for another apt/dpkg process instead of fighting its lock.
set -euo pipefail

if command -v dcmdump >/dev/null 2>&1; then
    echo "setup-dicom-tools: dcmdump already installed ($(command -v dcmdump)); nothing to do"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

apt_install() {
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends dcmtk
}

echo "setup-dicom-tools: dcmdump missing, installing Debian package dcmtk"
if apt_install; then
    echo "setup-dicom-tools: installed dcmtk without updating package lists"
else
    echo "setup-dicom-tools: install failed, running apt-get update and retrying"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update
    apt_install
    echo "setup-dicom-tools: installed dcmtk after apt-get update"
fi
dcmdump --version | head -n 1
