//! Progress on standard error: a bar with rate and ETA on a terminal, plain periodic lines
//! otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of one long operation, in bytes.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Mutex<(Instant, u64)>,
    label: String,
    total: u64,
    started: Instant,
}

impl Progress {
    /// Starts reporting `label` over `total` bytes.
    pub fn new(label: &str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            bar,
            plain: Mutex::new((Instant::now(), 0)),
            label: label.to_string(),
            total,
            started: Instant::now(),
        }
    }

    /// `done` bytes of the total are done.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        if plain.0.elapsed() >= Duration::from_secs(2) || (done == self.total && plain.1 != done) {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "{}: {} of {} MiB ({:.0}%), {:.0} MiB/s",
                self.label,
                done >> 20,
                self.total >> 20,
                done as f64 * 100.0 / self.total.max(1) as f64,
                done as f64 / secs / (1 << 20) as f64
            );
            *plain = (Instant::now(), done);
        }
    }

    /// Reports a library progress (rate and ETA over this run: a resumed operation starts
    /// part way).
    pub fn update(&self, progress: &raidkit::array::Progress) {
        if let Some(bar) = &self.bar {
            bar.set_position(progress.done);
            return;
        }
        let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        let last = progress.done == progress.total && plain.1 != progress.done;
        if plain.0.elapsed() >= Duration::from_secs(2) || last {
            let eta = progress
                .eta()
                .map(|d| format!(", ETA {}s", d.as_secs()))
                .unwrap_or_default();
            eprintln!(
                "{}: {} of {} MiB ({:.0}%), {:.0} MiB/s{eta}",
                self.label,
                progress.done >> 20,
                progress.total >> 20,
                progress.done as f64 * 100.0 / progress.total.max(1) as f64,
                progress.rate() / (1 << 20) as f64
            );
            *plain = (Instant::now(), progress.done);
        }
    }

    /// The total this progress counts to.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Ends the report.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
