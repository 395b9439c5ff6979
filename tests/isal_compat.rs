//! Bit-compatibility with ISA-L 2.30 (and so with Linux md): for random stripes, every
//! engine's P and Q equal ISA-L `pq_gen`'s, P equals `xor_gen`'s, and k+m parity equals
//! ISA-L `ec_encode_data` run with our coefficient rows (same field, same products).
//! Runs when `libisal-dev` is installed (`.ci/run` installs it); otherwise prints a skip.

#[cfg(not(have_isal))]
#[test]
fn isal_not_installed() {
    eprintln!("SKIP isal_compat: libisal-dev is not installed (apt-get install libisal-dev)");
}

#[cfg(have_isal)]
mod with_isal {
    use raidkit::parity::{Codec, EngineKind, matrix};
    use raidkit_workspace_tests::{Arena, Rng, engine_or_skip, isal};

    fn random_arena(rng: &mut Rng, k: usize, extra: usize, len: usize) -> Arena {
        let mut arena = Arena::new(k + extra, len, 0);
        for i in 0..k {
            rng.fill(arena.block_mut(i));
        }
        arena
    }

    #[test]
    fn pq_and_xor_match_isal_for_every_engine() {
        for kind in EngineKind::ALL {
            let Some(engine) = engine_or_skip(kind, "isal pq_gen") else {
                continue;
            };
            let mut rng = Rng::new(kind as u64);
            // ISA-L's pq_gen refuses a single data block; k = 1 is checked against the reference.
            for k in 2..=40 {
                for len in [64, 64 * 9, 4096] {
                    let mut ours = random_arena(&mut rng, k, 2, len);
                    let mut theirs = Arena::new(k + 2, len, 0);
                    let mut theirs_p = Arena::new(k + 1, len, 0);
                    for i in 0..k {
                        theirs.block_mut(i).copy_from_slice(ours.block(i));
                        theirs_p.block_mut(i).copy_from_slice(ours.block(i));
                    }
                    // SAFETY: page-aligned blocks of `len` (a multiple of 64) bytes; the
                    // outputs are the last blocks and overlap nothing.
                    unsafe {
                        assert_eq!(isal::pq(&mut theirs.pointers(), len), 0);
                        assert_eq!(isal::xor(&mut theirs_p.pointers(), len), 0);
                    }
                    let (data, mut out) = ours.split(k);
                    let (p, q) = out.split_at_mut(1);
                    engine.gen_pq(&data, p[0], q[0]).unwrap();
                    assert_eq!(&*p[0], theirs.block(k), "{kind} P, k={k} len={len}");
                    assert_eq!(&*q[0], theirs.block(k + 1), "{kind} Q, k={k} len={len}");
                    engine.gen_p(&data, p[0]).unwrap();
                    assert_eq!(&*p[0], theirs_p.block(k), "{kind} xor, k={k} len={len}");
                }
            }
        }
    }

    #[test]
    fn kplusm_rows_are_the_same_products_as_isal() {
        for kind in EngineKind::ALL {
            let Some(engine) = engine_or_skip(kind, "isal ec_encode_data") else {
                continue;
            };
            let mut rng = Rng::new(100 + kind as u64);
            for m in 1..=4 {
                for k in [1, 2, 5, 8, 12, 31, 64] {
                    let len = 4096;
                    let codec = Codec::with_engine(k, m, engine).unwrap();
                    let mut ours = random_arena(&mut rng, k, m, len);
                    let mut theirs = Arena::new(k + m, len, 0);
                    for i in 0..k {
                        theirs.block_mut(i).copy_from_slice(ours.block(i));
                    }
                    let rows = matrix::parity_matrix(m, k).concat();
                    let mut tables = isal::tables(k, m, &rows);
                    let pointers = theirs.pointers();
                    let (mut data, mut coding) = (pointers[..k].to_vec(), pointers[k..].to_vec());
                    // SAFETY: page-aligned blocks of `len` bytes; coding blocks follow the
                    // data blocks and overlap none of them.
                    unsafe { isal::encode(len, &mut tables, &mut data, &mut coding) };
                    let (d, mut parity) = ours.split(k);
                    codec.encode(&d, &mut parity).unwrap();
                    for (r, row) in parity.iter().enumerate() {
                        assert_eq!(&**row, theirs.block(k + r), "{kind} row {r}, {k}+{m}");
                    }
                }
            }
        }
    }
}
