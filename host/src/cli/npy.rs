//! Reading numpy `.npy` files (C order, little-endian), so that
//! `wasmpar push x=@data.npy` sends the array as raw bytes, not JSON.

use anyhow::{bail, Context, Result};

pub struct Npy {
    /// numpy's dtype descriptor, e.g. `<f8`.
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

pub fn read(path: &str) -> Result<Npy> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    parse(bytes).with_context(|| format!("{path} is not a .npy file wasmpar can send"))
}

pub fn parse(bytes: Vec<u8>) -> Result<Npy> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("no .npy magic");
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => bail!("unsupported .npy version {v}"),
    };
    let header = bytes.get(start..start + header_len).context("truncated header")?;
    let header = std::str::from_utf8(header).context("header is not text")?;
    let field = |key: &str| -> Result<&str> {
        let at = header.find(&format!("'{key}'")).with_context(|| format!("no '{key}' in the header"))?;
        Ok(header[at + key.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr")?;
    let descr = descr.strip_prefix('\'').and_then(|d| d.split('\'').next()).context("bad descr")?.to_string();
    if descr.starts_with('>') {
        bail!("big-endian data ({descr}); save it little-endian");
    }
    if field("fortran_order")?.starts_with("True") {
        bail!("Fortran-ordered data; save it in C order (np.ascontiguousarray)");
    }
    let shape_text = field("shape")?;
    let inner = shape_text.strip_prefix('(').and_then(|s| s.split(')').next()).context("bad shape")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().context("bad shape"))
        .collect::<Result<Vec<_>>>()?;
    Ok(Npy { descr, shape, data: bytes[start + header_len..].to_vec() })
}

/// Write a C-order, little-endian `.npy` (version 1) file.
pub fn write(path: &str, descr: &str, shape: &[usize], data: &[u8]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&u16::try_from(header.len()).context("header too long")?.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).with_context(|| format!("cannot write {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_version_1_file() {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend((0..6).flat_map(|i| (i as f64).to_le_bytes()));
        let npy = parse(bytes).expect("valid");
        assert_eq!(npy.descr, "<f8");
        assert_eq!(npy.shape, vec![2, 3]);
        assert_eq!(npy.data.len(), 48);
        assert!(parse(b"not npy at all".to_vec()).is_err());
    }

    #[test]
    fn writes_what_it_reads() {
        let path = std::env::temp_dir().join(format!("wasmpar-npy-{}.npy", std::process::id()));
        let path = path.to_str().expect("utf-8");
        let data: Vec<u8> = (0..4).flat_map(|i| (i as i64).to_le_bytes()).collect();
        write(path, "<i8", &[4], &data).expect("write");
        let back = read(path).expect("read");
        assert_eq!((back.descr.as_str(), back.shape.as_slice(), back.data.as_slice()), ("<i8", &[4usize][..], &data[..]));
        let _ = std::fs::remove_file(path);
    }
}
