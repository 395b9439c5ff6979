//! A whole NBD conversation on untrusted bytes: the server's handshake and request
//! handling, fed whatever a client might send.
//!
//! The input is what the client sends, at once, over a socket pair
//! (`raidkit_nbd::testing::converse`: one worker, a 1 MiB export in memory, a 64 KiB
//! maximum payload); the server answers until the client's side ends. It must never
//! panic, never hang and never read or write outside its export (the memory export would
//! panic on such a range).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = raidkit_nbd::testing::converse(data);
});
