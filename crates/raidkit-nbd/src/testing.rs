//! For tests and fuzzing: an export in memory, and a whole conversation with a server over
//! a socket pair.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Export, ExportError, Server, ServerOptions};

/// An export in memory, as large as the vector it holds. The server checks every range
/// before it reaches an export, so this one indexes without checks: a range the server
/// let through wrongly panics here.
pub struct MemoryExport(pub Mutex<Vec<u8>>);

impl Export for MemoryExport {
    fn size(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }
    fn read_only(&self) -> bool {
        false
    }
    fn preferred_block(&self) -> u32 {
        4096
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ExportError> {
        let data = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buf.copy_from_slice(&data[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), ExportError> {
        let mut data = self.0.lock().unwrap_or_else(|e| e.into_inner());
        data[offset as usize..offset as usize + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> Result<(), ExportError> {
        Ok(())
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), ExportError> {
        let mut data = self.0.lock().unwrap_or_else(|e| e.into_inner());
        data[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }
    fn discard(&self, offset: u64, len: u64) -> Result<(), ExportError> {
        self.write_zeroes(offset, len)
    }
}

/// Feeds `bytes` to a server of a 1 MiB [`MemoryExport`] as one client would send them
/// (then ends its side), reads whatever the server answers until it hangs up, and returns
/// that. One worker, so requests run in the order sent and a conversation has one right
/// answer; a 64 KiB maximum payload and a 2 s handshake limit.
pub fn converse(bytes: &[u8]) -> Vec<u8> {
    let server = Server::new(
        Arc::new(MemoryExport(Mutex::new(vec![0u8; 1 << 20]))),
        ServerOptions {
            workers: 1,
            max_payload: 64 << 10,
            handshake_timeout: Duration::from_secs(2),
            ..ServerOptions::default()
        },
    );
    let (client, end) = UnixStream::pair().expect("a socket pair");
    let mut writer = client.try_clone().expect("a second handle");
    let input = bytes.to_vec();
    let feeding = std::thread::spawn(move || {
        let _ = writer.write_all(&input);
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut reader = client;
    let reading = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    });
    let _ = server.serve_stream(end);
    let _ = feeding.join();
    reading.join().unwrap_or_default()
}
