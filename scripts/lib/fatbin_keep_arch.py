"""Zero the GPU code of every architecture but one inside a shared library's CUDA fat binaries.

    python3 scripts/lib/fatbin_keep_arch.py IN.so OUT.so --arch 90

Used by scripts/gpu-bench.sh to carry onnxruntime-gpu's CUDA provider
(libonnxruntime_providers_cuda.so, 284 MB, of which 219 MB is the `.nv_fatbin` section with
cubins for sm_75, 80, 86, 89, 90 and 120) to a machine whose transfer limit is 64 MiB: the
cubins of the other architectures are overwritten with zeros, the layout and every header stay
as they are, and the file then compresses to about 52 MB with zstd. The CUDA runtime picks
the cubin of the card's architecture from the headers, so on that card nothing changes; on any
other card the library would launch zeros. Never install the output anywhere but a benchmark
machine of that architecture.

Fat binary layout (as documented by NVIDIA's cuobjdump output and public reverse engineering):
a 16-byte header (magic 0xBA55ED50, version, header size, size of what follows), then entries,
each a header (kind, version, header size, payload size, ..., the SM version at byte 28) and
its payload.
"""

import argparse
import struct
import subprocess
import sys

FATBIN_MAGIC = 0xBA55ED50


def fatbin_section(path: str) -> tuple[int, int]:
    """File offset and size of the `.nv_fatbin` section (readelf, binutils)."""
    listing = subprocess.run(["readelf", "-S", "-W", path], check=True, capture_output=True, text=True).stdout
    for line in listing.splitlines():
        if " .nv_fatbin " in line:
            fields = line.split("]", 1)[1].split()
            return int(fields[3], 16), int(fields[4], 16)
    sys.exit(f"{path} has no .nv_fatbin section")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--arch", type=int, required=True, help="SM version to keep, e.g. 90 for H100/H200")
    args = parser.parse_args()

    data = bytearray(open(args.input, "rb").read())
    start, size = fatbin_section(args.input)
    position, end = start, start + size
    kept = zeroed = binaries = 0
    while position + 16 <= end:
        magic, _version, header_size, body_size = struct.unpack_from("<IHHQ", data, position)
        if magic != FATBIN_MAGIC:
            position += 8  # fat binaries are 8-byte aligned inside the section
            continue
        binaries += 1
        entry, body_end = position + header_size, position + header_size + body_size
        while entry < body_end:
            _kind, _entry_version, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            arch = struct.unpack_from("<I", data, entry + 28)[0]
            if entry_header == 0:
                sys.exit(f"malformed fat binary entry at byte {entry}")
            payload_start = entry + entry_header
            if arch == args.arch:
                kept += payload
            else:
                data[payload_start : payload_start + payload] = bytes(payload)
                zeroed += payload
            entry = payload_start + payload
        position = body_end
    if kept == 0:
        sys.exit(f"no sm_{args.arch} code in {args.input}: refusing to write a library without it")
    with open(args.output, "wb") as out:
        out.write(data)
    print(
        f"{binaries} fat binaries: kept {kept / 1e6:.1f} MB of sm_{args.arch}, zeroed {zeroed / 1e6:.1f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
