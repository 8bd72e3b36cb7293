//! PEM blocks, one or several concatenated (certificate chains).

use crate::error::{Result, malformed};

/// Splits text holding one or more PEM blocks into `(label, der)` pairs, in order.
/// Text between blocks is ignored, as GnuTLS does.
pub fn decode_all(what: &'static str, text: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let text = std::str::from_utf8(text).map_err(|e| malformed(what, e))?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label_end = block[11..]
            .find("-----")
            .ok_or_else(|| malformed(what, "unterminated PEM header"))?;
        let label = &block[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| malformed(what, "missing PEM footer"))?;
        let whole = &block[..end + end_marker.len()];
        let (l, der) = der::pem::decode_vec(whole.as_bytes()).map_err(|e| malformed(what, e))?;
        out.push((l.to_string(), der));
        rest = &block[end + end_marker.len()..];
    }
    if out.is_empty() {
        return Err(malformed(what, "no PEM block"));
    }
    Ok(out)
}

/// Encodes DER as a PEM block with `\n` line endings and 64-column lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    // Encoding into a String cannot fail for a valid label.
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// True when the bytes look like PEM text rather than DER.
pub fn is_pem(data: &[u8]) -> bool {
    data.iter().take(64).any(|&b| b == b'-') && data.windows(11).any(|w| w == b"-----BEGIN ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_two_blocks() {
        let a = encode("CERTIFICATE", &[1, 2, 3]);
        let b = encode("CERTIFICATE", &[4, 5]);
        let both = format!("junk\n{a}{b}");
        let blocks = decode_all("certificate", both.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].1, vec![1, 2, 3]);
        assert_eq!(blocks[1].1, vec![4, 5]);
        assert!(decode_all("certificate", b"-----BEGIN CERTIFICATE-----\nAAA").is_err());
        assert!(decode_all("certificate", b"nothing").is_err());
        assert!(decode_all("certificate", &[0xff, 0xfe]).is_err());
    }
}
