//! Differential fuzzing of the parity engine against the byte-at-a-time reference.
//!
//! The first input byte picks a mode:
//!
//! - even: a well-formed stripe. k (1 to 16, or now and then up to `MAX_DATA`), m (1 to 4),
//!   a block length (0 to 1152), a lost set, a read-modify-write update and, for m = 2, up
//!   to two corruptions are read from the input, then the data bytes. For every engine
//!   this CPU supports (the one `Codec::new` picks first), `encode` must equal
//!   `reference::encode` with `matrix::parity_matrix`, `reconstruct` must restore the
//!   zeroed lost blocks, `update` must equal re-encoding, and `check_raid6` must agree
//!   with `reference::locate`.
//! - odd: malformed calls to `Engine::recover_raid6` and `Codec::reconstruct` (wrong block
//!   counts, unequal lengths, lost indices out of range, repeated or too many). Each must
//!   return `Err` and leave every block as it was; nothing may panic. With no flaw chosen,
//!   the call is free-form and only must not panic.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use raidkit::parity::{BlockUpdate, Codec, Engine, MAX_DATA, SyndromeCheck, matrix, reference};

/// Most stripes are at most this wide; one in eight goes up to `MAX_DATA`, so that wide
/// stripes (more than 32 kernel sources, Q coefficients g^j for j >= 16, raid6check
/// culprits past 16) are reached too.
const MAX_K: usize = 16;
const MAX_M: usize = 4;
/// Two unrolled steps of the widest kernel (GFNI: 8 vectors of 64 bytes = 512 bytes), then
/// single-vector steps and a scalar tail (1152 = 2·512 + 128). Below 512 bytes the GFNI
/// xor/pq main loops never run.
const MAX_LEN: usize = 1152;
/// Blocks in the malformed calls are short: their contents never matter.
const MAX_BAD_LEN: usize = 64;

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    // Running out of input is not a failure: `Unstructured` then yields defaults, and an
    // `Err` here only means a read could not be satisfied after the checks so far passed.
    let _ = match u.arbitrary::<u8>() {
        Ok(mode) if mode % 2 == 0 => well_formed(&mut u),
        Ok(_) => malformed(&mut u),
        Err(_) => Ok(()),
    };
});

/// Up to `max` distinct indices below `bound` (> 0), in input order (not sorted).
fn distinct_indices(u: &mut Unstructured<'_>, bound: usize, max: usize) -> Result<Vec<usize>> {
    let count = u.int_in_range(0..=max)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let index = u.int_in_range(0..=bound - 1)?;
        if !out.contains(&index) {
            out.push(index);
        }
    }
    Ok(out)
}

fn refs(blocks: &[Vec<u8>]) -> Vec<&[u8]> {
    blocks.iter().map(Vec::as_slice).collect()
}

fn refs_mut(blocks: &mut [Vec<u8>]) -> Vec<&mut [u8]> {
    blocks.iter_mut().map(Vec::as_mut_slice).collect()
}

/// A corruption for the syndrome check: XOR `mask` into byte `offset` of block `block`.
struct Corruption {
    block: usize,
    offset: usize,
    mask: u8,
}

fn well_formed(u: &mut Unstructured<'_>) -> Result<()> {
    // The small parameters first, so that mutating the data leaves the shape alone.
    let k = if u.ratio(1, 8)? {
        u.int_in_range(MAX_K + 1..=MAX_DATA)?
    } else {
        u.int_in_range(1..=MAX_K)?
    };
    let m = u.int_in_range(1..=MAX_M)?;
    let len = u.int_in_range(0..=MAX_LEN)?;
    let lost = distinct_indices(u, k + m, m)?;
    let changed = distinct_indices(u, k, k)?;
    let junk: u8 = u.arbitrary()?;
    let mut corruptions = Vec::new();
    if m == 2 && len > 0 {
        for _ in 0..u.int_in_range(0..=2)? {
            corruptions.push(Corruption {
                block: u.int_in_range(0..=k + 1)?,
                offset: u.int_in_range(0..=len - 1)?,
                mask: u.arbitrary()?,
            });
        }
    }
    let mut data = vec![vec![0u8; len]; k];
    for block in &mut data {
        u.fill_buffer(block)?;
    }
    let mut new_data = data.clone();
    for &position in &changed {
        u.fill_buffer(&mut new_data[position])?;
    }

    let parity_matrix = matrix::parity_matrix(m, k);
    let expected = reference::encode(&parity_matrix, &refs(&data), len);
    let expected_after_update = reference::encode(&parity_matrix, &refs(&new_data), len);
    let stripe: Vec<Vec<u8>> = data.iter().chain(&expected).cloned().collect();

    for codec in codecs(k, m) {
        let engine = codec.engine();
        let case = format!("{engine:?} {k}+{m} len {len}");

        // Encode, over outputs that start as junk.
        let mut parity = vec![vec![junk; len]; m];
        codec
            .encode(&refs(&data), &mut refs_mut(&mut parity))
            .unwrap_or_else(|e| panic!("{case}: encode failed: {e}"));
        assert_eq!(
            parity, expected,
            "{case}: encode differs from the reference"
        );

        // Reconstruct the lost blocks after zeroing them.
        let mut damaged = stripe.clone();
        for &index in &lost {
            damaged[index].fill(0);
        }
        codec
            .reconstruct(&mut refs_mut(&mut damaged), &lost)
            .unwrap_or_else(|e| panic!("{case}: reconstruct {lost:?} failed: {e}"));
        assert!(damaged == stripe, "{case}: reconstruct {lost:?} is wrong");

        // Read-modify-write of the changed blocks equals encoding the new data.
        let updates: Vec<BlockUpdate<'_>> = changed
            .iter()
            .map(|&position| BlockUpdate {
                position,
                old: &data[position],
                new: &new_data[position],
            })
            .collect();
        let mut parity = expected.clone();
        codec
            .update(&updates, &mut refs_mut(&mut parity))
            .unwrap_or_else(|e| panic!("{case}: update {changed:?} failed: {e}"));
        assert_eq!(
            parity, expected_after_update,
            "{case}: update {changed:?} differs from re-encoding"
        );

        // The raid6check rule on a stripe with up to two corrupted bytes.
        if m == 2 && len > 0 {
            let mut bad = stripe.clone();
            for c in &corruptions {
                bad[c.block][c.offset] ^= c.mask;
            }
            let (p, q) = (&bad[k], &bad[k + 1]);
            let found = engine
                .check_raid6(&refs(&bad[..k]), p, q)
                .unwrap_or_else(|e| panic!("{case}: check_raid6 failed: {e}"));
            assert_eq!(
                found,
                reference::locate(&refs(&bad[..k]), p, q),
                "{case}: check_raid6 differs from the reference"
            );
            if let [c] = corruptions.as_slice() {
                let single = match c.block {
                    _ if c.mask == 0 => SyndromeCheck::Consistent,
                    b if b == k => SyndromeCheck::PBad,
                    b if b == k + 1 => SyndromeCheck::QBad,
                    b => SyndromeCheck::Data(b),
                };
                assert_eq!(found, single, "{case}: one corrupt block not named");
            }
        }
    }
    Ok(())
}

/// A codec on the engine `Codec::new` picks (`RAIDKIT_ENGINE` or the fastest), then one
/// on every other engine this CPU supports.
fn codecs(k: usize, m: usize) -> Vec<Codec> {
    let first = Codec::new(k, m).expect("RAIDKIT_ENGINE names an engine this CPU can run");
    let first_kind = first.engine().kind();
    let mut out = vec![first];
    for kind in Engine::supported() {
        if kind != first_kind {
            let engine = Engine::new(kind).expect("listed as supported");
            out.push(Codec::with_engine(k, m, engine).expect("k and m are in range"));
        }
    }
    out
}

/// Flaws that make a recovery call invalid, chosen by bits of one input byte.
struct Flaws {
    wrong_count: bool,
    unequal_length: bool,
    out_of_range: bool,
    repeated: bool,
    too_many: bool,
}

impl Flaws {
    fn any(&self) -> bool {
        self.wrong_count
            || self.unequal_length
            || self.out_of_range
            || self.repeated
            || self.too_many
    }
}

/// A call's blocks and lost list, built with `flaws` for a stripe that should have
/// `valid_count` blocks, of which at most `max_lost` may be lost. `bad_counts` are block
/// counts that are wrong for this call (used when `flaws.wrong_count`).
fn bad_call(
    u: &mut Unstructured<'_>,
    flaws: &Flaws,
    valid_count: usize,
    max_lost: usize,
    bad_counts: &[usize],
) -> Result<(Vec<Vec<u8>>, Vec<usize>)> {
    let count = if flaws.wrong_count {
        bad_counts[u.choose_index(bad_counts.len())?]
    } else {
        valid_count
    };
    let len = u.int_in_range(0..=MAX_BAD_LEN)?;
    let fill: u8 = u.arbitrary()?;
    let mut blocks = vec![vec![fill; len]; count];
    if flaws.unequal_length && count >= 2 {
        let index = u.choose_index(count)?;
        let longer = len + u.int_in_range(1..=4)?;
        blocks[index] = vec![fill; longer];
    }
    let mut lost = if flaws.too_many {
        // One more distinct in-range index than can be recovered (valid_count > max_lost).
        let start = u.int_in_range(0..=valid_count - max_lost - 1)?;
        (start..=start + max_lost).collect()
    } else {
        distinct_indices(u, valid_count, max_lost)?
    };
    if flaws.out_of_range {
        let index = valid_count.max(count) + u.int_in_range(0..=3)?;
        let at = u.int_in_range(0..=lost.len())?;
        lost.insert(at, index);
    }
    if flaws.repeated {
        let index = match lost.first() {
            Some(&index) => index,
            None => u.int_in_range(0..=valid_count - 1)?,
        };
        lost.push(index);
        if lost.len() == 1 {
            lost.push(index);
        }
    }
    if !flaws.any() {
        // Free-form: lengths may or may not match, indices may be anything small.
        for block in &mut blocks {
            if u.arbitrary::<bool>()? {
                block.push(fill);
            }
        }
        lost = (0..u.int_in_range(0..=max_lost + 2)?)
            .map(|_| u.int_in_range(0..=valid_count + 2))
            .collect::<Result<_>>()?;
    }
    Ok((blocks, lost))
}

fn malformed(u: &mut Unstructured<'_>) -> Result<()> {
    let bits: u8 = u.arbitrary()?;
    let flaws = Flaws {
        wrong_count: bits & 1 != 0,
        unequal_length: bits & 2 != 0,
        out_of_range: bits & 4 != 0,
        repeated: bits & 8 != 0,
        too_many: bits & 16 != 0,
    };
    let k = u.int_in_range(1..=MAX_K)?;
    let m = u.int_in_range(1..=MAX_M)?;
    let for_raid6 = u.arbitrary::<bool>()?;
    let engine = Engine::detect().expect("RAIDKIT_ENGINE names an engine this CPU can run");

    let (mut blocks, lost) = if for_raid6 {
        // A RAID-6 stripe has k + 2 blocks; fewer than three is never valid.
        bad_call(u, &flaws, k + 2, 2, &[0, 1, 2])?
    } else {
        let valid = k + m;
        bad_call(u, &flaws, valid, m, &[0, valid - 1, valid + 1, valid + 2])?
    };
    let before = blocks.clone();
    let result = if for_raid6 {
        engine.recover_raid6(&mut refs_mut(&mut blocks), &lost)
    } else {
        let codec = Codec::new(k, m).expect("RAIDKIT_ENGINE names an engine this CPU can run");
        codec.reconstruct(&mut refs_mut(&mut blocks), &lost)
    };
    if flaws.any() {
        let what = if for_raid6 {
            format!("recover_raid6 k={k}")
        } else {
            format!("reconstruct {k}+{m}")
        };
        let lens: Vec<usize> = before.iter().map(Vec::len).collect();
        assert!(
            result.is_err(),
            "{what} accepted blocks of lengths {lens:?} with lost {lost:?}"
        );
        assert!(blocks == before, "{what} changed blocks before failing");
    }
    Ok(())
}
