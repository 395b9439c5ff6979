//! Finding arrays: which of some files, folders and block devices hold raidkit members,
//! grouped by array (the role of `mdadm --examine --scan` and `zpool import`).
//!
//! A scan only reads superblocks, without locks, so it runs beside an array's owner; it
//! writes nothing. It is how a command can be given "every member found here" instead of
//! a list that a glob may get wrong.
//!
//! Owns finding and grouping; must not open an array (assemble decides who is current).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::format::{self, SlotState, Superblock};
use crate::layout::Level;

/// A disk found holding a superblock of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDisk {
    /// Where it was found.
    pub path: PathBuf,
    /// Its member UUID.
    pub member_uuid: [u8; 16],
    /// The event counter of its own superblock.
    pub event: u64,
    /// What the array's newest superblock says of it.
    pub standing: FoundStanding,
}

/// What the newest superblock of its array says of a disk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundStanding {
    /// In role `role`, in that slot state (active, behind, faulty, rebuilding).
    Role {
        /// The role.
        role: usize,
        /// The slot's state in the newest superblock.
        state: SlotState,
    },
    /// A hot spare.
    Spare,
    /// No slot of the newest superblock names it: a former member (replaced or removed).
    Former,
}

impl FoundDisk {
    /// Whether the array uses it: in a role or a spare (not a former member).
    pub fn belongs(&self) -> bool {
        self.standing != FoundStanding::Former
    }
}

/// An array some of whose disks were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundArray {
    /// Its UUID.
    pub uuid: [u8; 16],
    /// The newest superblock found (by event counter).
    pub newest: Superblock,
    /// The disks found, in path order.
    pub disks: Vec<FoundDisk>,
    /// Roles with an active (or behind, or rebuilding) slot that no disk found fills.
    pub missing: Vec<usize>,
}

impl FoundArray {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.newest.name
    }

    /// Its level.
    pub fn level(&self) -> Level {
        self.newest.level
    }

    /// Roles of the array.
    pub fn members(&self) -> usize {
        self.newest.members as usize
    }

    /// Roles filled by a disk found.
    pub fn found_roles(&self) -> usize {
        let roles: std::collections::BTreeSet<usize> = self
            .disks
            .iter()
            .filter_map(|d| match d.standing {
                FoundStanding::Role { role, .. } => Some(role),
                _ => None,
            })
            .collect();
        roles.len()
    }

    /// A one-word state from what was found: `complete` (every active role found),
    /// `degraded` (roles missing, within the redundancy) or `incomplete` (more missing
    /// than the redundancy covers: it cannot start).
    pub fn state(&self) -> &'static str {
        let lacking = self.members() - self.usable_roles();
        if lacking == 0 {
            "complete"
        } else if lacking <= self.newest.m as usize {
            "degraded"
        } else {
            "incomplete"
        }
    }

    /// Roles whose slot is active or behind and whose disk was found.
    fn usable_roles(&self) -> usize {
        let roles: std::collections::BTreeSet<usize> = self
            .disks
            .iter()
            .filter_map(|d| match d.standing {
                FoundStanding::Role {
                    role,
                    state: SlotState::Active | SlotState::Behind { .. },
                } => Some(role),
                _ => None,
            })
            .collect();
        roles.len()
    }

    /// Whether the newest superblock says it was not closed cleanly.
    pub fn dirty(&self) -> bool {
        self.newest.is_dirty()
    }

    /// The paths of every disk the array uses (roles and spares; not former members): what
    /// a command given `--scan` opens.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.disks
            .iter()
            .filter(|d| d.belongs())
            .map(|d| d.path.clone())
            .collect()
    }

    /// Whether `which` names it: its name, its UUID, or a prefix of its UUID (at least 4
    /// hex digits, with or without dashes).
    pub fn matches(&self, which: &str) -> bool {
        if self.newest.name == which {
            return true;
        }
        let want: String = which
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        let uuid: String = format::uuid_string(&self.uuid)
            .chars()
            .filter(|c| *c != '-')
            .collect();
        want.len() >= 4 && want.chars().all(|c| c.is_ascii_hexdigit()) && uuid.starts_with(&want)
    }
}

/// A path that looked like a member but could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The path.
    pub path: PathBuf,
    /// Why, in one line.
    pub why: String,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// The arrays, by name then UUID.
    pub arrays: Vec<FoundArray>,
    /// Paths that carry a raidkit magic but no valid superblock, or that could not be
    /// opened although named explicitly.
    pub unreadable: Vec<Unreadable>,
    /// Paths looked at.
    pub looked_at: usize,
}

/// The paths a scan looks at: each file or block device given; each folder's entries, one
/// level deep (files and block devices, in name order); with nothing given, every block
/// device the system lists (`/sys/class/block`).
pub fn candidates(paths: &[PathBuf]) -> Vec<PathBuf> {
    if paths.is_empty() {
        let mut devices: Vec<PathBuf> = std::fs::read_dir("/sys/class/block")
            .map(|dir| {
                dir.flatten()
                    .map(|e| Path::new("/dev").join(e.file_name()))
                    .filter(|p| p.exists())
                    .collect()
            })
            .unwrap_or_default();
        devices.sort();
        return devices;
    }
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|dir| {
                    dir.flatten()
                        .map(|e| e.path())
                        .filter(|p| !p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(path.clone());
        }
    }
    out
}

/// Scans `paths` ([`candidates`]) and groups the members found by array. Files that hold
/// no raidkit magic are passed over quietly; so are devices that cannot be opened when
/// none were named (a scan of every block device).
pub fn scan(paths: &[PathBuf]) -> ScanReport {
    let looked = candidates(paths);
    let mut report = ScanReport {
        looked_at: looked.len(),
        ..ScanReport::default()
    };
    let mut found: BTreeMap<[u8; 16], Vec<(PathBuf, Superblock)>> = BTreeMap::new();
    for path in looked {
        let disk = match crate::disk::open_read_only(&path) {
            Ok(disk) => disk,
            Err(e) => {
                if !paths.is_empty() && paths.contains(&path) {
                    report.unreadable.push(Unreadable {
                        path,
                        why: e.to_string(),
                    });
                }
                continue;
            }
        };
        if crate::disk::Disk::len(&disk) < (format::SB_OFFSETS[1] + format::SB_SIZE as u64) {
            continue;
        }
        match crate::meta::read_superblock(&disk) {
            Ok(read) => found
                .entry(read.superblock.array_uuid)
                .or_default()
                .push((path, read.superblock)),
            Err(crate::meta::ReadError::NoValidCopy(
                format::FormatError::BadMagic,
                format::FormatError::BadMagic,
            )) => {}
            Err(e) => report.unreadable.push(Unreadable {
                path,
                why: e.to_string(),
            }),
        }
    }
    for (uuid, disks) in found {
        report.arrays.push(group(uuid, disks));
    }
    report
        .arrays
        .sort_by(|a, b| (a.name(), a.uuid).cmp(&(b.name(), b.uuid)));
    report
}

/// One array's disks, placed by its newest superblock.
fn group(uuid: [u8; 16], disks: Vec<(PathBuf, Superblock)>) -> FoundArray {
    let newest = disks
        .iter()
        .map(|(_, sb)| sb)
        .max_by_key(|sb| sb.event)
        .cloned()
        .expect("a group has a disk");
    let n = newest.members as usize;
    let disks: Vec<FoundDisk> = disks
        .into_iter()
        .map(|(path, sb)| {
            let standing = match newest.slots.iter().position(|s| s.uuid == sb.member_uuid) {
                Some(i) if i < n => FoundStanding::Role {
                    role: i,
                    state: newest.slots[i].state,
                },
                Some(i) if newest.slots[i].state == SlotState::Spare => FoundStanding::Spare,
                _ => FoundStanding::Former,
            };
            FoundDisk {
                path,
                member_uuid: sb.member_uuid,
                event: sb.event,
                standing,
            }
        })
        .collect();
    let missing = (0..n.min(newest.slots.len()))
        .filter(|&r| {
            matches!(
                newest.slots[r].state,
                SlotState::Active | SlotState::Behind { .. } | SlotState::Rebuilding { .. }
            ) && !disks.iter().any(|d| d.member_uuid == newest.slots[r].uuid)
        })
        .collect();
    FoundArray {
        uuid,
        newest,
        disks,
        missing,
    }
}
