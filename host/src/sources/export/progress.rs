//! Load progress: a bar on a terminal (files, items, bytes, rate, ETA),
//! plain log lines every 10 seconds otherwise (CI, files, journald).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    bar: Option<ProgressBar>,
    files: u64,
    files_done: u64,
    /// Items in the whole export, when the summary says.
    items_total: Option<u64>,
    items: u64,
    bytes: u64,
    started: Instant,
    /// Items already loaded by an earlier run, left out of the rate.
    resumed_items: u64,
    last_log: Instant,
}

impl Progress {
    pub fn new(files: u64, files_done: u64, items_total: Option<u64>, items_done: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(items_total, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} items ({per_sec}, ETA {eta}) {msg}",
            )
            .expect("a valid template");
            bar.set_style(style);
            bar.set_position(items_done);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let progress = Progress {
            bar,
            files,
            files_done,
            items_total,
            items: items_done,
            bytes: 0,
            started: Instant::now(),
            resumed_items: items_done,
            last_log: Instant::now(),
        };
        progress.update_message();
        progress
    }

    pub fn read(&mut self, items: u64, bytes: u64) {
        self.items += items;
        self.bytes += bytes;
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.items);
                self.update_message();
            }
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                tracing::info!("export: {}", self.line());
            }
            None => {}
        }
    }

    pub fn file_done(&mut self) {
        self.files_done += 1;
        self.update_message();
    }

    pub fn finish(&mut self) {
        match self.bar.take() {
            Some(bar) => {
                bar.finish_and_clear();
                eprintln!("export loaded: {}", self.line());
            }
            None => tracing::info!("export loaded: {}", self.line()),
        }
    }

    pub fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }

    fn update_message(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "files {}/{}, {:.1} MB",
                self.files_done,
                self.files,
                self.bytes as f64 / 1e6
            ));
        }
    }

    /// `3/8 files, 120000/500000 items (24%), 45.0 MB, 20000 items/s, ETA 19s`
    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = (self.items - self.resumed_items) as f64 / secs;
        let mut line = format!("{}/{} files, {} items", self.files_done, self.files, self.items);
        if let Some(total) = self.items_total.filter(|t| *t > 0) {
            line = format!(
                "{}/{} files, {}/{total} items ({:.0}%)",
                self.files_done,
                self.files,
                self.items,
                100.0 * self.items as f64 / total as f64
            );
        }
        line.push_str(&format!(", {:.1} MB, {rate:.0} items/s", self.bytes as f64 / 1e6));
        if let Some(left) =
            self.items_total.map(|t| t.saturating_sub(self.items)).filter(|l| *l > 0 && rate > 0.0)
        {
            line.push_str(&format!(
                ", ETA {}",
                humantime::format_duration(Duration::from_secs((left as f64 / rate) as u64))
            ));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_shows_files_items_share_bytes_rate_and_eta() {
        let mut p = Progress::new(8, 2, Some(1000), 200);
        p.bar = None;
        p.started = Instant::now() - Duration::from_secs(10);
        p.read(300, 5_000_000);
        p.file_done();
        let line = p.line();
        assert!(line.starts_with("3/8 files, 500/1000 items (50%), 5.0 MB, "), "{line}");
        // 300 items in about 10 s, so 500 left take about 16 s.
        assert!(line.contains(" items/s, ETA 1"), "{line}");
    }
}
