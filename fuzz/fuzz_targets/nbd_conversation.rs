//! A whole NBD conversation on untrusted bytes: the server's handshake and request
//! handling, fed whatever a client might send.
//!
//! The input is what the client sends, at once, over a socket pair; the server (one
//! worker, a 1 MiB export in memory, a 64 KiB maximum payload) answers until the client's
//! side ends. It must never panic, never hang and never read or write outside its export.

#![no_main]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use raidkit_nbd::{Export, ExportError, Server, ServerOptions};

struct Memory(Mutex<Vec<u8>>);

impl Export for Memory {
    fn size(&self) -> u64 {
        self.0.lock().unwrap().len() as u64
    }
    fn read_only(&self) -> bool {
        false
    }
    fn preferred_block(&self) -> u32 {
        4096
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ExportError> {
        let data = self.0.lock().unwrap();
        buf.copy_from_slice(&data[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), ExportError> {
        let mut data = self.0.lock().unwrap();
        data[offset as usize..offset as usize + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> Result<(), ExportError> {
        Ok(())
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), ExportError> {
        let mut data = self.0.lock().unwrap();
        data[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }
    fn discard(&self, offset: u64, len: u64) -> Result<(), ExportError> {
        self.write_zeroes(offset, len)
    }
}

fuzz_target!(|data: &[u8]| {
    let server = Server::new(
        Arc::new(Memory(Mutex::new(vec![0u8; 1 << 20]))),
        ServerOptions {
            workers: 1,
            max_payload: 64 << 10,
            handshake_timeout: Duration::from_secs(2),
            ..ServerOptions::default()
        },
    );
    let (client, end) = UnixStream::pair().unwrap();
    let mut writer = client.try_clone().unwrap();
    let input = data.to_vec();
    let feeding = std::thread::spawn(move || {
        let _ = writer.write_all(&input);
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut reader = client;
    let reading = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
    });
    let _ = server.serve_stream(end);
    feeding.join().unwrap();
    reading.join().unwrap();
});
