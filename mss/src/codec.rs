//! The message codec, free of I/O: `uvarint(len) ‖ UTF-8 text ‖ '\n'`, where `len`
//! counts the text and the `\n`.
//!
//! [`decode`] takes whatever bytes have arrived and either returns one message and how
//! many bytes it used, says more bytes are needed, or rejects the input. It never
//! allocates more than the (already bounded) message it returns.

use crate::error::NegotiationError;
use crate::PROTOCOL_ID;

/// Length value of the header message (`/multistream/1.0.0\n`).
pub const HEADER_LEN: usize = PROTOCOL_ID.len() + 1;

/// One multistream-select message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `/multistream/1.0.0`.
    Header,
    /// A protocol id (text starting with `/`): a proposal, or its echo.
    Protocol(String),
    /// `na`: the proposal is not available.
    Na,
    /// `ls`: a request for the supported protocols.
    Ls,
    /// Any other text line (used by simultaneous open: `select:N`, `initiator`,
    /// `responder`).
    Other(String),
}

impl Message {
    /// Classifies one decoded line of text (without its `\n`).
    pub fn parse(text: &str) -> Message {
        match text {
            PROTOCOL_ID => Message::Header,
            "na" => Message::Na,
            "ls" => Message::Ls,
            t if t.starts_with('/') => Message::Protocol(t.to_owned()),
            t => Message::Other(t.to_owned()),
        }
    }

    /// The text of the message, without the `\n`.
    pub fn as_str(&self) -> &str {
        match self {
            Message::Header => PROTOCOL_ID,
            Message::Na => "na",
            Message::Ls => "ls",
            Message::Protocol(p) | Message::Other(p) => p,
        }
    }

    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_line(self.as_str(), out)
    }
}

/// Appends `uvarint(text.len() + 1) ‖ text ‖ '\n'` to `out`.
pub fn encode_line(text: &str, out: &mut Vec<u8>) {
    encode_frame(text.as_bytes(), out);
}

fn encode_frame(body_without_newline: &[u8], out: &mut Vec<u8>) {
    let mut buf = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(body_without_newline.len() + 1, &mut buf);
    out.reserve(prefix.len() + body_without_newline.len() + 1);
    out.extend_from_slice(prefix);
    out.extend_from_slice(body_without_newline);
    out.push(b'\n');
}

/// Appends the answer to `ls`: one message whose body is the concatenation of the
/// encoded protocol ids, followed by `\n`.
///
/// Ids are taken in order while the whole message stays within `max_len`; the number
/// of ids included is returned (the rest are left out, never sent oversized).
pub fn encode_ls_response<S: AsRef<str>>(
    protocols: &[S],
    max_len: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut body = Vec::new();
    let mut included = 0;
    for p in protocols {
        let mut entry = Vec::new();
        encode_line(p.as_ref(), &mut entry);
        // `+ 1` for the final '\n' of the outer message.
        if body.len() + entry.len() + 1 > max_len {
            break;
        }
        body.extend_from_slice(&entry);
        included += 1;
    }
    encode_frame(&body, out);
    included
}

/// Number of bytes of the minimal varint encoding of `n`.
pub fn varint_len(n: usize) -> usize {
    let mut buf = unsigned_varint::encode::usize_buffer();
    unsigned_varint::encode::usize(n, &mut buf).len()
}

/// Decodes one message from the start of `input`.
///
/// Returns `Ok(Some((message, bytes_used)))`, `Ok(None)` if `input` holds only part of
/// a message, or an error if the bytes can never form a valid message within
/// `max_len`: length above `max_len` (detected from the varint prefix alone, before
/// the body arrives), a non-minimal or overlong varint, a zero length, a body not
/// ending in `\n`, text that is not UTF-8, or text containing another `\n`.
pub fn decode(input: &[u8], max_len: usize) -> Result<Option<(Message, usize)>, NegotiationError> {
    let (len, rest) = match unsigned_varint::decode::usize(input) {
        Ok(v) => v,
        Err(unsigned_varint::decode::Error::Insufficient) => {
            // Every byte so far has its continuation bit set; once there are as many
            // of them as the encoding of `max_len` needs, the value exceeds `max_len`.
            let prefix_max = varint_len(max_len);
            if input.len() >= prefix_max {
                let lower_bound = 1usize
                    .checked_shl(7 * input.len() as u32)
                    .unwrap_or(usize::MAX);
                return Err(NegotiationError::MessageTooLong {
                    len: lower_bound,
                    max: max_len,
                });
            }
            return Ok(None);
        }
        Err(e) => {
            return Err(NegotiationError::InvalidMessage(format!(
                "bad length prefix: {e}"
            )))
        }
    };
    if len > max_len {
        return Err(NegotiationError::MessageTooLong { len, max: max_len });
    }
    if len == 0 {
        return Err(NegotiationError::InvalidMessage("empty message".into()));
    }
    let prefix_len = input.len() - rest.len();
    let Some(body) = rest.get(..len) else {
        return Ok(None);
    };
    let Some((&last, text)) = body.split_last() else {
        return Err(NegotiationError::InvalidMessage("empty message".into()));
    };
    if last != b'\n' {
        return Err(NegotiationError::InvalidMessage(
            "message does not end with a newline".into(),
        ));
    }
    let text = std::str::from_utf8(text)
        .map_err(|_| NegotiationError::InvalidMessage("message is not UTF-8".into()))?;
    if text.contains('\n') {
        return Err(NegotiationError::InvalidMessage(
            "message contains a newline before its end".into(),
        ));
    }
    Ok(Some((Message::parse(text), prefix_len + len)))
}

/// Checks that `id` may be proposed or listed: it starts with `/`, contains no `\n`,
/// is not the multistream-select header itself, and its message fits `max_len`.
pub fn validate_protocol_id(id: &str, max_len: usize) -> Result<(), NegotiationError> {
    let reason = if !id.starts_with('/') {
        "does not start with '/'"
    } else if id.contains('\n') {
        "contains a newline"
    } else if id == PROTOCOL_ID {
        "is the multistream-select header"
    } else if id.len() + 1 > max_len {
        "is longer than the maximum message length"
    } else {
        return Ok(());
    };
    Err(NegotiationError::InvalidProtocolId {
        id: id.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn na_is_the_spec_example() {
        let mut out = Vec::new();
        Message::Na.encode(&mut out);
        assert_eq!(out, [0x03, 0x6e, 0x61, 0x0a]);
    }

    #[test]
    fn ls_and_header_bytes() {
        let mut out = Vec::new();
        Message::Ls.encode(&mut out);
        assert_eq!(out, [0x03, 0x6c, 0x73, 0x0a]);
        out.clear();
        Message::Header.encode(&mut out);
        assert_eq!(out[0], 0x13);
        assert_eq!(&out[1..], b"/multistream/1.0.0\n");
    }

    #[test]
    fn decode_reports_incomplete_then_complete() {
        let bytes = [0x03, 0x6e, 0x61, 0x0a, 0xff];
        for end in 0..4 {
            assert!(decode(&bytes[..end], 1024).unwrap().is_none());
        }
        assert_eq!(decode(&bytes, 1024).unwrap(), Some((Message::Na, 4)));
    }

    #[test]
    fn decode_rejects_bad_frames() {
        // Non-minimal varint for 3.
        assert!(matches!(
            decode(&[0x83, 0x00, b'n', b'a', b'\n'], 1024),
            Err(NegotiationError::InvalidMessage(_))
        ));
        // Missing newline.
        assert!(matches!(
            decode(&[0x03, b'n', b'a', b'x'], 1024),
            Err(NegotiationError::InvalidMessage(_))
        ));
        // Not UTF-8.
        assert!(matches!(
            decode(&[0x03, 0xc3, 0x28, b'\n'], 1024),
            Err(NegotiationError::InvalidMessage(_))
        ));
        // Zero length.
        assert!(matches!(
            decode(&[0x00], 1024),
            Err(NegotiationError::InvalidMessage(_))
        ));
        // Inner newline.
        assert!(matches!(
            decode(&[0x03, b'a', b'\n', b'\n'], 1024),
            Err(NegotiationError::InvalidMessage(_))
        ));
        // 1025 announced.
        assert!(matches!(
            decode(&[0x81, 0x08], 1024),
            Err(NegotiationError::MessageTooLong {
                len: 1025,
                max: 1024
            })
        ));
        // Three continuation bytes can never be <= 1024, even before the end arrives.
        assert!(matches!(
            decode(&[0x80, 0x80], 1024),
            Err(NegotiationError::MessageTooLong { .. })
        ));
        assert!(decode(&[0x80], 1024).unwrap().is_none());
    }

    #[test]
    fn ls_response_is_bounded() {
        let ids = ["/a", "/bb", "/ccc"];
        let mut out = Vec::new();
        assert_eq!(encode_ls_response(&ids, 1024, &mut out), 3);
        assert_eq!(out, b"\x10\x03/a\n\x04/bb\n\x05/ccc\n\n");
        out.clear();
        // Room for "/a" and "/bb" entries (4 + 5) plus the final newline: 10.
        assert_eq!(encode_ls_response(&ids, 10, &mut out), 2);
        assert_eq!(out, b"\x0a\x03/a\n\x04/bb\n\n");
    }

    #[test]
    fn protocol_id_rules() {
        assert!(validate_protocol_id("/noise", 1024).is_ok());
        assert!(validate_protocol_id("noise", 1024).is_err());
        assert!(validate_protocol_id("/a\nb", 1024).is_err());
        assert!(validate_protocol_id(PROTOCOL_ID, 1024).is_err());
        let long = format!("/{}", "x".repeat(1023));
        assert!(validate_protocol_id(&long, 1024).is_err());
        assert!(validate_protocol_id(&long[..1023], 1024).is_ok());
    }
}
