//! Array errors: each names the member (its disk name and role) or the byte range.
//!
//! Owns the error type; no behaviour.

use crate::disk::DiskError;
use crate::format::FormatError;
use crate::layout::LayoutError;
use crate::meta::ReadError;
use crate::parity::ParityError;

/// Errors of array operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArrayError {
    /// A member disk error that the array could not absorb.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// Invalid geometry.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A parity engine error.
    #[error(transparent)]
    Parity(#[from] ParityError),
    /// A format-planning error (create).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A member's superblock could not be read or is invalid in every copy.
    #[error("{member}: {source}")]
    Superblock {
        /// The member's name.
        member: String,
        /// What is wrong.
        #[source]
        source: ReadError,
    },
    /// The member's superblock has a format major version this build cannot read.
    #[error(
        "{member}: superblock format version {major}.{minor} is not supported by this build (it reads 1.x); use a newer raidkit"
    )]
    UnknownVersion {
        /// The member's name.
        member: String,
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The member belongs to another array.
    #[error("{member}: belongs to array {found}, not to array {expected}")]
    ForeignMember {
        /// The member's name.
        member: String,
        /// The array being assembled.
        expected: String,
        /// The member's array.
        found: String,
    },
    /// The same disk was given twice under one name.
    #[error("{member}: given twice")]
    DuplicateName {
        /// The disk's name.
        member: String,
    },
    /// A disk given to the array already serves it under that name.
    #[error("{member}: already in this array ({holder})")]
    NameTaken {
        /// The disk's name.
        member: String,
        /// What holds it: a role, a spare, or a disk being rebuilt into a role.
        holder: String,
    },
    /// The array's I/O threads could not be started.
    #[error("cannot start the array's I/O threads: {0}")]
    Threads(String),
    /// The same member was given twice.
    #[error("{member}: given twice (also as {other})")]
    DuplicateMember {
        /// The member's name.
        member: String,
        /// The other name it was given under.
        other: String,
    },
    /// The member's superblock disagrees with the array's geometry.
    #[error("{member}: geometry does not match the array ({field}: {found}, array has {expected})")]
    GeometryMismatch {
        /// The member's name.
        member: String,
        /// The field that differs.
        field: &'static str,
        /// The member's value.
        found: String,
        /// The array's value.
        expected: String,
    },
    /// Too many roles have no usable member.
    #[error(
        "cannot start the array: role(s) {missing:?} have no usable member ({present} of {members} present, at least {needed} needed)"
    )]
    TooManyMissing {
        /// The roles without a usable member.
        missing: Vec<usize>,
        /// Usable members.
        present: usize,
        /// Members of the array.
        members: usize,
        /// Members needed.
        needed: usize,
    },
    /// Not closed cleanly and missing members: parity of stripes written at the crash may
    /// be wrong, and rebuilding the missing members' data from it would return wrong data.
    #[error(
        "cannot start the array: it was not closed cleanly and role(s) {missing:?} are missing or may lack recent writes, and it keeps no journal: stripes being written at the crash may have stale parity and give the missing members' data back wrong (the RAID-5/6 write hole); start it anyway with allow_dirty_degraded to accept that risk"
    )]
    DirtyDegraded {
        /// The roles without a usable member.
        missing: Vec<usize>,
    },
    /// No members were given.
    #[error("no members given")]
    NoMembers,
    /// The member already holds a raidkit superblock (create without force).
    #[error(
        "{member}: already a member of raidkit array {array}; refusing to overwrite it without force"
    )]
    AlreadyMember {
        /// The member's name.
        member: String,
        /// The array it belongs to.
        array: String,
    },
    /// The member holds a recognisable file system or similar (create without force).
    #[error("{member}: holds {what}; refusing to overwrite it without force")]
    ForeignData {
        /// The member's name.
        member: String,
        /// What it holds.
        what: &'static str,
    },
    /// The member's block size cannot hold the format's 4 KiB blocks.
    #[error("{member}: logical block size {block_size} is not supported (must divide 4096)")]
    BlockSize {
        /// The member's name.
        member: String,
        /// Its block size.
        block_size: u32,
    },
    /// The member is too small.
    #[error("{member}: {size} bytes is too small (at least {needed} bytes are needed)")]
    MemberTooSmall {
        /// The member's name.
        member: String,
        /// Its size.
        size: u64,
        /// The size needed.
        needed: u64,
    },
    /// A request outside the array.
    #[error("{op} of {len} bytes at offset {offset} is past the end of the array ({size} bytes)")]
    OutOfRange {
        /// "read" or "write".
        op: &'static str,
        /// Start.
        offset: u64,
        /// Length.
        len: u64,
        /// The array's size.
        size: u64,
    },
    /// Data that cannot be recovered: more damage in a stripe than the redundancy covers.
    #[error("array bytes {offset}..{end} (stripe {stripe}) cannot be recovered: {reason}")]
    Unrecoverable {
        /// First array byte affected.
        offset: u64,
        /// One past the last.
        end: u64,
        /// The stripe.
        stripe: u64,
        /// What was lost.
        reason: String,
    },
    /// The array has lost more members than it has redundancy.
    #[error("the array has failed: {failed} of {members} members are unusable (it survives {m})")]
    Failed {
        /// Unusable members.
        failed: usize,
        /// Members.
        members: usize,
        /// Failures survivable.
        m: usize,
    },
    /// No member with that name or role.
    #[error("no member {0} in this array")]
    NoSuchMember(String),
    /// The operation does not apply to the member in its state.
    #[error("{member}: cannot {action}: the member is {state}")]
    MemberState {
        /// The member's name.
        member: String,
        /// What was asked.
        action: &'static str,
        /// Its state.
        state: String,
    },
    /// The member table is full.
    #[error("the member table is full ({0} slots)")]
    TableFull(usize),
    /// A rebuild or replace found more lost ranges than the bad-block log holds.
    #[error(
        "{member}: its bad-block log is full; the rebuild stops (too many unrecoverable ranges)"
    )]
    BadLogFull {
        /// The disk being rebuilt.
        member: String,
    },
    /// The disk being rebuilt or receiving a replace failed; the copy was abandoned.
    #[error("{member}: the rebuild onto it was abandoned: {reason}")]
    RebuildAbandoned {
        /// The disk being rebuilt.
        member: String,
        /// Why.
        reason: String,
    },
    /// The array was opened read-only ([`Access::ReadOnly`](super::Access) or
    /// [`Access::Inspect`](super::Access)); this operation would change it.
    #[error("cannot {op}: the array was opened read-only (a command that only looks)")]
    ReadOnly {
        /// What was refused.
        op: &'static str,
    },
    /// Not closed cleanly with a journal still to replay: a read-only open neither replays it
    /// nor reads around it.
    #[error(
        "the array was not closed cleanly and its journal holds writes not yet in place; a command that may write must replay it first (e.g. raidctl resync)"
    )]
    NeedsReplay,
    /// Failing the member would leave the array without redundancy, or failed.
    #[error(
        "{member}: failing it would leave the array {}: {unavailable} of its roles would have no active member (it survives {m})",
        if unavailable > m { "failed (data lost)" } else { "without redundancy" }
    )]
    LastRedundancy {
        /// The member.
        member: String,
        /// Roles without an active member after failing it.
        unavailable: usize,
        /// The redundancy.
        m: usize,
    },
    /// A command that may write was given fewer members than the array has active ones.
    #[error("cannot start the array for writing: {} active member(s) not given: {}", missing.len(), missing.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("; "))]
    NotGiven {
        /// The active members that were not given.
        missing: Vec<MissingMember>,
    },
}

/// An active member that was not given to assemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingMember {
    /// Its role.
    pub role: usize,
    /// Its member UUID.
    pub uuid: String,
    /// The path it was last opened at, where a member recorded it.
    pub last_seen: Option<String>,
}

impl std::fmt::Display for MissingMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "role {} (member {}", self.role, self.uuid)?;
        match &self.last_seen {
            Some(path) => write!(f, ", last seen at {path})"),
            None => write!(f, ", never recorded at a path)"),
        }
    }
}
