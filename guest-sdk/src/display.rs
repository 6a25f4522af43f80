//! Rich output (the `wasmpar:engine/display` import), the counterpart of
//! IPython's `display()`: images shown here are returned with the call's
//! outputs, beside its captured stdout and stderr.
//!
//! ```ignore
//! use wasmpar_guest::display;
//!
//! let (w, h) = (64, 32);
//! let pixels: Vec<u8> = (0..w * h).map(|i| (i % 256) as u8).collect();
//! let png = display::encode_gray_png(w, h, &pixels)?;
//! display::png(&png)?;
//! ```

use crate::bindings::wasmpar::engine::display as raw;

/// Show a PNG image. The engine refuses bytes that are not a PNG.
pub fn png(bytes: &[u8]) -> Result<(), String> {
    raw::png(bytes)
}

/// Encode an 8-bit greyscale image, row-major, top row first
/// (`pixels.len()` must be `width * height`).
pub fn encode_gray_png(width: u32, height: u32, pixels: &[u8]) -> Result<Vec<u8>, String> {
    encode(width, height, png::ColorType::Grayscale, 1, pixels)
}

/// Encode an 8-bit RGB image, row-major, top row first, three bytes a pixel
/// (`rgb.len()` must be `3 * width * height`).
pub fn encode_rgb_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    encode(width, height, png::ColorType::Rgb, 3, rgb)
}

fn encode(width: u32, height: u32, color: png::ColorType, channels: usize, pixels: &[u8]) -> Result<Vec<u8>, String> {
    if width == 0 || height == 0 {
        return Err(format!("a PNG needs a positive size, not {width}x{height}"));
    }
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(channels))
        .ok_or_else(|| format!("a {width}x{height} image is too large"))?;
    if pixels.len() != expected {
        return Err(format!("a {width}x{height} image with {channels} byte(s) a pixel needs {expected} bytes, got {}", pixels.len()));
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(pixels).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_png_decodes_back() {
        let pixels: Vec<u8> = (0..6u8).map(|i| i * 40).collect();
        let bytes = encode_gray_png(3, 2, &pixels).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(&bytes[..]);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[..info.buffer_size()], &pixels[..]);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(encode_gray_png(3, 2, &[0; 5]).is_err());
        assert!(encode_gray_png(0, 2, &[]).is_err());
        assert!(encode_rgb_png(2, 2, &[0; 4]).is_err());
        assert!(encode_rgb_png(2, 2, &[0; 12]).is_ok());
    }
}
