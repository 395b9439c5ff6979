//! The health record (`docs/format.md` §19): what the array has been through, kept on
//! every member so that it outlives the process that saw it — per member its error counts,
//! repairs and the path it was last opened at; the last scrub and the last rebuild.

use super::*;

/// Member offset of the health record, in the space below the journal that no build
/// wrote before it (an older build neither reads nor writes it, so it needs no new minor:
/// an array such a build wrote last keeps the counts recorded before).
pub const HEALTH_OFFSET: u64 = 128 << 10;
/// Bytes of the health record.
pub const HEALTH_SIZE: usize = 64 << 10;
/// The health record's magic number.
pub const HEALTH_MAGIC: [u8; 8] = *b"RKHEALTH";
/// Bytes of the header, before the member entries.
pub const HEALTH_HEADER: usize = 512;
/// Bytes per member entry.
pub const HEALTH_ENTRY: usize = 256;
/// The most member entries a record holds.
pub const HEALTH_MAX_ENTRIES: usize = (HEALTH_SIZE - HEALTH_HEADER - 4) / HEALTH_ENTRY;
/// The most bytes of a path an entry holds (a longer path keeps its end, after `...`).
pub const HEALTH_PATH_MAX: usize = HEALTH_ENTRY - health_at::ENTRY_PATH;

/// Byte offsets of the health record's fields.
pub mod health_at {
    /// Magic number, 8 bytes.
    pub const MAGIC: usize = 0;
    /// The array's UUID, 16 bytes.
    pub const ARRAY_UUID: usize = 8;
    /// Generation: one more at every write (the newest copy wins), LE u64.
    pub const GENERATION: usize = 24;
    /// Member entries, LE u32.
    pub const COUNT: usize = 32;
    /// Last scrub: when it ended (Unix seconds; 0 = none recorded), LE u64.
    pub const SCRUB_ENDED: usize = 40;
    /// Last scrub: blocks found damaged, LE u64.
    pub const SCRUB_FOUND: usize = 48;
    /// Last scrub: blocks repaired, LE u64.
    pub const SCRUB_REPAIRED: usize = 56;
    /// Last scrub: array ranges that could not be recovered, LE u64.
    pub const SCRUB_UNRECOVERABLE: usize = 64;
    /// Last scrub: bit 0 it repaired, bit 1 it was cancelled before the end, LE u32.
    pub const SCRUB_FLAGS: usize = 72;
    /// Last rebuild: when it ended (Unix seconds; 0 = none recorded), LE u64.
    pub const REBUILD_ENDED: usize = 80;
    /// Last rebuild: the role, LE u32.
    pub const REBUILD_ROLE: usize = 88;
    /// Last rebuild: bit 0 a hot replace, bit 1 cancelled before the end, LE u32.
    pub const REBUILD_FLAGS: usize = 92;
    /// Last rebuild: bytes copied, LE u64.
    pub const REBUILD_BYTES: usize = 96;
    /// Last rebuild: bytes that could not be recovered, LE u64.
    pub const REBUILD_LOST: usize = 104;
    /// Entry: the member's UUID, 16 bytes.
    pub const ENTRY_UUID: usize = 0;
    /// Entry: read errors, LE u64.
    pub const ENTRY_READ: usize = 16;
    /// Entry: write errors, LE u64.
    pub const ENTRY_WRITE: usize = 24;
    /// Entry: checksum errors, LE u64.
    pub const ENTRY_CHECKSUM: usize = 32;
    /// Entry: blocks repaired, LE u64.
    pub const ENTRY_REPAIRED: usize = 40;
    /// Entry: bytes of the path, LE u16.
    pub const ENTRY_PATH_LEN: usize = 48;
    /// Entry: the path it was last opened at, UTF-8.
    pub const ENTRY_PATH: usize = 50;
}

/// A member's error counts over its life in the array.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Blocks that could not be read (`EIO`).
    pub read_errors: u64,
    /// Failed writes and flushes.
    pub write_errors: u64,
    /// Blocks whose checksum did not match.
    pub checksum_errors: u64,
    /// Blocks rewritten from redundancy.
    pub repaired: u64,
}

impl ErrorCounts {
    /// The sum of two counts (saturating).
    pub fn plus(self, other: ErrorCounts) -> ErrorCounts {
        ErrorCounts {
            read_errors: self.read_errors.saturating_add(other.read_errors),
            write_errors: self.write_errors.saturating_add(other.write_errors),
            checksum_errors: self.checksum_errors.saturating_add(other.checksum_errors),
            repaired: self.repaired.saturating_add(other.repaired),
        }
    }

    /// Whether every count is zero.
    pub fn is_zero(&self) -> bool {
        *self == ErrorCounts::default()
    }
}

/// One member's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthEntry {
    /// The member's UUID.
    pub uuid: [u8; 16],
    /// Its counts.
    pub counts: ErrorCounts,
    /// The path it was last opened at (empty: never recorded).
    pub path: String,
}

/// The last scrub's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubRecord {
    /// When it ended, Unix seconds.
    pub ended: u64,
    /// Blocks found damaged.
    pub found: u64,
    /// Blocks repaired.
    pub repaired: u64,
    /// Array ranges that could not be recovered.
    pub unrecoverable: u64,
    /// Whether it repaired.
    pub repair: bool,
    /// Whether it was cancelled before the end.
    pub cancelled: bool,
}

/// The last rebuild's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildRecord {
    /// When it ended, Unix seconds.
    pub ended: u64,
    /// The role rebuilt.
    pub role: u32,
    /// Whether it was a hot replace.
    pub replace: bool,
    /// Whether it was cancelled before the end.
    pub cancelled: bool,
    /// Bytes copied.
    pub bytes: u64,
    /// Bytes that could not be recovered.
    pub lost: u64,
}

/// The health record: [`HEALTH_SIZE`] bytes at [`HEALTH_OFFSET`], the same on every member
/// (the copy with the highest generation wins). A record of another array, or none, reads
/// as `None`: the counts start from zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthRecord {
    /// One more at every write.
    pub generation: u64,
    /// The last scrub (`None`: none recorded).
    pub scrub: Option<ScrubRecord>,
    /// The last rebuild (`None`: none recorded).
    pub rebuild: Option<RebuildRecord>,
    /// Member entries (at most [`HEALTH_MAX_ENTRIES`]; more are not recorded).
    pub members: Vec<HealthEntry>,
}

impl HealthRecord {
    /// The entry of member `uuid`.
    pub fn entry(&self, uuid: &[u8; 16]) -> Option<&HealthEntry> {
        self.members.iter().find(|e| &e.uuid == uuid)
    }

    /// Encodes the record of array `array_uuid`: [`HEALTH_SIZE`] bytes.
    pub fn encode(&self, array_uuid: &[u8; 16]) -> Vec<u8> {
        let mut b = vec![0u8; HEALTH_SIZE];
        put(&mut b, health_at::MAGIC, &HEALTH_MAGIC);
        put(&mut b, health_at::ARRAY_UUID, array_uuid);
        put(
            &mut b,
            health_at::GENERATION,
            &self.generation.to_le_bytes(),
        );
        let entries = &self.members[..self.members.len().min(HEALTH_MAX_ENTRIES)];
        put(
            &mut b,
            health_at::COUNT,
            &(entries.len() as u32).to_le_bytes(),
        );
        if let Some(s) = self.scrub {
            put(&mut b, health_at::SCRUB_ENDED, &s.ended.to_le_bytes());
            put(&mut b, health_at::SCRUB_FOUND, &s.found.to_le_bytes());
            put(&mut b, health_at::SCRUB_REPAIRED, &s.repaired.to_le_bytes());
            put(
                &mut b,
                health_at::SCRUB_UNRECOVERABLE,
                &s.unrecoverable.to_le_bytes(),
            );
            let flags = u32::from(s.repair) | u32::from(s.cancelled) << 1;
            put(&mut b, health_at::SCRUB_FLAGS, &flags.to_le_bytes());
        }
        if let Some(r) = self.rebuild {
            put(&mut b, health_at::REBUILD_ENDED, &r.ended.to_le_bytes());
            put(&mut b, health_at::REBUILD_ROLE, &r.role.to_le_bytes());
            let flags = u32::from(r.replace) | u32::from(r.cancelled) << 1;
            put(&mut b, health_at::REBUILD_FLAGS, &flags.to_le_bytes());
            put(&mut b, health_at::REBUILD_BYTES, &r.bytes.to_le_bytes());
            put(&mut b, health_at::REBUILD_LOST, &r.lost.to_le_bytes());
        }
        for (i, e) in entries.iter().enumerate() {
            let at = HEALTH_HEADER + i * HEALTH_ENTRY;
            put(&mut b, at + health_at::ENTRY_UUID, &e.uuid);
            let c = e.counts;
            put(
                &mut b,
                at + health_at::ENTRY_READ,
                &c.read_errors.to_le_bytes(),
            );
            put(
                &mut b,
                at + health_at::ENTRY_WRITE,
                &c.write_errors.to_le_bytes(),
            );
            put(
                &mut b,
                at + health_at::ENTRY_CHECKSUM,
                &c.checksum_errors.to_le_bytes(),
            );
            put(
                &mut b,
                at + health_at::ENTRY_REPAIRED,
                &c.repaired.to_le_bytes(),
            );
            let path = fit_path(&e.path);
            put(
                &mut b,
                at + health_at::ENTRY_PATH_LEN,
                &(path.len() as u16).to_le_bytes(),
            );
            put(&mut b, at + health_at::ENTRY_PATH, path.as_bytes());
        }
        let crc = crc32fast::hash(&b[..HEALTH_SIZE - 4]);
        put(&mut b, HEALTH_SIZE - 4, &crc.to_le_bytes());
        b
    }

    /// Decodes the record of array `array_uuid`. `Ok(None)`: no record of this array
    /// (another magic or array UUID: bytes from an earlier life, or an older build that
    /// kept none). A record of this array that is damaged is an error.
    pub fn decode(b: &[u8], array_uuid: &[u8; 16]) -> Result<Option<HealthRecord>, FormatError> {
        let invalid = |reason: String| FormatError::Invalid {
            field: "health record",
            reason,
        };
        if b.len() < HEALTH_SIZE {
            return Err(invalid(format!(
                "{} bytes, expected {HEALTH_SIZE}",
                b.len()
            )));
        }
        let b = &b[..HEALTH_SIZE];
        if get::<8>(b, health_at::MAGIC) != HEALTH_MAGIC
            || get::<16>(b, health_at::ARRAY_UUID) != *array_uuid
        {
            return Ok(None);
        }
        let stored = get_u32(b, HEALTH_SIZE - 4);
        let computed = crc32fast::hash(&b[..HEALTH_SIZE - 4]);
        if stored != computed {
            return Err(FormatError::BadChecksum { stored, computed });
        }
        let count = get_u32(b, health_at::COUNT) as usize;
        if count > HEALTH_MAX_ENTRIES {
            return Err(invalid(format!(
                "{count} entries (at most {HEALTH_MAX_ENTRIES})"
            )));
        }
        let scrub_flags = get_u32(b, health_at::SCRUB_FLAGS);
        let scrub = (get_u64(b, health_at::SCRUB_ENDED) != 0).then(|| ScrubRecord {
            ended: get_u64(b, health_at::SCRUB_ENDED),
            found: get_u64(b, health_at::SCRUB_FOUND),
            repaired: get_u64(b, health_at::SCRUB_REPAIRED),
            unrecoverable: get_u64(b, health_at::SCRUB_UNRECOVERABLE),
            repair: scrub_flags & 1 != 0,
            cancelled: scrub_flags & 2 != 0,
        });
        let rebuild_flags = get_u32(b, health_at::REBUILD_FLAGS);
        let rebuild = (get_u64(b, health_at::REBUILD_ENDED) != 0).then(|| RebuildRecord {
            ended: get_u64(b, health_at::REBUILD_ENDED),
            role: get_u32(b, health_at::REBUILD_ROLE),
            replace: rebuild_flags & 1 != 0,
            cancelled: rebuild_flags & 2 != 0,
            bytes: get_u64(b, health_at::REBUILD_BYTES),
            lost: get_u64(b, health_at::REBUILD_LOST),
        });
        let mut members = Vec::with_capacity(count);
        for i in 0..count {
            let at = HEALTH_HEADER + i * HEALTH_ENTRY;
            let len = usize::from(get_u16(b, at + health_at::ENTRY_PATH_LEN));
            if len > HEALTH_PATH_MAX {
                return Err(invalid(format!(
                    "entry {i}: a path of {len} bytes (at most {HEALTH_PATH_MAX})"
                )));
            }
            let path = &b[at + health_at::ENTRY_PATH..at + health_at::ENTRY_PATH + len];
            let path = std::str::from_utf8(path)
                .map_err(|_| invalid(format!("entry {i}: the path is not UTF-8")))?;
            members.push(HealthEntry {
                uuid: get::<16>(b, at + health_at::ENTRY_UUID),
                counts: ErrorCounts {
                    read_errors: get_u64(b, at + health_at::ENTRY_READ),
                    write_errors: get_u64(b, at + health_at::ENTRY_WRITE),
                    checksum_errors: get_u64(b, at + health_at::ENTRY_CHECKSUM),
                    repaired: get_u64(b, at + health_at::ENTRY_REPAIRED),
                },
                path: path.to_string(),
            });
        }
        Ok(Some(HealthRecord {
            generation: get_u64(b, health_at::GENERATION),
            scrub,
            rebuild,
            members,
        }))
    }
}

/// `path` as an entry holds it: whole when it fits, else `...` and as much of its end as
/// fits (cut at a character boundary).
fn fit_path(path: &str) -> std::borrow::Cow<'_, str> {
    if path.len() <= HEALTH_PATH_MAX {
        return path.into();
    }
    let mut start = path.len() - (HEALTH_PATH_MAX - 3);
    while !path.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &path[start..]).into()
}

#[cfg(test)]
mod health_tests {
    use super::*;
    use proptest::prelude::*;

    fn record(paths: Vec<String>, counts: Vec<[u64; 4]>) -> HealthRecord {
        HealthRecord {
            generation: 7,
            scrub: Some(ScrubRecord {
                ended: 1_700_000_000,
                found: 3,
                repaired: 2,
                unrecoverable: 1,
                repair: true,
                cancelled: false,
            }),
            rebuild: Some(RebuildRecord {
                ended: 1_700_000_100,
                role: 4,
                replace: false,
                cancelled: true,
                bytes: 1 << 30,
                lost: 4096,
            }),
            members: paths
                .into_iter()
                .zip(counts)
                .enumerate()
                .map(|(i, (path, c))| HealthEntry {
                    uuid: [i as u8 + 1; 16],
                    counts: ErrorCounts {
                        read_errors: c[0],
                        write_errors: c[1],
                        checksum_errors: c[2],
                        repaired: c[3],
                    },
                    path,
                })
                .collect(),
        }
    }

    proptest! {
        #[test]
        fn a_record_round_trips(
            entries in proptest::collection::vec(("[a-z/é.]{0,60}", any::<[u64; 4]>()), 0..20)
        ) {
            let (paths, counts): (Vec<String>, Vec<[u64; 4]>) = entries.into_iter().unzip();
            let r = record(paths, counts);
            let uuid = [9u8; 16];
            prop_assert_eq!(HealthRecord::decode(&r.encode(&uuid), &uuid).unwrap(), Some(r));
        }

        #[test]
        fn damaged_bytes_never_panic(flips in proptest::collection::vec((0..HEALTH_SIZE, any::<u8>()), 1..8)) {
            let uuid = [9u8; 16];
            let mut b = record(vec!["/dev/loop0".into()], vec![[1, 2, 3, 4]]).encode(&uuid);
            for (at, v) in flips {
                b[at] ^= v | 1;
            }
            let _ = HealthRecord::decode(&b, &uuid);
        }
    }

    #[test]
    fn another_arrays_record_or_none_is_no_record_and_damage_is_an_error() {
        let uuid = [9u8; 16];
        let b = record(vec!["a".into()], vec![[0; 4]]).encode(&uuid);
        assert_eq!(HealthRecord::decode(&b, &[8u8; 16]).unwrap(), None);
        assert_eq!(
            HealthRecord::decode(&vec![0; HEALTH_SIZE], &uuid).unwrap(),
            None
        );
        let mut damaged = b.clone();
        damaged[HEALTH_HEADER + 20] ^= 1;
        assert!(matches!(
            HealthRecord::decode(&damaged, &uuid),
            Err(FormatError::BadChecksum { .. })
        ));
        assert!(HealthRecord::decode(&b[..100], &uuid).is_err());
    }

    #[test]
    fn a_long_path_keeps_its_end() {
        let long = format!("/{}/member-0.img", "x".repeat(400));
        let uuid = [9u8; 16];
        let r = record(vec![long.clone()], vec![[0; 4]]);
        let back = HealthRecord::decode(&r.encode(&uuid), &uuid)
            .unwrap()
            .unwrap();
        let path = &back.members[0].path;
        assert!(path.starts_with("...") && long.ends_with(&path[3..]));
        assert_eq!(path.len(), HEALTH_PATH_MAX);
        let wide = "é".repeat(200);
        let fitted = fit_path(&wide);
        assert!(fitted.len() <= HEALTH_PATH_MAX && wide.ends_with(&fitted[3..]));
    }

    // The record fits below the journal, after the bitmap region, with its entries.
    const _: () = assert!(HEALTH_OFFSET + HEALTH_SIZE as u64 <= MIB);
    const _: () = assert!(HEALTH_OFFSET >= BITMAP_OFFSET + BITMAP_SIZE);
    const _: () = assert!(HEALTH_HEADER + HEALTH_MAX_ENTRIES * HEALTH_ENTRY + 4 <= HEALTH_SIZE);
}
