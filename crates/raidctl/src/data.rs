//! `raidctl write` and `raidctl read`: data in and out of the array.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use raidkit::disk::AlignedBuf;

use crate::members::Members;
use crate::size::parse_size;

/// Bytes moved per array request.
const PIECE: usize = 8 << 20;

#[derive(Args, Debug)]
pub struct WriteArgs {
    /// Array offset to write at (bytes; K, M, G, T suffixes).
    #[arg(long, value_parser = parse_size, default_value = "0")]
    offset: usize,
    /// Read the data from this file instead of standard input.
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    members: Members,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Array offset to read from (bytes; K, M, G, T suffixes).
    #[arg(long, value_parser = parse_size, default_value = "0")]
    offset: usize,
    /// Bytes to read (default: to the end of the array).
    #[arg(long, value_parser = parse_size)]
    length: Option<usize>,
    /// Write the data to this file instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    members: Members,
}

fn past_end(what: &str, offset: u64, len: u64, size: u64) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} of {len} bytes at offset {offset} is past the end of the array ({size} bytes); nothing was {}",
        if what == "write" { "written" } else { "read" }
    )
}

pub fn write(args: WriteArgs) -> Result<()> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return crate::control::exit_with(outcome);
    }
    let offset = args.offset as u64;
    // Check the input before anything touches the array.
    let mut input: Box<dyn Read> = match &args.input {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("{}: cannot open", path.display()))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
    // A regular file's length is known up front; anything else (a pipe, a device) is read
    // like standard input.
    let input_len = match &args.input {
        Some(path) => {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("{}: cannot open", path.display()))?;
            if meta.is_dir() {
                bail!("{}: is a directory, not an input file", path.display());
            }
            meta.is_file().then_some(meta.len())
        }
        None => None,
    };
    let source = match &args.input {
        Some(path) => path.display().to_string(),
        None => "standard input".to_string(),
    };
    let array = args.members.open()?;
    let size = array.len();
    if offset > size {
        bail!(past_end("write", offset, input_len.unwrap_or(0), size));
    }
    let room = size - offset;
    let mut written = 0u64;
    // Pieces end on stripe boundaries of the array, so no 4 KiB block is split between two
    // writes (a kill between them would leave it half old, half new).
    let stripe = array.layout().stripe_data();
    let piece_at = |at: u64| piece_len(at, stripe);
    match input_len {
        Some(len) if len > room => bail!(past_end("write", offset, len, size)),
        Some(_) => {
            let mut buf = AlignedBuf::new(PIECE);
            loop {
                let want = piece_at(offset + written);
                let n = read_full(&mut input, &mut buf[..want])?;
                if n == 0 {
                    break;
                }
                array.write_at(&buf[..n], offset + written)?;
                written += n as u64;
            }
        }
        None => {
            // Standard input, a pipe or a device: read it all (up to the room left, plus one byte to notice
            // more) before writing, so too much input changes nothing.
            let mut data = Vec::new();
            input
                .take(room + 1)
                .read_to_end(&mut data)
                .with_context(|| format!("reading {source}"))?;
            if data.len() as u64 > room {
                bail!(
                    "{source} is longer than the {room} bytes from offset {offset} to the end of the array; nothing was written"
                );
            }
            while (written as usize) < data.len() {
                let n = piece_at(offset + written).min(data.len() - written as usize);
                array.write_at(&data[written as usize..][..n], offset + written)?;
                written += n as u64;
            }
        }
    }
    array.flush()?;
    crate::members::close(array)?;
    eprintln!("raidctl: wrote {written} bytes at offset {offset}");
    Ok(())
}

/// Bytes of the write piece that starts at array offset `at`: up to [`PIECE`], ending on a
/// stripe boundary (or, for stripes larger than a piece, on a 4 KiB block boundary).
fn piece_len(at: u64, stripe: u64) -> usize {
    let reach = at + PIECE as u64;
    let end = match reach / stripe * stripe {
        end if end > at => end,
        _ => reach / 4096 * 4096,
    };
    (end - at) as usize
}

fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the input"),
        }
    }
    Ok(filled)
}

pub fn read(args: ReadArgs) -> Result<()> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return crate::control::exit_with(outcome);
    }
    let array = args.members.open_read_only()?;
    let size = array.len();
    let offset = args.offset as u64;
    let length = match args.length {
        Some(len) => len as u64,
        None => size.saturating_sub(offset),
    };
    if offset.checked_add(length).is_none_or(|end| end > size) {
        bail!(past_end("read", offset, length, size));
    }
    let mut output: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("{}: cannot create", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut buf = AlignedBuf::new(PIECE);
    let mut done = 0u64;
    while done < length {
        let n = (length - done).min(PIECE as u64) as usize;
        array.read_at(&mut buf[..n], offset + done)?;
        match output.write_all(&buf[..n]) {
            // The reader went away (`raidctl read ... | head`): not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("writing the output")?,
        }
        done += n as u64;
    }
    match output.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other.context("writing the output")?,
    }
    crate::members::close(array)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_end_on_stripe_or_block_boundaries() {
        for stripe in [12288u64, 3 << 16, 7 << 19, 64 << 20] {
            for start in [0u64, 1, 4095, 4096, 100_000, (8 << 20) + 17] {
                let mut at = start;
                for _ in 0..5 {
                    let n = piece_len(at, stripe);
                    assert!(n > 0 && n <= PIECE, "{stripe} {start}: {n}");
                    let end = at + n as u64;
                    assert_eq!(end % 4096, 0, "{stripe} {start}");
                    if stripe <= PIECE as u64 {
                        assert_eq!(end % stripe, 0, "{stripe} {start}");
                    }
                    at = end;
                }
            }
        }
    }
}
