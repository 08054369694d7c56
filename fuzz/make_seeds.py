#!/usr/bin/env python3
"""Writes the fuzz seed corpora: ../shared/dicom-corpus files as they are, plus generated
adversarial instances (deep nesting, huge declared lengths, undefined-length items without
delimiters, a deflate bomb, huge image dimensions), and for the series target the same wrapped
in its input format (fuzz/src/lib.rs, SeriesInput).

usage: make_seeds.py DICOM_CORPUS OUT_DIR   (writes OUT_DIR/parse_instance, OUT_DIR/series_tensor)
Nothing is copied into the repository: OUT_DIR is under fuzz/corpus (git-ignored).
"""
import os
import struct
import sys
import zlib

ITEM = b"\xfe\xff\x00\xe0"
ITEM_DELIM = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
SEQ_DELIM = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
UNDEF = 0xFFFFFFFF
SQ_TAG = (0x0008, 0x1115)  # Referenced Series Sequence (SQ in the dictionary, for implicit VR)


def dataset_start(data):
    """Offset of the data set: after the file meta group (explicit VR LE)."""
    pos = 132
    while pos + 8 <= len(data) and data[pos:pos + 2] == b"\x02\x00":
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV", b"SV", b"UV"):
            length = struct.unpack_from("<I", data, pos + 8)[0]
            pos += 12 + length
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            pos += 8 + length
    return pos


def sq_header(explicit, length, tag=SQ_TAG):
    head = struct.pack("<HH", *tag)
    if explicit:
        return head + b"SQ\x00\x00" + struct.pack("<I", length)
    return head + struct.pack("<I", length)


def item_header(length):
    return ITEM + struct.pack("<I", length)


def nested_undefined(depth, explicit=True):
    """depth sequences, each with one undefined-length item, all properly delimited."""
    opening = (sq_header(explicit, UNDEF) + item_header(UNDEF)) * depth
    closing = (ITEM_DELIM + SEQ_DELIM) * depth
    return opening + closing


def nested_defined(depth, explicit=True):
    body = b""
    for _ in range(depth):
        item = item_header(len(body)) + body
        body = sq_header(explicit, len(item)) + item
    return body


def nested_open(depth, explicit=True):
    """Undefined-length sequences and items that are never closed."""
    return (sq_header(explicit, UNDEF) + item_header(UNDEF)) * depth


def insert_at_dataset(data, blob):
    at = dataset_start(data)
    return data[:at] + blob + data[at:]


def find_tag(data, group, element, big_endian=False, start=None):
    fmt = ">HH" if big_endian else "<HH"
    return data.find(struct.pack(fmt, group, element), dataset_start(data) if start is None else start)


def set_explicit_length(data, pos, length, big_endian=False):
    """Sets the length of the explicit VR element header at pos (short or long form)."""
    vr = data[pos + 4:pos + 6]
    out = bytearray(data)
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV", b"SV", b"UV"):
        struct.pack_into(">I" if big_endian else "<I", out, pos + 8, length)
    else:
        struct.pack_into(">H" if big_endian else "<H", out, pos + 6, length & 0xFFFF)
    return bytes(out)


def set_us(data, group, element, value, big_endian=False):
    pos = find_tag(data, group, element, big_endian)
    out = bytearray(data)
    struct.pack_into(">H" if big_endian else "<H", out, pos + 8, value)
    return bytes(out)


def generated(corpus):
    read = lambda name: open(os.path.join(corpus, "valid", name), "rb").read()
    mr = read("MR_small.dcm")
    implicit = read("MR_small_implicit.dcm")
    big = read("MR_small_bigendian.dcm")
    rle = read("MR_small_RLE.dcm")
    dfl = read("image_dfl.dcm")
    seeds = {}
    for depth in (16, 17, 32, 33, 64, 2000):
        seeds[f"gen_nest_undefined_{depth}"] = insert_at_dataset(mr, nested_undefined(depth))
    for depth in (33, 500):
        seeds[f"gen_nest_defined_{depth}"] = insert_at_dataset(mr, nested_defined(depth))
    seeds["gen_nest_undefined_implicit_2000"] = insert_at_dataset(implicit, nested_undefined(2000, explicit=False))
    for depth in (1, 3, 2000):
        seeds[f"gen_open_items_no_delimiters_{depth}"] = insert_at_dataset(mr, nested_open(depth))
    seeds["gen_open_item_at_eof"] = mr + nested_open(1)
    seeds["gen_item_without_sequence_delimiter"] = mr + sq_header(True, UNDEF) + item_header(UNDEF) + ITEM_DELIM
    first = dataset_start(mr)
    pixel = find_tag(mr, 0x7FE0, 0x0010)
    for length in (0xFFFFFFF0, 0x7FFFFFF0, 0xFFFFFFFE):
        seeds[f"gen_huge_len_first_{length:08x}"] = set_explicit_length(mr, first, length)
        seeds[f"gen_huge_len_pixel_{length:08x}"] = set_explicit_length(mr, pixel, length)
    seeds["gen_undefined_len_native_pixel"] = set_explicit_length(mr, pixel, UNDEF)
    meta = bytearray(mr)
    struct.pack_into("<I", meta, 140, 0xFFFFFFF0)  # (0002,0000) group length value
    seeds["gen_huge_meta_group_length"] = bytes(meta)
    seeds["gen_huge_sequence_length"] = insert_at_dataset(mr, sq_header(True, 0xFFFFFFF0) + item_header(8))
    seeds["gen_huge_item_length"] = insert_at_dataset(mr, sq_header(True, UNDEF) + item_header(0xFFFFFFF0) + SEQ_DELIM)
    un = struct.pack("<HH", 0x0009, 0x1010) + b"UN\x00\x00" + struct.pack("<I", UNDEF)
    seeds["gen_un_undefined_nested"] = insert_at_dataset(mr, un + nested_undefined(40, explicit=False) + SEQ_DELIM)
    bpos = find_tag(big, 0x7FE0, 0x0010, big_endian=True)
    seeds["gen_bigendian_huge_pixel_len"] = set_explicit_length(big, bpos, 0xFFFFFFF0, big_endian=True)
    ipos = find_tag(implicit, 0x7FE0, 0x0010)
    imp = bytearray(implicit)
    struct.pack_into("<I", imp, ipos + 4, 0xFFFFFFF0)
    seeds["gen_implicit_huge_pixel_len"] = bytes(imp)
    # Encapsulated pixel data: huge fragment length, and 4,000 empty fragments.
    rpix = find_tag(rle, 0x7FE0, 0x0010)
    first_item = rle.find(ITEM, rpix + 12)
    second_item = rle.find(ITEM, first_item + 8 + struct.unpack_from("<I", rle, first_item + 4)[0])
    frag = bytearray(rle)
    struct.pack_into("<I", frag, second_item + 4, 0xFFFFFFF0)
    seeds["gen_rle_huge_fragment"] = bytes(frag)
    seeds["gen_rle_many_empty_fragments"] = rle[:second_item] + item_header(0) * 4000 + rle[second_item:]
    # Huge image dimensions on small pixel data (native and RLE), and a huge frame count.
    seeds["gen_rows_cols_65535_native"] = set_us(set_us(mr, 0x0028, 0x0010, 65535), 0x0028, 0x0011, 65535)
    seeds["gen_rows_cols_65535_rle"] = set_us(set_us(rle, 0x0028, 0x0010, 65535), 0x0028, 0x0011, 65535)
    seeds["gen_rows_cols_8192_rle"] = set_us(set_us(rle, 0x0028, 0x0010, 8192), 0x0028, 0x0011, 8192)
    frames = struct.pack("<HH", 0x0028, 0x0008) + b"IS" + struct.pack("<H", 8) + b"99999999"
    seeds["gen_frames_99999999_rle"] = insert_at_dataset(rle, frames)
    # Deflate bomb: 64 MiB of zeros (8 M empty elements) in about 64 KB.
    dstart = dataset_start(dfl)
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    seeds["gen_deflate_bomb_64MiB"] = dfl[:dstart] + bomb.compress(b"\0" * (64 << 20)) + bomb.flush()
    small = zlib.compressobj(9, zlib.DEFLATED, -15)
    seeds["gen_deflate_bomb_4MiB"] = dfl[:dstart] + small.compress(b"\0" * (4 << 20)) + small.flush()
    nest = zlib.compressobj(9, zlib.DEFLATED, -15)
    seeds["gen_deflate_nest_2000"] = dfl[:dstart] + nest.compress(nested_undefined(2000)) + nest.flush()
    return seeds


def series(flags, spacing, instances):
    head = bytes([flags, spacing])
    for inst in instances[:-1]:
        head += struct.pack("<I", len(inst))
    return head + b"".join(instances)


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    parse_dir = os.path.join(out, "parse_instance")
    series_dir = os.path.join(out, "series_tensor")
    os.makedirs(parse_dir, exist_ok=True)
    os.makedirs(series_dir, exist_ok=True)
    files = {}
    for sub in ("valid", "invalid"):
        for name in sorted(os.listdir(os.path.join(corpus, sub))):
            with open(os.path.join(corpus, sub, name), "rb") as f:
                files[f"{sub}_{name}"] = f.read()
    files.update(generated(corpus))
    for name, data in files.items():
        with open(os.path.join(parse_dir, name), "wb") as f:
            f.write(data)
        # Known finding (docs/fuzzing.md): preprocess spends about a minute on the 64 MiB bomb,
        # every time the fuzzer would run it; the series target gets the 4 MiB one instead.
        if name == "gen_deflate_bomb_64MiB":
            continue
        # One instance, replicated into a series 1.0 mm apart.
        with open(os.path.join(series_dir, name), "wb") as f:
            f.write(series(0x04, 10, [data]))
    mr = files["valid_MR_small.dcm"]
    combos = {
        "series_4_mr_small_variants": series(0x07, 10, [mr, files["valid_MR_small_RLE.dcm"],
                                                         files["valid_MR_small_implicit.dcm"],
                                                         files["valid_MR_small_bigendian.dcm"]]),
        "series_2_emri": series(0x05, 30, [files["valid_emri_small.dcm"], files["valid_emri_small_RLE.dcm"]]),
        "series_coincident_slices": series(0x04, 0, [mr]),
        "series_2_mixed_dims": series(0x05, 10, [mr, files["valid_emri_small.dcm"]]),
        "series_no_replicate": series(0x00, 0, [mr]),
    }
    for name, data in combos.items():
        with open(os.path.join(series_dir, name), "wb") as f:
            f.write(data)
    print(f"seeds: {len(os.listdir(parse_dir))} in {parse_dir}, {len(os.listdir(series_dir))} in {series_dir}")


if __name__ == "__main__":
    main()
