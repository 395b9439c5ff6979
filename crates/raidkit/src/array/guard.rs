//! The crash guard: what keeps an array consistent across a crash — the write journal, the
//! write-intent bitmap, or nothing (a full resync after an unclean stop). An array has
//! exactly one, chosen at create and recorded in the superblock's flags.
//!
//! Owns the choice; the journal's and the bitmap's state live in their own modules.

use super::Consistency;
use super::intent::Intent;
use super::journal::Journal;

/// The running crash guard.
#[derive(Debug)]
pub(super) enum Guard {
    /// Journal mode: every write is logged before it goes in place.
    Journal(Journal),
    /// Bitmap mode: regions are marked before they are written.
    Bitmap(Intent),
    /// Neither.
    None,
}

impl Guard {
    /// The journal, in journal mode.
    pub fn journal(&self) -> Option<&Journal> {
        match self {
            Guard::Journal(journal) => Some(journal),
            _ => None,
        }
    }

    /// The write-intent bitmap, in bitmap mode.
    pub fn intent(&self) -> Option<&Intent> {
        match self {
            Guard::Bitmap(intent) => Some(intent),
            _ => None,
        }
    }

    /// The mode, as `status` names it.
    pub fn consistency(&self) -> Consistency {
        match self {
            Guard::Journal(_) => Consistency::Journal,
            Guard::Bitmap(_) => Consistency::Bitmap,
            Guard::None => Consistency::None,
        }
    }
}
