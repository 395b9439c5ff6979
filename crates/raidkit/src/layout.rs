//! Array geometry: where each byte of the array lives on the members.
//!
//! - **RAID-1** (`Level::Mirror`): every member holds the whole array at the same offset.
//! - **Parity levels** (`Level::Parity { m }`: RAID-5 is m = 1, RAID-6 m = 2, k+m up to
//!   m = 4): Linux md's *left-symmetric* layout, md's default. With n members and k = n − m
//!   data chunks per stripe, stripe s has its first parity chunk (P) on member
//!   `p = n − 1 − (s mod n)`, parity row r on `(p + r) mod n`, and data chunk d (its logical
//!   position in the stripe, the j of Q = Σ g^j·D_j) on `(p + m + d) mod n`. So parity
//!   rotates one member to the left per stripe and data follows it, wrapping around; for
//!   m = 1 and 2 this is exactly md's RAID-5 and RAID-6.
//!
//! Offsets on members here are relative to the start of each member's data region; the
//! on-disk format adds the data offset.
//!
//! ```
//! use raidkit::layout::{Layout, Level, Role};
//!
//! // md RAID-5 over four members, 64 KiB chunks: stripe 1 is D1 D2 P D0.
//! let layout = Layout::new(Level::Parity { m: 1 }, 4, 64 << 10)?;
//! let roles: Vec<Role> = (0..4).map(|member| layout.role(1, member)).collect();
//! assert_eq!(roles, [Role::Data(1), Role::Data(2), Role::Parity(0), Role::Data(0)]);
//! // The array's byte 3 × 64 KiB is the first byte of stripe 1's data chunk 0, on member 3.
//! let at = layout.locate(3 * 65536);
//! assert_eq!((at.stripe, at.data_index, at.member, at.member_offset), (1, 0, 3, 65536));
//! # Ok::<(), raidkit::layout::LayoutError>(())
//! ```
//!
//! Owns geometry and nothing else: every question of which member holds what, and where, is
//! answered here (`member_at`, `position`, `data_index`, `stripes`, `stripe_of`, `locate`,
//! `extents`); the array computes none of it itself.

use crate::parity::{MAX_DATA, MAX_PARITY};

/// The smallest chunk: one 4 KiB checksum block.
pub const MIN_CHUNK: u64 = 4 << 10;
/// The largest chunk.
pub const MAX_CHUNK: u64 = 16 << 20;
/// The default chunk, as md's (`mdadm --chunk` defaults to 512 KiB).
pub const DEFAULT_CHUNK: u64 = 512 << 10;

/// The most members of a mirror.
pub const MAX_MIRRORS: usize = 64;

/// A RAID level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// RAID-1: n-way mirror.
    Mirror,
    /// Striping with `m` parity chunks per stripe: RAID-5 (1), RAID-6 (2), k+m (3 or 4).
    Parity {
        /// Parity chunks per stripe.
        m: usize,
    },
}

/// What a member holds in one stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Data chunk at this logical position in the stripe.
    Data(usize),
    /// Parity row (0 = P, 1 = Q, 2 and 3 the extended rows).
    Parity(usize),
    /// A mirror copy.
    Copy,
}

/// Geometry errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The chunk size is not a power of two in range.
    #[error("chunk size {chunk} is not a power of two from 4 KiB to 16 MiB")]
    Chunk {
        /// The chunk size given, in bytes.
        chunk: u64,
    },
    /// Too few or too many members for the level.
    #[error("{level} needs {min} to {max} members, got {members}")]
    Members {
        /// The level, as text.
        level: String,
        /// Members given.
        members: usize,
        /// The fewest allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// The parity count is not 1 to 4.
    #[error("{m} parity chunks per stripe is not supported (1 to {MAX_PARITY})")]
    Parity {
        /// Parity chunks asked for.
        m: usize,
    },
}

/// Where one array offset lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The stripe (for a mirror, the chunk number).
    pub stripe: u64,
    /// The data chunk's logical position in the stripe (0 for a mirror).
    pub data_index: usize,
    /// The member holding it (for a mirror, the first copy).
    pub member: usize,
    /// Offset within the member's data region.
    pub member_offset: u64,
    /// Offset within the chunk.
    pub within_chunk: u64,
}

/// The geometry of an array: level, member count and chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    level: Level,
    members: usize,
    chunk: u64,
}

impl Level {
    fn name(self) -> String {
        match self {
            Level::Mirror => "RAID-1".to_string(),
            Level::Parity { m: 1 } => "RAID-5".to_string(),
            Level::Parity { m: 2 } => "RAID-6".to_string(),
            Level::Parity { m } => format!("k+{m}"),
        }
    }
}

impl Layout {
    /// A geometry, checked: chunk a power of two from 4 KiB to 16 MiB; a mirror has 1 to
    /// 64 members; a parity level has m of 1 to 4 and, like md, at least 2 members for
    /// RAID-5 and at least 2 data chunks per stripe for m ≥ 2, at most 252 data chunks.
    pub fn new(level: Level, members: usize, chunk: u64) -> Result<Layout, LayoutError> {
        if !chunk.is_power_of_two() || !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk) {
            return Err(LayoutError::Chunk { chunk });
        }
        let (min, max) = match level {
            Level::Mirror => (1, MAX_MIRRORS),
            Level::Parity { m } if !(1..=MAX_PARITY).contains(&m) => {
                return Err(LayoutError::Parity { m });
            }
            Level::Parity { m: 1 } => (2, MAX_DATA + 1),
            Level::Parity { m } => (m + 2, MAX_DATA + m),
        };
        if !(min..=max).contains(&members) {
            return Err(LayoutError::Members {
                level: level.name(),
                members,
                min,
                max,
            });
        }
        Ok(Layout {
            level,
            members,
            chunk,
        })
    }

    /// The level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Members (n).
    pub fn members(&self) -> usize {
        self.members
    }

    /// Chunk size in bytes.
    pub fn chunk(&self) -> u64 {
        self.chunk
    }

    /// Parity chunks per stripe (m); a mirror's copies beyond the first count as m = n − 1.
    pub fn m(&self) -> usize {
        match self.level {
            Level::Mirror => self.members - 1,
            Level::Parity { m } => m,
        }
    }

    /// Data chunks per stripe (k); 1 for a mirror.
    pub fn k(&self) -> usize {
        match self.level {
            Level::Mirror => 1,
            Level::Parity { m } => self.members - m,
        }
    }

    /// Array bytes per stripe: k chunks.
    pub fn stripe_data(&self) -> u64 {
        self.k() as u64 * self.chunk
    }

    /// The array's size when every member has `member_data` bytes of data region: whole
    /// stripes only.
    pub fn capacity(&self, member_data: u64) -> u64 {
        self.checked_capacity(member_data).unwrap_or(u64::MAX)
    }

    /// [`capacity`](Layout::capacity), or `None` when it does not fit in 64 bits.
    pub fn checked_capacity(&self, member_data: u64) -> Option<u64> {
        (member_data / self.chunk).checked_mul(self.stripe_data())
    }

    /// The member holding stripe `stripe`'s parity row 0 (P): `n − 1 − (s mod n)`.
    fn parity_start(&self, stripe: u64) -> usize {
        let n = self.members as u64;
        (n - 1 - stripe % n) as usize
    }

    /// The member holding parity row `row` of `stripe`.
    ///
    /// Panics if `row >= m` or the level is a mirror.
    pub fn parity_member(&self, stripe: u64, row: usize) -> usize {
        assert!(
            matches!(self.level, Level::Parity { .. }) && row < self.m(),
            "parity row {row}"
        );
        (self.parity_start(stripe) + row) % self.members
    }

    /// The member holding data chunk `data_index` of `stripe`.
    ///
    /// Panics if `data_index >= k`.
    pub fn data_member(&self, stripe: u64, data_index: usize) -> usize {
        assert!(data_index < self.k(), "data index {data_index}");
        match self.level {
            Level::Mirror => 0,
            Level::Parity { m } => (self.parity_start(stripe) + m + data_index) % self.members,
        }
    }

    /// What `member` holds in `stripe`.
    ///
    /// Panics if `member >= n`.
    pub fn role(&self, stripe: u64, member: usize) -> Role {
        assert!(member < self.members, "member {member}");
        match self.level {
            Level::Mirror => Role::Copy,
            Level::Parity { m } => {
                let n = self.members;
                let from_p = (member + n - self.parity_start(stripe)) % n;
                if from_p < m {
                    Role::Parity(from_p)
                } else {
                    Role::Data(from_p - m)
                }
            }
        }
    }

    /// Stripes in a member data region of `member_data` bytes (whole chunks only).
    pub fn stripes(&self, member_data: u64) -> u64 {
        member_data / self.chunk
    }

    /// The member holding codeword position `pos` of `stripe`: data chunks are positions
    /// `0..k` in logical order, parity rows `k..k+m`; a mirror's position `i` is member `i`.
    ///
    /// Panics if `pos >= n`.
    pub fn member_at(&self, stripe: u64, pos: usize) -> usize {
        assert!(pos < self.members, "position {pos}");
        match self.level {
            Level::Mirror => pos,
            Level::Parity { .. } if pos < self.k() => self.data_member(stripe, pos),
            Level::Parity { .. } => self.parity_member(stripe, pos - self.k()),
        }
    }

    /// The codeword position `member` holds in `stripe` (the inverse of
    /// [`member_at`](Layout::member_at)).
    ///
    /// Panics if `member >= n`.
    pub fn position(&self, stripe: u64, member: usize) -> usize {
        match self.role(stripe, member) {
            Role::Data(d) => d,
            Role::Parity(row) => self.k() + row,
            Role::Copy => member,
        }
    }

    /// The data chunk whose array offsets the blocks of `member` in `stripe` carry: its own
    /// for a data member, the mirror's only chunk for a copy, none for parity.
    pub fn data_index(&self, stripe: u64, member: usize) -> Option<usize> {
        match self.role(stripe, member) {
            Role::Data(d) => Some(d),
            Role::Copy => Some(0),
            Role::Parity(_) => None,
        }
    }

    /// The stripe holding the array's byte `offset`, and the offset within that stripe's
    /// data.
    pub fn stripe_of(&self, offset: u64) -> (u64, u64) {
        (offset / self.stripe_data(), offset % self.stripe_data())
    }

    /// Where the array's byte `offset` lives.
    pub fn locate(&self, offset: u64) -> Location {
        let (stripe, in_stripe) = self.stripe_of(offset);
        let data_index = (in_stripe / self.chunk) as usize;
        let within_chunk = in_stripe % self.chunk;
        Location {
            stripe,
            data_index,
            member: self.data_member(stripe, data_index),
            member_offset: stripe * self.chunk + within_chunk,
            within_chunk,
        }
    }

    /// The array offset of data chunk `data_index` of `stripe`, plus `within_chunk`.
    pub fn array_offset(&self, stripe: u64, data_index: usize, within_chunk: u64) -> u64 {
        stripe * self.stripe_data() + data_index as u64 * self.chunk + within_chunk
    }

    /// Splits `[offset, offset + len)` of the array at chunk boundaries, in order.
    pub fn extents(&self, offset: u64, len: u64) -> impl Iterator<Item = (Location, u64)> + '_ {
        let end = offset.saturating_add(len);
        let mut at = offset;
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let location = self.locate(at);
            let take = (self.chunk - location.within_chunk).min(end - at);
            at += take;
            Some((location, take))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(layout: &Layout, stripe: u64) -> Vec<Role> {
        (0..layout.members())
            .map(|member| layout.role(stripe, member))
            .collect()
    }

    #[test]
    fn positions_and_members_are_inverse() {
        for (level, n) in [
            (Level::Mirror, 3),
            (Level::Parity { m: 1 }, 4),
            (Level::Parity { m: 2 }, 6),
            (Level::Parity { m: 3 }, 7),
        ] {
            let layout = Layout::new(level, n, 4096).unwrap();
            for stripe in 0..2 * n as u64 {
                let mut seen = vec![false; n];
                for pos in 0..n {
                    let member = layout.member_at(stripe, pos);
                    assert!(!seen[member], "{level:?} stripe {stripe}: member twice");
                    seen[member] = true;
                    assert_eq!(layout.position(stripe, member), pos, "{level:?}");
                    let data = layout.data_index(stripe, member);
                    match level {
                        Level::Mirror => assert_eq!(data, Some(0)),
                        _ => assert_eq!(data, (pos < layout.k()).then_some(pos)),
                    }
                }
            }
        }
    }

    #[test]
    fn md_raid5_left_symmetric() {
        // md's RAID-5 left-symmetric layout over 4 disks (D = data, P = parity):
        //   stripe 0: D0 D1 D2 P | 1: D1 D2 P D0 | 2: D2 P D0 D1 | 3: P D0 D1 D2
        let layout = Layout::new(Level::Parity { m: 1 }, 4, MIN_CHUNK).unwrap();
        use Role::{Data as D, Parity as P};
        assert_eq!(roles(&layout, 0), [D(0), D(1), D(2), P(0)]);
        assert_eq!(roles(&layout, 1), [D(1), D(2), P(0), D(0)]);
        assert_eq!(roles(&layout, 2), [D(2), P(0), D(0), D(1)]);
        assert_eq!(roles(&layout, 3), [P(0), D(0), D(1), D(2)]);
        assert_eq!(roles(&layout, 4), roles(&layout, 0));
    }

    #[test]
    fn md_raid6_left_symmetric() {
        // md's RAID-6 over 5 disks: P then Q, data after Q, wrapping.
        //   stripe 0: Q D0 D1 D2 P | 1: D0 D1 D2 P Q | 2: D1 D2 P Q D0
        let layout = Layout::new(Level::Parity { m: 2 }, 5, MIN_CHUNK).unwrap();
        use Role::{Data as D, Parity as P};
        assert_eq!(roles(&layout, 0), [P(1), D(0), D(1), D(2), P(0)]);
        assert_eq!(roles(&layout, 1), [D(0), D(1), D(2), P(0), P(1)]);
        assert_eq!(roles(&layout, 2), [D(1), D(2), P(0), P(1), D(0)]);
    }

    /// Every geometry up to 16 members: each stripe's roles are a permutation (every data
    /// position and parity row exactly once), `role` inverts `data_member` and
    /// `parity_member`, and the pattern repeats every n stripes.
    #[test]
    fn every_stripe_is_a_permutation() {
        for m in 1..=MAX_PARITY {
            for n in 2..=16 {
                let Ok(layout) = Layout::new(Level::Parity { m }, n, MIN_CHUNK) else {
                    continue;
                };
                for stripe in 0..3 * n as u64 {
                    let mut seen = vec![false; n];
                    for d in 0..layout.k() {
                        let member = layout.data_member(stripe, d);
                        assert!(!seen[member]);
                        seen[member] = true;
                        assert_eq!(layout.role(stripe, member), Role::Data(d));
                    }
                    for r in 0..m {
                        let member = layout.parity_member(stripe, r);
                        assert!(!seen[member]);
                        seen[member] = true;
                        assert_eq!(layout.role(stripe, member), Role::Parity(r));
                    }
                    assert!(seen.iter().all(|&s| s), "m={m} n={n} stripe {stripe}");
                    assert_eq!(roles(&layout, stripe), roles(&layout, stripe + n as u64));
                }
            }
        }
    }

    #[test]
    fn locate_and_array_offset_are_inverse_and_extents_cover_the_range() {
        let layout = Layout::new(Level::Parity { m: 2 }, 6, 8192).unwrap();
        for offset in (0..10 * layout.stripe_data()).step_by(4096 + 512) {
            let at = layout.locate(offset);
            assert_eq!(
                layout.array_offset(at.stripe, at.data_index, at.within_chunk),
                offset
            );
            assert_eq!(at.member_offset, at.stripe * 8192 + at.within_chunk);
            assert_eq!(layout.role(at.stripe, at.member), Role::Data(at.data_index));
        }
        let (start, len) = (5000, 3 * 8192 + 100);
        let pieces: Vec<(Location, u64)> = layout.extents(start, len).collect();
        assert_eq!(pieces.iter().map(|p| p.1).sum::<u64>(), len);
        let mut at = start;
        for (location, take) in pieces {
            assert_eq!(location, layout.locate(at));
            assert!(location.within_chunk + take <= 8192);
            at += take;
        }
        assert_eq!(layout.extents(7, 0).count(), 0);
    }

    #[test]
    fn mirrors_keep_everything_everywhere() {
        let layout = Layout::new(Level::Mirror, 3, MIN_CHUNK).unwrap();
        assert_eq!((layout.k(), layout.m()), (1, 2));
        assert_eq!(layout.capacity(1 << 20), 1 << 20);
        let at = layout.locate(123_456);
        assert_eq!(at.member_offset, 123_456);
        assert!(roles(&layout, 9).iter().all(|&r| r == Role::Copy));
    }

    #[test]
    fn bad_geometry_is_refused() {
        for chunk in [0, 2048, 4095, 6144, 32 << 20] {
            assert_eq!(
                Layout::new(Level::Mirror, 2, chunk),
                Err(LayoutError::Chunk { chunk })
            );
        }
        assert!(matches!(
            Layout::new(Level::Parity { m: 1 }, 1, MIN_CHUNK),
            Err(LayoutError::Members { min: 2, .. })
        ));
        assert!(matches!(
            Layout::new(Level::Parity { m: 2 }, 3, MIN_CHUNK),
            Err(LayoutError::Members { min: 4, .. })
        ));
        assert!(matches!(
            Layout::new(Level::Parity { m: 5 }, 9, MIN_CHUNK),
            Err(LayoutError::Parity { m: 5 })
        ));
        assert!(matches!(
            Layout::new(Level::Parity { m: 2 }, MAX_DATA + 3, MIN_CHUNK),
            Err(LayoutError::Members { .. })
        ));
        let msg = Layout::new(Level::Parity { m: 2 }, 3, MIN_CHUNK)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "RAID-6 needs 4 to 254 members, got 3");
        assert_eq!(
            Layout::new(Level::Parity { m: 1 }, 5, DEFAULT_CHUNK)
                .unwrap()
                .capacity(10 << 20),
            (10 << 20) / DEFAULT_CHUNK * 4 * DEFAULT_CHUNK
        );
    }
}
