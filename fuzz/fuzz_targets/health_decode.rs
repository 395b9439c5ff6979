//! Health-record decoding on untrusted bytes.
//!
//! Assemble reads every member's health record (`docs/format.md` §19) straight off the
//! disk, so `HealthRecord::decode` must answer for every input and never panic. The first
//! input byte picks a mode:
//!
//! - even: the remaining bytes are decoded as they are (stopped by the length, the magic,
//!   the array UUID or the CRC);
//! - odd: the bytes are padded or cut to the record's size, and the magic, the array UUID
//!   and a correct CRC are written in, so that the checks behind them (the entry count,
//!   each path's length and UTF-8) are reached.
//!
//! Whatever the decoder accepts must encode to bytes that decode to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raidkit::format::{HEALTH_MAGIC, HEALTH_SIZE, HealthRecord};

const ARRAY: [u8; 16] = [3; 16];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        bytes.resize(HEALTH_SIZE, 0);
        bytes[..8].copy_from_slice(&HEALTH_MAGIC);
        bytes[8..24].copy_from_slice(&ARRAY);
        let crc = crc32fast::hash(&bytes[..HEALTH_SIZE - 4]);
        bytes[HEALTH_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(Some(record)) = HealthRecord::decode(&bytes, &ARRAY) {
        let again = HealthRecord::decode(&record.encode(&ARRAY), &ARRAY)
            .expect("an encoded record decodes")
            .expect("of the same array");
        assert_eq!(again, record);
    }
});
