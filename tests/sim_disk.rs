//! The simulated disk does what it says: each fault type, the crash model, and the same
//! seed giving the same faults. With no fault armed it passes the conformance suite.

use std::time::{Duration, Instant};

use raidkit::disk::{Disk, DiskError, FailStop};
use raidkit_testkit::sim::{Fault, FaultRates, SECTOR, SimDisk};
use raidkit_testkit::{Rng, conformance, pattern, read};

const SIZE: u64 = 1 << 20;

fn eio(err: &DiskError) -> bool {
    matches!(err, DiskError::Io { source, .. } if source.raw_os_error() == Some(5))
}

#[test]
fn without_faults_it_is_a_conforming_disk() {
    let disk = SimDisk::new("sim", 4 << 20, 1);
    conformance(&disk);
    assert!(disk.faults().is_empty(), "{}", disk.report());
    conformance(&SimDisk::with_block_size("sim4k", 4 << 20, 4096, 2));
}

#[test]
fn bad_ranges_fail_reads_until_rewritten() {
    let disk = SimDisk::new("latent", SIZE, 3);
    let data = pattern(&mut Rng::new(3), 4096);
    disk.write_at(&data, 8192).unwrap();
    disk.add_bad_range(8192 + 1024, 1); // one sector
    let mut buf = vec![0u8; 4096];
    let err = disk.read_at(&mut buf, 8192).unwrap_err();
    assert!(eio(&err), "{err}");
    assert!(
        err.to_string().contains("offset 8192"),
        "names the range: {err}"
    );
    // The sectors around it still read; the bad one keeps failing.
    assert_eq!(&*read(&disk, 8192, 1024), &data[..1024]);
    assert!(disk.read_at(&mut buf[..512], 8192 + 1024).is_err());
    // Rewriting heals it.
    disk.write_at(&data[1024..1536], 8192 + 1024).unwrap();
    assert_eq!(&*read(&disk, 8192, 4096), &*data);
    assert!(
        disk.faults()
            .iter()
            .filter(|f| matches!(f, Fault::ReadError { .. }))
            .count()
            == 2
    );
}

#[test]
fn random_read_errors_become_latent_sectors() {
    let disk = SimDisk::new("rate", SIZE, 4);
    disk.set_rates(FaultRates {
        read_error: 1.0,
        ..FaultRates::default()
    });
    let mut buf = vec![0u8; 1024];
    assert!(eio(&disk.read_at(&mut buf, 0).unwrap_err()));
    disk.set_rates(FaultRates::default());
    assert!(
        disk.read_at(&mut buf, 0).is_err(),
        "latent errors stay until rewritten"
    );
    let latent: Vec<u64> = disk
        .faults()
        .iter()
        .filter_map(|f| match f {
            Fault::LatentSector { sector } => Some(*sector),
            _ => None,
        })
        .collect();
    assert_eq!(latent, vec![0, 1]);
    disk.read_at(&mut buf, 2048).unwrap();
}

#[test]
fn write_errors_store_nothing() {
    let disk = SimDisk::new("werr", SIZE, 5);
    let old = pattern(&mut Rng::new(1), 4096);
    disk.write_at(&old, 0).unwrap();
    disk.fail_writes_in(1024, 1);
    let new = pattern(&mut Rng::new(2), 4096);
    assert!(eio(&disk.write_at(&new, 0).unwrap_err()));
    assert_eq!(&*read(&disk, 0, 4096), &*old);
    disk.write_at(&new[..1024], 4096).unwrap(); // elsewhere is fine
    disk.clear_write_failures();
    disk.write_at(&new, 0).unwrap();
    assert_eq!(&*read(&disk, 0, 4096), &*new);
    disk.set_rates(FaultRates {
        write_error: 1.0,
        ..FaultRates::default()
    });
    assert!(disk.write_at(&old, 0).is_err());
    assert_eq!(&*read(&disk, 0, 4096), &*new);
}

#[test]
fn a_failed_flush_makes_nothing_durable_and_latches_under_fail_stop() {
    let disk = FailStop::new(SimDisk::new("flush", SIZE, 6));
    let data = pattern(&mut Rng::new(6), 512);
    disk.write_at(&data, 0).unwrap();
    disk.inner().fail_next_flush();
    assert!(eio(&disk.flush().unwrap_err()));
    assert!(disk.inner().durable_image()[..512].iter().all(|&b| b == 0));
    assert!(matches!(disk.flush(), Err(DiskError::Failed { .. })));
}

#[test]
fn bit_flips_corrupt_silently() {
    let disk = SimDisk::new("rot", SIZE, 7);
    let data = pattern(&mut Rng::new(7), 4096);
    disk.write_at(&data, 0).unwrap();
    disk.flush().unwrap();
    disk.flip_bit(100, 3);
    let back = read(&disk, 0, 4096);
    assert_eq!(
        back[100],
        data[100] ^ 8,
        "the flipped bit reads back flipped, with no error"
    );
    assert_eq!(&back[..100], &data[..100]);
    assert_eq!(&back[101..], &data[101..]);
    disk.flip_random_bits(0..4096, 5);
    let flips = disk
        .faults()
        .iter()
        .filter(|f| matches!(f, Fault::BitFlip { .. }))
        .count();
    assert_eq!(flips, 6);
    assert_eq!(
        disk.durable_image()[100],
        data[100] ^ 8,
        "on the medium, so it survives a crash"
    );
}

#[test]
fn lost_writes_are_acknowledged_and_never_stored() {
    let disk = SimDisk::new("lost", SIZE, 8);
    disk.set_rates(FaultRates {
        lost_write: 1.0,
        ..FaultRates::default()
    });
    let data = pattern(&mut Rng::new(8), 4096);
    disk.write_at(&data, 4096).unwrap();
    disk.flush().unwrap();
    assert!(read(&disk, 4096, 4096).iter().all(|&b| b == 0));
    assert_eq!(
        disk.faults(),
        vec![Fault::LostWrite {
            offset: 4096,
            len: 4096
        }]
    );
}

#[test]
fn misdirected_writes_land_elsewhere() {
    let disk = SimDisk::new("misdirect", SIZE, 9);
    disk.set_rates(FaultRates {
        misdirected_write: 1.0,
        ..FaultRates::default()
    });
    let data = pattern(&mut Rng::new(9), 4096);
    disk.write_at(&data, 8192).unwrap();
    let Fault::MisdirectedWrite {
        intended,
        actual,
        len,
    } = disk.faults()[0]
    else {
        panic!("{}", disk.report());
    };
    assert_eq!((intended, len), (8192, 4096));
    assert_ne!(actual, intended);
    assert_eq!(actual % 512, 0);
    assert!(
        read(&disk, 8192, 4096).iter().all(|&b| b == 0),
        "the intended place is untouched"
    );
    assert_eq!(&*read(&disk, actual, 4096), &*data);
}

/// Per sector after a crash: old (zero) or new, and for torn writes possibly new bytes up
/// to a point and old after it; flushed data always survives.
#[test]
fn a_crash_keeps_flushed_data_and_old_or_new_per_sector() {
    for torn in [false, true] {
        let disk = SimDisk::new("crash", SIZE, 10 + u64::from(torn));
        let flushed = pattern(&mut Rng::new(1), 8192);
        disk.write_at(&flushed, 0).unwrap();
        disk.flush().unwrap();
        disk.set_rates(FaultRates {
            torn_write: if torn { 1.0 } else { 0.0 },
            ..FaultRates::default()
        });
        let unflushed = pattern(&mut Rng::new(2), 64 * 1024);
        disk.write_at(&unflushed, 65536).unwrap();
        disk.crash();
        let image = disk.live_image();
        assert_eq!(&image[..8192], &*flushed, "{}", disk.report());
        assert_eq!(image, disk.durable_image());
        let (mut old, mut new, mut mixed) = (0, 0, 0);
        for (i, sector) in image[65536..65536 + 65536]
            .chunks(SECTOR as usize)
            .enumerate()
        {
            let fresh = &unflushed[i * 512..(i + 1) * 512];
            if sector.iter().all(|&b| b == 0) {
                old += 1;
            } else if sector == fresh {
                new += 1;
            } else {
                let cut = sector.iter().zip(fresh).position(|(a, b)| a != b).unwrap();
                assert!(torn, "sector {i} is neither old nor new: {}", disk.report());
                assert!(
                    sector[cut..].iter().all(|&b| b == 0),
                    "a torn sector is new then old"
                );
                mixed += 1;
            }
        }
        assert!(
            old > 0 && new > 0,
            "128 sectors, seeded coin flips: {old} old, {new} new"
        );
        assert_eq!(mixed > 0, torn);
        let crash = disk
            .faults()
            .into_iter()
            .find(|f| matches!(f, Fault::Crash { .. }))
            .unwrap();
        assert!(
            matches!(
                crash,
                Fault::Crash {
                    unflushed_writes: 1,
                    ..
                }
            ),
            "{crash:?}"
        );
    }
}

fn scripted(seed: u64) -> (Vec<Fault>, Vec<u8>) {
    let disk = SimDisk::new("script", SIZE, seed);
    disk.set_rates(FaultRates {
        read_error: 0.01,
        write_error: 0.05,
        lost_write: 0.05,
        misdirected_write: 0.05,
        torn_write: 0.3,
    });
    let mut rng = Rng::new(99);
    for i in 0..200u64 {
        let offset = rng.below(1000) as u64 * 512;
        let sectors = 1 + rng.below(8);
        let data = pattern(&mut rng, 512 * sectors);
        let _ = disk.write_at(&data, offset);
        let mut buf = vec![0u8; 1024];
        let _ = disk.read_at(&mut buf, rng.below(1000) as u64 * 512);
        if i % 50 == 49 {
            disk.flush().unwrap();
        }
    }
    disk.flip_random_bits(0..SIZE, 3);
    disk.crash();
    (disk.faults(), disk.live_image())
}

#[test]
fn the_same_seed_gives_the_same_faults() {
    let (faults_a, image_a) = scripted(42);
    let (faults_b, image_b) = scripted(42);
    assert_eq!(faults_a, faults_b);
    assert_eq!(image_a, image_b);
    for kind in [
        "ReadError",
        "WriteError",
        "LostWrite",
        "MisdirectedWrite",
        "TornWrite",
        "BitFlip",
        "Crash",
    ] {
        assert!(
            faults_a.iter().any(|f| format!("{f:?}").starts_with(kind)),
            "no {kind} in {faults_a:?}"
        );
    }
    let (faults_c, _) = scripted(43);
    assert_ne!(faults_a, faults_c, "another seed, other faults");
}

#[test]
fn latency_delays_every_request() {
    let disk = SimDisk::new("slow", SIZE, 12);
    disk.set_latency(Duration::from_millis(20));
    let start = Instant::now();
    disk.write_at(&[1u8; 512], 0).unwrap();
    read(&disk, 0, 512);
    disk.flush().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(60));
}

#[test]
fn the_report_names_the_seed_and_the_faults() {
    let disk = SimDisk::new("reported", SIZE, 0xabc);
    disk.flip_bit(7, 1);
    let report = disk.report();
    assert!(
        report.contains("0xabc") && report.contains("BitFlip"),
        "{report}"
    );
}
