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
    use raidkit_testkit::{Arena, Rng, engine_or_skip, isal};

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

    /// A stripe written by the array has the P and Q that ISA-L's `pq_gen` computes over
    /// its data chunks in logical order, on md's left-symmetric members (RAID-5: P only).
    #[test]
    fn array_stripes_match_isal_pq_gen() {
        use raidkit::array::{Array, CreateOptions};
        use raidkit::disk::{Disk, MemDisk};
        use raidkit::layout::Level;
        use std::sync::Arc;

        for (m, n) in [(1usize, 4usize), (2, 5), (2, 8)] {
            let chunk = 16usize << 10;
            let disks: Vec<Arc<MemDisk>> = (0..n)
                .map(|i| Arc::new(MemDisk::new(&format!("m{i}"), 4 << 20, 4096)))
                .collect();
            let array = Array::create(
                disks
                    .iter()
                    .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
                    .collect(),
                &CreateOptions::new(Level::Parity { m }).chunk(chunk as u64),
            )
            .unwrap();
            let data = Rng::new(n as u64).block(array.len() as usize);
            // Unaligned pieces: full-stripe, read-modify-write and reconstruct-write paths.
            let mut at = 0;
            let mut rng = Rng::new(9);
            while at < data.len() {
                let len = (1 + rng.below(3 * chunk * n)).min(data.len() - at);
                array.write_at(&data[at..at + len], at as u64).unwrap();
                at += len;
            }
            array.write_at(&data[777..5000], 777).unwrap();
            let layout = *array.layout();
            let offset = array.regions().data_offset as usize;
            let images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
            let k = n - m;
            for stripe in 0..2 * n as u64 {
                let chunk_of = |member: usize| {
                    let at = offset + stripe as usize * chunk;
                    &images[member][at..at + chunk]
                };
                let mut arena = Arena::new(k + 2, chunk, 0);
                for d in 0..k {
                    let member = layout.data_member(stripe, d);
                    let expected = layout.array_offset(stripe, d, 0) as usize;
                    assert_eq!(
                        chunk_of(member),
                        &data[expected..expected + chunk],
                        "stripe {stripe} data {d}"
                    );
                    arena.block_mut(d).copy_from_slice(chunk_of(member));
                }
                if k >= 2 {
                    // SAFETY: page-aligned blocks of `chunk` bytes, P and Q after the data.
                    assert_eq!(unsafe { isal::pq(&mut arena.pointers(), chunk) }, 0);
                    assert_eq!(
                        chunk_of(layout.parity_member(stripe, 0)),
                        arena.block(k),
                        "P, stripe {stripe}, n={n}"
                    );
                    if m == 2 {
                        assert_eq!(
                            chunk_of(layout.parity_member(stripe, 1)),
                            arena.block(k + 1),
                            "Q, stripe {stripe}, n={n}"
                        );
                    }
                }
            }
        }
    }
}
