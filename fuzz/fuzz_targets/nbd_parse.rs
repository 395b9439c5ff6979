//! The NBD server's parsers on untrusted bytes.
//!
//! Everything a client sends reaches these: the 16-byte option header, the data of
//! `NBD_OPT_INFO`/`NBD_OPT_GO`, and the 28-byte request header. They must answer for every
//! input and never panic. The first byte picks which parser gets the rest; a request that
//! parses must encode back to the same bytes, and an info request that parses must account
//! for every byte it was given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raidkit_nbd::proto;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(header) = <[u8; 16]>::try_from(rest.get(..16).unwrap_or(&[])) {
                let _ = proto::parse_option_header(&header);
            }
        }
        1 => {
            if let Ok(request) = proto::parse_info_request(rest) {
                assert_eq!(4 + request.name.len() + 2 + 2 * request.infos.len(), rest.len());
            }
        }
        _ => {
            if let Ok(header) = <[u8; proto::REQUEST_SIZE]>::try_from(
                rest.get(..proto::REQUEST_SIZE).unwrap_or(&[]),
            ) && let Ok(request) = proto::parse_request(&header)
            {
                assert_eq!(proto::encode_request(&request), header);
            }
        }
    }
});
