//! A minimal reader for NumPy `.npy` files of little-endian float32 (C order), enough for the
//! reference tensors in `../shared/reference`. Test-only: incept itself reads no `.npy`.

use std::path::Path;

type Result<T, E = String> = std::result::Result<T, E>;

/// Reads a float32 `.npy` file: its shape and its values in C order.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let invalid = |reason: &str| format!("{}: {reason}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(invalid("not a .npy file"));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        _ if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        _ => return Err(invalid("truncated header")),
    };
    let header = bytes
        .get(header_start..header_start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| invalid("truncated header"))?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(invalid("only little-endian float32 in C order is supported"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| invalid("no shape in header"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| invalid("bad shape"))?;
    let data = &bytes[header_start + header_len..];
    let count: usize = shape.iter().product();
    if data.len() != count * 4 {
        return Err(invalid("data length does not match the shape"));
    }
    let values =
        data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((shape, values))
}

#[test]
fn reads_a_small_array() -> Result<(), Box<dyn std::error::Error>> {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&1.5f32.to_le_bytes());
    bytes.extend_from_slice(&(-2.0f32).to_le_bytes());
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.npy");
    std::fs::write(&path, bytes)?;
    assert_eq!(read_f32(&path)?, (vec![2, 1], vec![1.5, -2.0]));
    Ok(())
}
