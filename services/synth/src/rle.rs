//! RLE Lossless encoder (DICOM PS3.5 Annex G): PackBits byte segments, one per byte plane.

/// Encodes one frame of 16-bit samples as an RLE Lossless fragment: a 64-byte header and two
/// segments (most significant bytes first), each row packed separately, each segment even.
pub fn encode_frame_u16(pixels: &[u16], columns: usize) -> Vec<u8> {
    let high: Vec<u8> = pixels.iter().map(|&p| (p >> 8) as u8).collect();
    let low: Vec<u8> = pixels.iter().map(|&p| (p & 0xFF) as u8).collect();
    let segments = [segment(&high, columns), segment(&low, columns)];
    let mut header = [0_u32; 16];
    header[0] = segments.len() as u32;
    let mut offset = 64_u32;
    for (i, seg) in segments.iter().enumerate() {
        header[i + 1] = offset;
        offset += seg.len() as u32;
    }
    let mut out = Vec::with_capacity(offset as usize);
    for value in header {
        out.extend_from_slice(&value.to_le_bytes());
    }
    for seg in &segments {
        out.extend_from_slice(seg);
    }
    out
}

fn segment(plane: &[u8], columns: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for row in plane.chunks(columns.max(1)) {
        pack_bits(row, &mut out);
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// PackBits: a run of n (2..=128) equal bytes is `1 - n` then the byte; n (1..=128) literal bytes
/// are `n - 1` then the bytes. The value -128 is never written.
fn pack_bits(data: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < data.len() {
        let mut run = 1;
        while i + run < data.len() && run < 128 && data[i + run] == data[i] {
            run += 1;
        }
        if run >= 2 {
            out.push((1 - run as i16) as i8 as u8);
            out.push(data[i]);
            i += run;
            continue;
        }
        let start = i;
        let mut len = 0;
        while i < data.len() && len < 128 {
            if i + 1 < data.len() && data[i] == data[i + 1] {
                break;
            }
            i += 1;
            len += 1;
        }
        out.push((len - 1) as u8);
        out.extend_from_slice(&data[start..start + len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(segment: &[u8], expected_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while out.len() < expected_len && i < segment.len() {
            let n = segment[i] as i8;
            i += 1;
            if n >= 0 {
                let count = n as usize + 1;
                out.extend_from_slice(&segment[i..i + count]);
                i += count;
            } else if n != -128 {
                let count = (1 - i16::from(n)) as usize;
                out.extend(std::iter::repeat_n(segment[i], count));
                i += 1;
            }
        }
        out
    }

    #[test]
    fn packbits_round_trips_runs_literals_and_long_rows() {
        let mut data: Vec<u8> = vec![7; 300];
        data.extend((0..=255).map(|v: u32| v as u8));
        data.extend([1, 1, 2, 3, 3, 3, 4]);
        let mut packed = Vec::new();
        pack_bits(&data, &mut packed);
        assert!(packed.len() < data.len());
        assert_eq!(unpack(&packed, data.len()), data);
    }

    #[test]
    fn frame_header_points_at_even_segments() {
        let pixels: Vec<u16> = (0..64 * 3).map(|i| (i * 37 % 4096) as u16).collect();
        let frame = encode_frame_u16(&pixels, 64);
        let word = |k: usize| {
            u32::from_le_bytes([frame[4 * k], frame[4 * k + 1], frame[4 * k + 2], frame[4 * k + 3]])
        };
        assert_eq!(word(0), 2);
        assert_eq!(word(1), 64);
        assert_eq!(word(2) % 2, 0);
        assert_eq!(frame.len() % 2, 0);
        let high = unpack(&frame[64..word(2) as usize], pixels.len());
        let low = unpack(&frame[word(2) as usize..], pixels.len());
        let decoded: Vec<u16> =
            high.iter().zip(&low).map(|(&h, &l)| u16::from(h) << 8 | u16::from(l)).collect();
        assert_eq!(decoded, pixels);
    }
}
