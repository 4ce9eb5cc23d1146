//! A minimal PNG writer for 8-bit grey-scale images (the sample grids of
//! `eval.samples`): signature, IHDR, one zlib-compressed IDAT (filter 0 on
//! every row), IEND, with flate2's deflate and CRC-32. Also base64, to embed
//! a PNG in an SVG figure.

use std::io::Write;

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// The PNG bytes of a `width` x `height` grey image (row-major, one byte a pixel).
pub fn encode_grey(width: usize, height: usize, pixels: &[u8]) -> Vec<u8> {
    assert_eq!(pixels.len(), width * height, "one byte per pixel");
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&(width as u32).to_be_bytes());
    header.extend_from_slice(&(height as u32).to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit, grey, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &header);
    let mut raw = Vec::with_capacity(height * (width + 1));
    for row in pixels.chunks(width.max(1)) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&raw).expect("compress into memory");
    chunk(&mut out, b"IDAT", &encoder.finish().expect("compress into memory"));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, coded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn the_png_holds_the_pixels() {
        let pixels: Vec<u8> = (0..12).map(|i| (i * 20) as u8).collect();
        let png = encode_grey(4, 3, &pixels);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Decompress the IDAT (starts after signature 8 + IHDR 25, length + type 8).
        let length = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&png[41..41 + length]), &mut raw).unwrap();
        assert_eq!(
            raw,
            [vec![0], pixels[..4].to_vec(), vec![0], pixels[4..8].to_vec(), vec![0], pixels[8..].to_vec()].concat()
        );
    }
}
