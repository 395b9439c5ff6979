//! The NBD wire format (the protocol's `proto.md`): the constants, and codecs for the
//! pieces a server reads and writes. Parsing never trusts a length: every function takes
//! the bytes it was given and says what is wrong with them.
//!
//! Owns bytes on the wire; must not do I/O or keep state (the server does).

/// The server's first eight bytes: "NBDMAGIC".
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// Newstyle negotiation ("IHAVEOPT"), also the magic of every option the client sends.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// The magic of every option reply.
pub const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// The magic of every request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// The magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// The magic of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Handshake flags (server): fixed newstyle.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flags (server): no 124 bytes of zeroes after `NBD_OPT_EXPORT_NAME`.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flags: the client speaks fixed newstyle.
pub const CLIENT_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flags: the client wants no zeroes after `NBD_OPT_EXPORT_NAME`.
pub const CLIENT_NO_ZEROES: u32 = 1 << 1;

/// Option codes (`NBD_OPT_*`).
pub mod opt {
    /// Choose an export by name and start transmission (no reply header).
    pub const EXPORT_NAME: u32 = 1;
    /// End the negotiation.
    pub const ABORT: u32 = 2;
    /// List the exports.
    pub const LIST: u32 = 3;
    /// TLS (not offered).
    pub const STARTTLS: u32 = 5;
    /// Describe an export.
    pub const INFO: u32 = 6;
    /// Describe an export and start transmission.
    pub const GO: u32 = 7;
    /// Use structured replies.
    pub const STRUCTURED_REPLY: u32 = 8;
}

/// Option reply types (`NBD_REP_*`).
pub mod rep {
    /// Done.
    pub const ACK: u32 = 1;
    /// One export in a list.
    pub const SERVER: u32 = 2;
    /// One piece of information about an export.
    pub const INFO: u32 = 3;
    /// Error bit.
    pub const ERR: u32 = 1 << 31;
    /// The option is not supported.
    pub const ERR_UNSUP: u32 = ERR + 1;
    /// The option is not valid as sent.
    pub const ERR_INVALID: u32 = ERR + 3;
    /// No such export.
    pub const ERR_UNKNOWN: u32 = ERR + 6;
    /// The server is shutting down.
    pub const ERR_SHUTDOWN: u32 = ERR + 7;
    /// The option's data is too large.
    pub const ERR_TOO_BIG: u32 = ERR + 9;
}

/// Information types in `NBD_REP_INFO` (`NBD_INFO_*`).
pub mod info {
    /// Size and transmission flags.
    pub const EXPORT: u16 = 0;
    /// The export's name.
    pub const NAME: u16 = 1;
    /// A description.
    pub const DESCRIPTION: u16 = 2;
    /// Block-size constraints.
    pub const BLOCK_SIZE: u16 = 3;
}

/// Transmission flags (`NBD_FLAG_*`).
pub mod tflag {
    /// Always set.
    pub const HAS_FLAGS: u16 = 1 << 0;
    /// The export refuses writes.
    pub const READ_ONLY: u16 = 1 << 1;
    /// `NBD_CMD_FLUSH` is supported.
    pub const SEND_FLUSH: u16 = 1 << 2;
    /// `NBD_CMD_FLAG_FUA` is supported.
    pub const SEND_FUA: u16 = 1 << 3;
    /// `NBD_CMD_TRIM` is supported.
    pub const SEND_TRIM: u16 = 1 << 5;
    /// `NBD_CMD_WRITE_ZEROES` is supported.
    pub const SEND_WRITE_ZEROES: u16 = 1 << 6;
    /// A flush on one connection covers writes completed on every connection.
    pub const CAN_MULTI_CONN: u16 = 1 << 8;
}

/// Command types (`NBD_CMD_*`).
pub mod cmd {
    /// Read.
    pub const READ: u16 = 0;
    /// Write (with a payload).
    pub const WRITE: u16 = 1;
    /// Disconnect.
    pub const DISC: u16 = 2;
    /// Flush.
    pub const FLUSH: u16 = 3;
    /// Discard.
    pub const TRIM: u16 = 4;
    /// Write zeroes.
    pub const WRITE_ZEROES: u16 = 6;
}

/// Command flags (`NBD_CMD_FLAG_*`).
pub mod cflag {
    /// Force unit access: durable before the reply.
    pub const FUA: u16 = 1 << 0;
    /// For write-zeroes: do not punch a hole.
    pub const NO_HOLE: u16 = 1 << 1;
    /// For reads: do not fragment the reply.
    pub const DF: u16 = 1 << 2;
}

/// Structured reply chunk types and flags.
pub mod chunk {
    /// The last chunk of a reply.
    pub const FLAG_DONE: u16 = 1 << 0;
    /// No payload.
    pub const NONE: u16 = 0;
    /// Data at an offset.
    pub const OFFSET_DATA: u16 = 1;
    /// An error for a range.
    pub const ERROR_OFFSET: u16 = (1 << 15) + 2;
}

/// Error values on the wire (the protocol's fixed numbers, not the host's errno).
pub mod errno {
    /// Not permitted (a write to a read-only export).
    pub const EPERM: u32 = 1;
    /// I/O error.
    pub const EIO: u32 = 5;
    /// Out of memory.
    pub const ENOMEM: u32 = 12;
    /// Invalid request.
    pub const EINVAL: u32 = 22;
    /// No space (a write past the end).
    pub const ENOSPC: u32 = 28;
    /// The request is too large.
    pub const EOVERFLOW: u32 = 75;
    /// Not supported.
    pub const ENOTSUP: u32 = 95;
    /// The server is shutting down.
    pub const ESHUTDOWN: u32 = 108;
}

/// What is wrong with bytes a client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A magic number that is not the protocol's.
    #[error("bad magic {found:#x} (expected {expected:#x})")]
    BadMagic {
        /// What was found.
        found: u64,
        /// What the protocol wants there.
        expected: u64,
    },
    /// Fewer bytes than the structure needs.
    #[error("truncated: {what} needs {needed} bytes, got {got}")]
    Truncated {
        /// The structure.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// More bytes than the structure says it has.
    #[error("{what}: {extra} bytes past its end")]
    Trailing {
        /// The structure.
        what: &'static str,
        /// Bytes left over.
        extra: usize,
    },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// The server's greeting: magic, newstyle, handshake flags.
pub fn greeting() -> [u8; 18] {
    let mut b = [0u8; 18];
    b[..8].copy_from_slice(&NBDMAGIC.to_be_bytes());
    b[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    b[16..].copy_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    b
}

/// An option's header: which option and how many bytes of data follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    /// The option code ([`opt`]).
    pub option: u32,
    /// Bytes of data that follow.
    pub length: u32,
}

/// Parses the 16 bytes that start every option.
pub fn parse_option_header(b: &[u8; 16]) -> Result<OptionHeader, ProtoError> {
    let magic = u64_at(b, 0);
    if magic != IHAVEOPT {
        return Err(ProtoError::BadMagic {
            found: magic,
            expected: IHAVEOPT,
        });
    }
    Ok(OptionHeader {
        option: u32_at(b, 8),
        length: u32_at(b, 12),
    })
}

/// The data of `NBD_OPT_INFO` and `NBD_OPT_GO`: an export name and the information
/// types asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest {
    /// The export's name (bytes as sent; empty: the default export).
    pub name: Vec<u8>,
    /// The `NBD_INFO_*` types asked for.
    pub infos: Vec<u16>,
}

/// Parses the data of `NBD_OPT_INFO` / `NBD_OPT_GO`.
pub fn parse_info_request(data: &[u8]) -> Result<InfoRequest, ProtoError> {
    let what = "NBD_OPT_GO data";
    let short = |needed| ProtoError::Truncated {
        what,
        needed,
        got: data.len(),
    };
    if data.len() < 4 {
        return Err(short(4));
    }
    let name_len = u32_at(data, 0) as usize;
    let after_name = 4usize.checked_add(name_len).ok_or(short(usize::MAX))?;
    let count_end = after_name.checked_add(2).ok_or(short(usize::MAX))?;
    if data.len() < count_end {
        return Err(short(count_end));
    }
    let name = data[4..after_name].to_vec();
    let count = u16_at(data, after_name) as usize;
    let end = count_end + 2 * count;
    if data.len() < end {
        return Err(short(end));
    }
    if data.len() > end {
        return Err(ProtoError::Trailing {
            what,
            extra: data.len() - end,
        });
    }
    let infos = (0..count)
        .map(|i| u16_at(data, count_end + 2 * i))
        .collect();
    Ok(InfoRequest { name, infos })
}

/// An option reply: header and data.
pub fn option_reply(option: u32, reply: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(20 + data.len());
    b.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    b.extend_from_slice(&option.to_be_bytes());
    b.extend_from_slice(&reply.to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

/// `NBD_INFO_EXPORT`: size and transmission flags.
pub fn info_export(size: u64, flags: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(12);
    b.extend_from_slice(&info::EXPORT.to_be_bytes());
    b.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(&flags.to_be_bytes());
    b
}

/// `NBD_INFO_BLOCK_SIZE`: minimum, preferred and maximum block sizes.
pub fn info_block_size(min: u32, preferred: u32, max: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(14);
    b.extend_from_slice(&info::BLOCK_SIZE.to_be_bytes());
    for v in [min, preferred, max] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b
}

/// `NBD_INFO_NAME` or `NBD_INFO_DESCRIPTION`: a string.
pub fn info_text(kind: u16, text: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + text.len());
    b.extend_from_slice(&kind.to_be_bytes());
    b.extend_from_slice(text.as_bytes());
    b
}

/// The reply to `NBD_OPT_EXPORT_NAME`: size, flags, and 124 zeroes unless the client
/// asked for none.
pub fn export_name_reply(size: u64, flags: u16, zeroes: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(134);
    b.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(&flags.to_be_bytes());
    if zeroes {
        b.extend_from_slice(&[0u8; 124]);
    }
    b
}

/// One request's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags ([`cflag`]).
    pub flags: u16,
    /// Command type ([`cmd`]).
    pub kind: u16,
    /// The client's cookie, echoed in the reply.
    pub cookie: u64,
    /// Byte offset in the export.
    pub offset: u64,
    /// Bytes.
    pub length: u32,
}

/// Bytes in a request header.
pub const REQUEST_SIZE: usize = 28;

/// Parses a request header.
pub fn parse_request(b: &[u8; REQUEST_SIZE]) -> Result<Request, ProtoError> {
    let magic = u32_at(b, 0);
    if magic != REQUEST_MAGIC {
        return Err(ProtoError::BadMagic {
            found: u64::from(magic),
            expected: u64::from(REQUEST_MAGIC),
        });
    }
    Ok(Request {
        flags: u16_at(b, 4),
        kind: u16_at(b, 6),
        cookie: u64_at(b, 8),
        offset: u64_at(b, 16),
        length: u32_at(b, 24),
    })
}

/// Encodes a request header (for clients and tests).
pub fn encode_request(r: &Request) -> [u8; REQUEST_SIZE] {
    let mut b = [0u8; REQUEST_SIZE];
    b[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    b[4..6].copy_from_slice(&r.flags.to_be_bytes());
    b[6..8].copy_from_slice(&r.kind.to_be_bytes());
    b[8..16].copy_from_slice(&r.cookie.to_be_bytes());
    b[16..24].copy_from_slice(&r.offset.to_be_bytes());
    b[24..].copy_from_slice(&r.length.to_be_bytes());
    b
}

/// A simple reply's header (data follows for a successful simple read).
pub fn simple_reply(cookie: u64, error: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&error.to_be_bytes());
    b[8..].copy_from_slice(&cookie.to_be_bytes());
    b
}

/// A structured reply chunk's header; `length` bytes of payload follow.
pub fn chunk_header(flags: u16, kind: u16, cookie: u64, length: u32) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    b[4..6].copy_from_slice(&flags.to_be_bytes());
    b[6..8].copy_from_slice(&kind.to_be_bytes());
    b[8..16].copy_from_slice(&cookie.to_be_bytes());
    b[16..].copy_from_slice(&length.to_be_bytes());
    b
}

/// An `NBD_REPLY_TYPE_ERROR_OFFSET` chunk: the error, a message, the offset it concerns.
pub fn error_offset_chunk(
    flags: u16,
    cookie: u64,
    error: u32,
    message: &str,
    offset: u64,
) -> Vec<u8> {
    let message = &message.as_bytes()[..message.len().min(4096)];
    let payload = 4 + 2 + message.len() + 8;
    let mut b = Vec::with_capacity(20 + payload);
    b.extend_from_slice(&chunk_header(
        flags,
        chunk::ERROR_OFFSET,
        cookie,
        payload as u32,
    ));
    b.extend_from_slice(&error.to_be_bytes());
    b.extend_from_slice(&(message.len() as u16).to_be_bytes());
    b.extend_from_slice(message);
    b.extend_from_slice(&offset.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn greeting_and_replies_are_the_documented_bytes() {
        let g = greeting();
        assert_eq!(&g[..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(&g[16..], &[0, 3]);
        let r = option_reply(opt::GO, rep::ACK, &[]);
        assert_eq!(
            r,
            [
                0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0
            ]
        );
        assert_eq!(
            simple_reply(0x0102030405060708, errno::EIO),
            [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        let c = error_offset_chunk(chunk::FLAG_DONE, 9, errno::EIO, "bad", 4096);
        assert_eq!(&c[..4], &[0x66, 0x8e, 0x33, 0xef]);
        assert_eq!(u16_at(&c, 6), chunk::ERROR_OFFSET);
        assert_eq!(u32_at(&c, 16) as usize, c.len() - 20);
        assert_eq!(u64_at(&c, c.len() - 8), 4096);
        assert_eq!(export_name_reply(5, 1, true).len(), 134);
        assert_eq!(export_name_reply(5, 1, false).len(), 10);
    }

    #[test]
    fn bad_magic_and_short_option_data_are_errors() {
        let mut h = [0u8; 16];
        assert!(matches!(
            parse_option_header(&h),
            Err(ProtoError::BadMagic { .. })
        ));
        h[..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        h[11] = 7;
        h[15] = 6;
        assert_eq!(
            parse_option_header(&h).unwrap(),
            OptionHeader {
                option: 7,
                length: 6
            }
        );
        assert!(parse_info_request(&[0, 0, 0]).is_err());
        assert!(parse_info_request(&[0xff, 0xff, 0xff, 0xff, 0, 0]).is_err());
        assert!(parse_info_request(&[0, 0, 0, 0, 0, 1]).is_err());
        assert!(parse_info_request(&[0, 0, 0, 0, 0, 0, 9]).is_err());
        assert_eq!(
            parse_info_request(&[0, 0, 0, 1, b'x', 0, 1, 0, 3]).unwrap(),
            InfoRequest {
                name: b"x".to_vec(),
                infos: vec![3]
            }
        );
        assert!(parse_request(&[0u8; REQUEST_SIZE]).is_err());
    }

    proptest! {
        /// Any bytes: parsers return, never panic, and a parsed request re-encodes to
        /// the same bytes.
        #[test]
        fn parsers_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_info_request(&bytes);
            if bytes.len() >= REQUEST_SIZE {
                let header: [u8; REQUEST_SIZE] = bytes[..REQUEST_SIZE].try_into().unwrap();
                if let Ok(r) = parse_request(&header) {
                    prop_assert_eq!(encode_request(&r), header);
                }
            }
        }

        #[test]
        fn info_requests_round_trip(name in proptest::collection::vec(any::<u8>(), 0..40),
                                    infos in proptest::collection::vec(any::<u16>(), 0..8)) {
            let mut b = (name.len() as u32).to_be_bytes().to_vec();
            b.extend_from_slice(&name);
            b.extend_from_slice(&(infos.len() as u16).to_be_bytes());
            for i in &infos {
                b.extend_from_slice(&i.to_be_bytes());
            }
            prop_assert_eq!(parse_info_request(&b).unwrap(), InfoRequest { name, infos });
        }
    }
}
