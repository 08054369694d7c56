#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that tfesi-inference loads (ort feature load-dynamic).
#
# ort's own download server is unreachable here, so the library comes from the PyPI wheel
# onnxruntime==1.31.1 (onnxruntime/capi/libonnxruntime.so.1.31.1; needs only glibc and libstdc++).
# Idempotent: a second run verifies the installed file against its recorded sha256 and exits.
# Prints the library's path on stdout (and nothing else), so callers can do
#   export ORT_DYLIB_PATH="$(scripts/setup-onnxruntime.sh)"
#
# Environment:
#   TFESI_CACHE_DIR   cache root (default: $HOME/.cache/tfesi)
#   PYTHON            python interpreter with pip (default: python3)
set -euo pipefail

ORT_VERSION="1.31.1"
LIB_NAME="libonnxruntime.so.${ORT_VERSION}"
CACHE_DIR="${TFESI_CACHE_DIR:-${HOME}/.cache/tfesi}"
INSTALL_DIR="${CACHE_DIR}/onnxruntime/${ORT_VERSION}"
LIB_PATH="${INSTALL_DIR}/${LIB_NAME}"
SUM_PATH="${INSTALL_DIR}/${LIB_NAME}.sha256"
PYTHON="${PYTHON:-python3}"
# sha256 of libonnxruntime.so.1.31.1 inside the manylinux x86_64 wheel, checked on every install so a
# changed file on the registry is noticed; other architectures record what they get.
EXPECTED_SHA256_X86_64="fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"

log() { echo "setup-onnxruntime: $*" >&2; }

verify_installed() {
    [[ -f "${LIB_PATH}" && -f "${SUM_PATH}" ]] || return 1
    local recorded actual
    recorded="$(cut -d' ' -f1 "${SUM_PATH}")"
    actual="$(sha256sum "${LIB_PATH}" | cut -d' ' -f1)"
    if [[ "${recorded}" != "${actual}" ]]; then
        log "sha256 of ${LIB_PATH} is ${actual}, recorded ${recorded}: reinstalling"
        return 1
    fi
    return 0
}

if verify_installed; then
    echo "${LIB_PATH}"
    exit 0
fi

mkdir -p "${INSTALL_DIR}"
work_dir="$(mktemp -d)"
trap 'rm -rf "${work_dir}"' EXIT

log "downloading the onnxruntime==${ORT_VERSION} wheel from PyPI"
"${PYTHON}" -m pip download --quiet --disable-pip-version-check \
    "onnxruntime==${ORT_VERSION}" --no-deps --only-binary=:all: --dest "${work_dir}" >&2

wheel="$(find "${work_dir}" -maxdepth 1 -name "onnxruntime-${ORT_VERSION}-*.whl" | head -n 1)"
if [[ -z "${wheel}" ]]; then
    log "no onnxruntime ${ORT_VERSION} wheel was downloaded into ${work_dir}"
    exit 1
fi

"${PYTHON}" - "${wheel}" "${work_dir}/extract" "${LIB_NAME}" <<'PY'
import sys, zipfile, pathlib
wheel, dest, lib_name = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
member = f"onnxruntime/capi/{lib_name}"
with zipfile.ZipFile(wheel) as archive:
    if member not in archive.namelist():
        sys.exit(f"setup-onnxruntime: {member} is not in {wheel}")
    archive.extract(member, dest)
PY

extracted="${work_dir}/extract/onnxruntime/capi/${LIB_NAME}"
if [[ "$(uname -m)" == "x86_64" ]]; then
    got="$(sha256sum "${extracted}" | cut -d' ' -f1)"
    if [[ "${got}" != "${EXPECTED_SHA256_X86_64}" ]]; then
        log "sha256 of ${LIB_NAME} from the wheel is ${got}, expected ${EXPECTED_SHA256_X86_64}"
        exit 1
    fi
fi
# Write beside the target, then rename: a reader never sees a half-written library.
tmp_lib="${INSTALL_DIR}/.${LIB_NAME}.partial"
cp "${extracted}" "${tmp_lib}"
chmod 0644 "${tmp_lib}"
sha256sum "${tmp_lib}" | awk -v name="${LIB_NAME}" '{print $1"  "name}' >"${SUM_PATH}.partial"
mv -f "${tmp_lib}" "${LIB_PATH}"
mv -f "${SUM_PATH}.partial" "${SUM_PATH}"

if ! verify_installed; then
    log "the installed library does not match the sha256 just recorded"
    exit 1
fi
log "installed ${LIB_PATH} (sha256 $(cut -d' ' -f1 "${SUM_PATH}"))"
echo "${LIB_PATH}"
