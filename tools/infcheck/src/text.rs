//! Decoding an INF file's bytes.
//!
//! Windows reads INF files as ANSI (the system code page) or
//! UTF-16LE with a byte-order mark; InfVerif code 1003 rejects anything else. "ANSI" is only
//! unambiguous for ASCII, so non-ASCII bytes without a BOM are rejected here too.

/// Why an INF's bytes cannot be read the way Windows would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodingError {
    /// UTF-16 big-endian BOM: not accepted by Windows.
    Utf16BigEndian,
    /// UTF-8 BOM: neither ANSI nor UTF-16LE (InfVerif 1003).
    Utf8Bom,
    /// NUL bytes without a BOM: UTF-16 without its byte-order mark.
    Utf16WithoutBom,
    /// Byte at this offset is not ASCII in a file without BOM (code-page dependent).
    NonAscii(usize),
    /// UTF-16LE body with an odd number of bytes.
    OddLength,
    /// UTF-16LE body with an unpaired surrogate at this code-unit index.
    BadUtf16(usize),
}

impl std::fmt::Display for EncodingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Utf16BigEndian => f.write_str("UTF-16 big-endian is not accepted by Windows (InfVerif 1003); use UTF-16LE with BOM or ASCII"),
            Self::Utf8Bom => f.write_str("UTF-8 with BOM is neither ANSI nor UTF-16LE (InfVerif 1003); use UTF-16LE with BOM or ASCII"),
            Self::Utf16WithoutBom => f.write_str("NUL bytes without a byte-order mark: UTF-16 must start with the BOM FF FE"),
            Self::NonAscii(offset) => write!(f, "non-ASCII byte at offset {offset} in an ANSI INF: its meaning depends on the code page; use UTF-16LE with BOM"),
            Self::OddLength => f.write_str("UTF-16LE file with an odd number of bytes"),
            Self::BadUtf16(index) => write!(f, "invalid UTF-16 (unpaired surrogate) at code unit {index}"),
        }
    }
}

/// The encodings an INF file can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// ASCII without BOM ("ANSI" that means the same in every code page).
    Ascii,
    /// UTF-16LE with BOM.
    Utf16Le,
}

/// Decodes an INF file's bytes into text, refusing what Windows would misread.
///
/// # Errors
/// An [`EncodingError`] naming the problem.
pub fn decode(bytes: &[u8]) -> Result<(Encoding, String), EncodingError> {
    if let Some(body) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return decode_utf16le(body).map(|text| (Encoding::Utf16Le, text));
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(EncodingError::Utf16BigEndian);
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(EncodingError::Utf8Bom);
    }
    if bytes.contains(&0) {
        return Err(EncodingError::Utf16WithoutBom);
    }
    if let Some(offset) = bytes.iter().position(|byte| !byte.is_ascii()) {
        return Err(EncodingError::NonAscii(offset));
    }
    // All bytes are ASCII, so this is valid UTF-8.
    Ok((
        Encoding::Ascii,
        bytes.iter().map(|&byte| char::from(byte)).collect(),
    ))
}

fn decode_utf16le(body: &[u8]) -> Result<String, EncodingError> {
    if !body.len().is_multiple_of(2) {
        return Err(EncodingError::OddLength);
    }
    let units = body
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    let mut text = String::with_capacity(body.len() / 2);
    for (index, decoded) in char::decode_utf16(units).enumerate() {
        text.push(decoded.map_err(|_| EncodingError::BadUtf16(index))?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le_with_bom(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    }

    #[test]
    fn ascii_is_read_as_is() {
        assert_eq!(
            decode(b"[Version]\r\n"),
            Ok((Encoding::Ascii, "[Version]\r\n".to_owned()))
        );
    }

    #[test]
    fn utf16le_with_bom_is_decoded() {
        let bytes = utf16le_with_bom("[Strings]\r\nName=\"h\u{e9}\"\r\n");
        assert_eq!(
            decode(&bytes),
            Ok((
                Encoding::Utf16Le,
                "[Strings]\r\nName=\"h\u{e9}\"\r\n".to_owned()
            ))
        );
    }

    #[test]
    fn rejected_encodings_are_named() {
        assert_eq!(
            decode(&[0xFE, 0xFF, 0, b'[']),
            Err(EncodingError::Utf16BigEndian)
        );
        assert_eq!(
            decode(b"\xEF\xBB\xBF[Version]"),
            Err(EncodingError::Utf8Bom)
        );
        assert_eq!(decode(b"[\0V\0"), Err(EncodingError::Utf16WithoutBom));
        assert_eq!(decode(b"; caf\xC3\xA9"), Err(EncodingError::NonAscii(5)));
        assert_eq!(decode(&[0xFF, 0xFE, b'[']), Err(EncodingError::OddLength));
        assert_eq!(
            decode(&[0xFF, 0xFE, 0x00, 0xD8, b'[', 0]),
            Err(EncodingError::BadUtf16(0))
        );
    }
}
