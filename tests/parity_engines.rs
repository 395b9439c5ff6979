//! Every engine against the byte-at-a-time reference: random k (1 to 64), random lengths
//! (odd ones and tails included), unaligned slices, every operation; and exhaustive loss
//! sets for recovery. An engine the CPU cannot run is skipped with a printed line.

use proptest::prelude::*;
use raidkit::parity::{
    BlockUpdate, Codec, Engine, EngineKind, ParityError, SyndromeCheck, gf, matrix, reference,
};
use raidkit_testkit::{Arena, Rng, engine_or_skip};

/// k data blocks of `len` random bytes each, starting `offset` bytes past 64-byte alignment,
/// followed by `extra` zeroed blocks.
fn stripe(rng: &mut Rng, k: usize, extra: usize, len: usize, offset: usize) -> Arena {
    let mut arena = Arena::new(k + extra, len, offset);
    for i in 0..k {
        rng.fill(arena.block_mut(i));
    }
    arena
}

fn refs(arena: &Arena, range: std::ops::Range<usize>) -> Vec<&[u8]> {
    range.map(|i| arena.block(i)).collect()
}

/// 512 cases per property and engine; `RAIDKIT_LONG_TESTS=1` runs 20,000.
fn cases() -> ProptestConfig {
    let long = std::env::var_os("RAIDKIT_LONG_TESTS").is_some();
    ProptestConfig {
        cases: if long { 20_000 } else { 512 },
        ..ProptestConfig::default()
    }
}

/// Lengths: often tiny or just around the vector widths, sometimes a few KiB.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..200, 200usize..1100, Just(4096), 4000usize..4200]
}

macro_rules! engine_suite {
    ($name:ident, $kind:expr) => {
        mod $name {
            use super::*;

            fn engine(test: &str) -> Option<Engine> {
                engine_or_skip($kind, test)
            }

            proptest! {
                #![proptest_config(cases())]

                #[test]
                fn gen_p_matches_reference(k in 1usize..=64, len in length(), off in 0usize..64, seed: u64) {
                    let Some(engine) = engine("gen_p") else { return Ok(()) };
                    let mut arena = stripe(&mut Rng::new(seed), k, 1, len, off);
                    let expected = reference::gen_p(&refs(&arena, 0..k), len);
                    let (data, mut out) = arena.split(k);
                    engine.gen_p(&data, out[0]).unwrap();
                    prop_assert_eq!(&*out[0], &expected[..]);
                }

                #[test]
                fn gen_pq_matches_reference(k in 1usize..=64, len in length(), off in 0usize..64, seed: u64) {
                    let Some(engine) = engine("gen_pq") else { return Ok(()) };
                    let mut arena = stripe(&mut Rng::new(seed), k, 2, len, off);
                    let p_ref = reference::gen_p(&refs(&arena, 0..k), len);
                    let q_ref = reference::gen_q(&refs(&arena, 0..k), len);
                    let (data, mut out) = arena.split(k);
                    let (p, q) = out.split_at_mut(1);
                    engine.gen_pq(&data, p[0], q[0]).unwrap();
                    prop_assert_eq!(&*p[0], &p_ref[..]);
                    prop_assert_eq!(&*q[0], &q_ref[..]);
                }

                #[test]
                fn update_pq_equals_regeneration(k in 1usize..=64, len in length(), off in 0usize..64, seed: u64) {
                    let Some(engine) = engine("update_pq") else { return Ok(()) };
                    let mut rng = Rng::new(seed);
                    let old = stripe(&mut rng, k, 0, len, off);
                    let mut old_blocks: Vec<&[u8]> = refs(&old, 0..k);
                    let mut p = reference::gen_p(&old_blocks, len);
                    let mut q = reference::gen_q(&old_blocks, len);
                    let mut p5 = p.clone();
                    // Change a random subset (possibly empty, possibly all) of the blocks.
                    let changed: Vec<usize> = (0..k).filter(|_| rng.below(3) == 0).collect();
                    let new_contents: Vec<Vec<u8>> = changed.iter().map(|_| rng.block(len)).collect();
                    let updates: Vec<BlockUpdate<'_>> = changed
                        .iter()
                        .zip(&new_contents)
                        .map(|(&position, new)| BlockUpdate { position, old: old.block(position), new })
                        .collect();
                    engine.update_pq(k, &updates, &mut p, &mut q).unwrap();
                    engine.update_p(k, &updates, &mut p5).unwrap();
                    for (&position, new) in changed.iter().zip(&new_contents) {
                        old_blocks[position] = new;
                    }
                    prop_assert_eq!(&p, &reference::gen_p(&old_blocks, len));
                    prop_assert_eq!(&q, &reference::gen_q(&old_blocks, len));
                    prop_assert_eq!(&p5, &p);
                }

                #[test]
                fn raid6_recovers_any_two(k in 1usize..=64, len in length(), off in 0usize..64, seed: u64) {
                    let Some(engine) = engine("recover_raid6") else { return Ok(()) };
                    let mut rng = Rng::new(seed);
                    let mut arena = stripe(&mut rng, k, 2, len, off);
                    {
                        let (data, mut out) = arena.split(k);
                        let (p, q) = out.split_at_mut(1);
                        engine.gen_pq(&data, p[0], q[0]).unwrap();
                    }
                    let original: Vec<Vec<u8>> = (0..k + 2).map(|i| arena.block(i).to_vec()).collect();
                    let x = rng.below(k + 2);
                    let y = rng.below(k + 2);
                    let lost: Vec<usize> = if x == y { vec![x] } else { vec![x, y] };
                    for &i in &lost {
                        rng.fill(arena.block_mut(i));
                    }
                    engine.recover_raid6(&mut arena.all_mut(), &lost).unwrap();
                    for (i, block) in original.iter().enumerate() {
                        prop_assert_eq!(arena.block(i), &block[..], "block {} after losing {:?}", i, lost);
                    }
                }

                #[test]
                fn syndrome_check_agrees_with_reference(k in 1usize..=64, len in 1usize..600, seed: u64) {
                    let Some(engine) = engine("check_raid6") else { return Ok(()) };
                    let mut rng = Rng::new(seed);
                    let data: Vec<Vec<u8>> = (0..k).map(|_| rng.block(len)).collect();
                    let mut data_refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
                    let mut p = reference::gen_p(&data_refs, len);
                    let mut q = reference::gen_q(&data_refs, len);
                    prop_assert_eq!(engine.check_raid6(&data_refs, &p, &q).unwrap(), SyndromeCheck::Consistent);
                    // Corrupt one or two random blocks at random bytes.
                    let corrupt = |block: &mut Vec<u8>, rng: &mut Rng| {
                        let at = rng.below(len);
                        block[at] ^= 1 + rng.below(255) as u8;
                    };
                    let mut bad_data: Vec<Vec<u8>> = data.clone();
                    let victims = 1 + rng.below(2);
                    let mut expected_single = None;
                    for _ in 0..victims {
                        let v = rng.below(k + 2);
                        match v {
                            v if v < k => corrupt(&mut bad_data[v], &mut rng),
                            v if v == k => corrupt(&mut p, &mut rng),
                            _ => corrupt(&mut q, &mut rng),
                        }
                        expected_single = Some(v);
                    }
                    data_refs = bad_data.iter().map(|d| d.as_slice()).collect();
                    let got = engine.check_raid6(&data_refs, &p, &q).unwrap();
                    prop_assert_eq!(got, reference::locate(&data_refs, &p, &q));
                    if victims == 1 {
                        let expected = match expected_single.unwrap() {
                            v if v < k => SyndromeCheck::Data(v),
                            v if v == k => SyndromeCheck::PBad,
                            _ => SyndromeCheck::QBad,
                        };
                        prop_assert_eq!(got, expected);
                    }
                }

                #[test]
                fn codec_locate_names_what_replacing_one_block_explains(k in 1usize..=12, m in 1usize..=4, len in 1usize..300, seed: u64, victims in 0usize..=2) {
                    let Some(engine) = engine("codec_locate") else { return Ok(()) };
                    let codec = Codec::with_engine(k, m, engine).unwrap();
                    let mut rng = Rng::new(seed);
                    let mut blocks: Vec<Vec<u8>> = (0..k).map(|_| rng.block(len)).collect();
                    blocks.extend((0..m).map(|_| vec![0u8; len]));
                    {
                        let (data, parity) = blocks.split_at_mut(k);
                        let data: Vec<&[u8]> = data.iter().map(|b| &b[..]).collect();
                        let mut parity: Vec<&mut [u8]> = parity.iter_mut().map(|b| &mut b[..]).collect();
                        codec.encode(&data, &mut parity).unwrap();
                    }
                    let mut damaged = Vec::new();
                    for _ in 0..victims {
                        let v = rng.below(k + m);
                        let at = rng.below(len);
                        blocks[v][at] ^= 1 + rng.below(255) as u8;
                        damaged.push(v);
                    }
                    // The reference: every position whose rebuilt contents make the whole
                    // codeword consistent; a block is named only when exactly one does.
                    let consistent = |b: &[Vec<u8>]| {
                        let data: Vec<&[u8]> = b[..k].iter().map(|x| &x[..]).collect();
                        let mut implied: Vec<Vec<u8>> = (0..m).map(|_| vec![0u8; len]).collect();
                        let mut refs: Vec<&mut [u8]> = implied.iter_mut().map(|x| &mut x[..]).collect();
                        codec.encode(&data, &mut refs).unwrap();
                        implied.iter().zip(&b[k..]).all(|(a, b)| a == b)
                    };
                    let explains: Vec<usize> = (0..k + m)
                        .filter(|&c| {
                            let mut copy = blocks.clone();
                            let mut refs: Vec<&mut [u8]> = copy.iter_mut().map(|x| &mut x[..]).collect();
                            codec.reconstruct(&mut refs, &[c]).unwrap();
                            consistent(&copy)
                        })
                        .collect();
                    let expected = match explains[..] {
                        [only] if !consistent(&blocks) => Some(only),
                        _ => None,
                    };
                    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
                    let got = codec.locate(&refs).unwrap();
                    prop_assert_eq!(got, expected, "damaged {:?}", damaged);
                    // One damaged block is always named when two or more parities cover it.
                    if m >= 2 && damaged.len() == 1 && !consistent(&blocks) {
                        prop_assert_eq!(got, Some(damaged[0]));
                    }
                }

                #[test]
                fn codec_encode_update_reconstruct(k in 1usize..=64, m in 1usize..=4, len in length(), off in 0usize..64, seed: u64) {
                    let Some(engine) = engine("codec") else { return Ok(()) };
                    let codec = Codec::with_engine(k, m, engine).unwrap();
                    let mut rng = Rng::new(seed);
                    let mut arena = stripe(&mut rng, k, m, len, off);
                    let expected = reference::encode(&matrix::parity_matrix(m, k), &refs(&arena, 0..k), len);
                    {
                        let (data, mut parity) = arena.split(k);
                        codec.encode(&data, &mut parity).unwrap();
                    }
                    for r in 0..m {
                        prop_assert_eq!(arena.block(k + r), &expected[r][..], "parity row {}", r);
                    }
                    // Read-modify-write of one random block.
                    let position = rng.below(k);
                    let new = rng.block(len);
                    let old = arena.block(position).to_vec();
                    {
                        let (_, mut parity) = arena.split(k);
                        codec.update(&[BlockUpdate { position, old: &old, new: &new }], &mut parity).unwrap();
                    }
                    arena.block_mut(position).copy_from_slice(&new);
                    let expected = reference::encode(&matrix::parity_matrix(m, k), &refs(&arena, 0..k), len);
                    for r in 0..m {
                        prop_assert_eq!(arena.block(k + r), &expected[r][..], "updated parity row {}", r);
                    }
                    // Lose up to m random blocks.
                    let original: Vec<Vec<u8>> = (0..k + m).map(|i| arena.block(i).to_vec()).collect();
                    let mut lost: Vec<usize> = (0..1 + rng.below(m)).map(|_| rng.below(k + m)).collect();
                    lost.sort_unstable();
                    lost.dedup();
                    for &i in &lost {
                        rng.fill(arena.block_mut(i));
                    }
                    codec.reconstruct(&mut arena.all_mut(), &lost).unwrap();
                    for (i, block) in original.iter().enumerate() {
                        prop_assert_eq!(arena.block(i), &block[..], "block {} after losing {:?}", i, lost);
                    }
                }
            }

            /// lib/raid6's test: every pair of lost blocks (data, P, Q) for every k up to 32.
            #[test]
            fn raid6_every_loss_pair_up_to_k32() {
                let Some(engine) = engine("raid6_every_pair") else { return };
                let len = 64 * 3 + 29;
                for k in 1..=32 {
                    let mut rng = Rng::new(k as u64);
                    let mut arena = stripe(&mut rng, k, 2, len, 3);
                    {
                        let (data, mut out) = arena.split(k);
                        let (p, q) = out.split_at_mut(1);
                        engine.gen_pq(&data, p[0], q[0]).unwrap();
                    }
                    let original: Vec<Vec<u8>> = (0..k + 2).map(|i| arena.block(i).to_vec()).collect();
                    for x in 0..k + 2 {
                        for y in x..k + 2 {
                            let lost: Vec<usize> = if x == y { vec![x] } else { vec![x, y] };
                            for &i in &lost {
                                arena.block_mut(i).fill(0xA5);
                            }
                            engine.recover_raid6(&mut arena.all_mut(), &lost).unwrap();
                            for (i, block) in original.iter().enumerate() {
                                assert_eq!(arena.block(i), &block[..], "k={k} lost {lost:?} block {i}");
                            }
                        }
                    }
                }
            }

            /// Every loss set of up to m blocks, for every m and every k up to 12, decoded.
            #[test]
            fn codec_every_loss_set_small_k() {
                let Some(engine) = engine("codec_every_loss_set") else { return };
                let len = 64 * 2 + 13;
                for m in 1..=4 {
                    for k in 1..=12 {
                        let codec = Codec::with_engine(k, m, engine).unwrap();
                        let mut rng = Rng::new((k * 10 + m) as u64);
                        let mut arena = stripe(&mut rng, k, m, len, 5);
                        {
                            let (data, mut parity) = arena.split(k);
                            codec.encode(&data, &mut parity).unwrap();
                        }
                        let original: Vec<Vec<u8>> = (0..k + m).map(|i| arena.block(i).to_vec()).collect();
                        for mask in 1u32..(1 << (k + m)) {
                            if mask.count_ones() as usize > m {
                                continue;
                            }
                            let lost: Vec<usize> = (0..k + m).filter(|i| mask & (1 << i) != 0).collect();
                            for &i in &lost {
                                arena.block_mut(i).fill(0x5A);
                            }
                            codec.reconstruct(&mut arena.all_mut(), &lost).unwrap();
                            for &i in &lost {
                                assert_eq!(arena.block(i), &original[i][..], "k={k} m={m} lost {lost:?}");
                            }
                        }
                    }
                }
            }

            /// Wide stripes: every single and double loss plus random larger ones at k = 64.
            #[test]
            fn codec_wide_stripe_k64() {
                let Some(engine) = engine("codec_wide") else { return };
                let (k, len) = (64, 256 + 7);
                for m in 3..=4 {
                    let codec = Codec::with_engine(k, m, engine).unwrap();
                    let mut rng = Rng::new(m as u64);
                    let mut arena = stripe(&mut rng, k, m, len, 0);
                    {
                        let (data, mut parity) = arena.split(k);
                        codec.encode(&data, &mut parity).unwrap();
                    }
                    let original: Vec<Vec<u8>> = (0..k + m).map(|i| arena.block(i).to_vec()).collect();
                    for _ in 0..400 {
                        let mut lost: Vec<usize> = (0..m).map(|_| rng.below(k + m)).collect();
                        lost.sort_unstable();
                        lost.dedup();
                        for &i in &lost {
                            arena.block_mut(i).fill(0);
                        }
                        codec.reconstruct(&mut arena.all_mut(), &lost).unwrap();
                        for &i in &lost {
                            assert_eq!(arena.block(i), &original[i][..], "m={m} lost {lost:?}");
                        }
                    }
                }
            }
        }
    };
}

engine_suite!(scalar, EngineKind::Scalar);
engine_suite!(avx2, EngineKind::Avx2);
engine_suite!(avx512, EngineKind::Avx512);
engine_suite!(gfni, EngineKind::Gfni);

#[test]
fn every_engine_is_listed_and_scalar_always_runs() {
    let supported = Engine::supported();
    assert!(supported.contains(&EngineKind::Scalar));
    for kind in EngineKind::ALL {
        assert_eq!(Engine::new(kind).is_ok(), supported.contains(&kind));
        if !kind.is_supported() {
            eprintln!("SKIP engine {kind}: this CPU lacks {}", kind.requires());
            assert_eq!(
                Engine::new(kind).unwrap_err(),
                ParityError::EngineUnsupported { engine: kind }
            );
        }
        assert_eq!(kind.name().parse::<EngineKind>().unwrap(), kind);
    }
    assert!(matches!(
        "sse9".parse::<EngineKind>(),
        Err(ParityError::UnknownEngine { .. })
    ));
    assert_eq!(Engine::best().kind(), *supported.last().unwrap());
}

#[test]
fn bad_input_gets_typed_errors() {
    let engine = Engine::best();
    let a = vec![0u8; 64];
    let short = vec![0u8; 63];
    let mut p = vec![0u8; 64];
    let mut q = vec![0u8; 64];
    assert_eq!(engine.gen_p(&[], &mut p), Err(ParityError::NoData));
    assert!(matches!(
        engine.gen_pq(&[&a, &short], &mut p, &mut q),
        Err(ParityError::LengthMismatch {
            index: 1,
            expected: 64,
            found: 63
        })
    ));
    let too_many: Vec<&[u8]> = vec![&a; raidkit::parity::MAX_DATA + 1];
    assert!(matches!(
        engine.gen_p(&too_many, &mut p),
        Err(ParityError::TooManyData { .. })
    ));
    let update = BlockUpdate {
        position: 5,
        old: &a,
        new: &a,
    };
    assert!(matches!(
        engine.update_pq(4, &[update], &mut p, &mut q),
        Err(ParityError::PositionOutOfRange { position: 5, k: 4 })
    ));
    let dup = BlockUpdate {
        position: 1,
        old: &a,
        new: &a,
    };
    assert!(matches!(
        engine.update_pq(4, &[dup, dup], &mut p, &mut q),
        Err(ParityError::Duplicate { index: 1 })
    ));
    let mut stripe: Vec<Vec<u8>> = vec![vec![7u8; 64]; 6];
    let before = stripe.clone();
    let mut blocks: Vec<&mut [u8]> = stripe.iter_mut().map(|b| b.as_mut_slice()).collect();
    assert!(matches!(
        engine.recover_raid6(&mut blocks, &[0, 1, 2]),
        Err(ParityError::TooManyLost { lost: 3, max: 2 })
    ));
    assert!(matches!(
        engine.recover_raid6(&mut blocks, &[6]),
        Err(ParityError::LostOutOfRange {
            index: 6,
            blocks: 6
        })
    ));
    assert!(matches!(
        engine.recover_raid6(&mut blocks, &[2, 2]),
        Err(ParityError::Duplicate { index: 2 })
    ));
    drop(blocks);
    assert_eq!(stripe, before, "a rejected call must change nothing");
    assert!(matches!(
        Codec::new(4, 5),
        Err(ParityError::ParityCount { m: 5 })
    ));
    assert!(matches!(Codec::new(0, 2), Err(ParityError::NoData)));
    let codec = Codec::new(4, 3).unwrap();
    let mut parity: Vec<Vec<u8>> = vec![vec![0; 64]; 2];
    let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(|b| b.as_mut_slice()).collect();
    assert!(matches!(
        codec.encode(&[&a, &a, &a, &a], &mut parity_refs),
        Err(ParityError::BlockCount {
            expected: 7,
            found: 6
        })
    ));
}

#[test]
fn q_weights_follow_data_position() {
    // A single non-zero data block at position j gives Q = g^j·D_j: the md convention.
    let engine = Engine::best();
    for j in 0..8 {
        let blocks: Vec<Vec<u8>> = (0..8)
            .map(|i| vec![if i == j { 1 } else { 0 }; 64])
            .collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| b.as_slice()).collect();
        let (mut p, mut q) = (vec![0; 64], vec![0; 64]);
        engine.gen_pq(&refs, &mut p, &mut q).unwrap();
        assert!(p.iter().all(|&b| b == 1));
        assert!(
            q.iter().all(|&b| b == gf::exp(j)),
            "Q weight of position {j}"
        );
    }
}

/// Zero-length blocks are valid everywhere and change nothing (found by the long campaign,
/// in the test arena; pinned here for every engine).
#[test]
fn zero_length_blocks_on_every_engine() {
    for kind in EngineKind::ALL {
        let Some(engine) = engine_or_skip(kind, "zero_length") else {
            continue;
        };
        let empty: &[u8] = &[];
        let data = [empty; 5];
        let (mut p, mut q) = (Vec::new(), Vec::new());
        engine.gen_p(&data, &mut p).unwrap();
        engine.gen_pq(&data, &mut p, &mut q).unwrap();
        assert_eq!(
            engine.check_raid6(&data, &p, &q).unwrap(),
            SyndromeCheck::Consistent
        );
        let mut blocks: Vec<&mut [u8]> = (0..7).map(|_| &mut [][..]).collect();
        engine.recover_raid6(&mut blocks, &[0, 6]).unwrap();
        for m in 1..=4 {
            let codec = Codec::with_engine(5, m, engine).unwrap();
            let mut blocks: Vec<&mut [u8]> = (0..5 + m).map(|_| &mut [][..]).collect();
            let lost: Vec<usize> = (0..m).collect();
            codec.reconstruct(&mut blocks, &lost).unwrap();
        }
    }
}
