//! Load bench: the summary table of a [`BenchReport`] — one line per run, then a line of
//! details per run. Pure formatting, no I/O.

use std::fmt::Write as _;

use super::report::BenchReport;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl BenchReport {
    /// The summary table: one line per run, then the details that do not fit a column.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let p = &self.publisher;
        let _ = writeln!(
            out,
            "onair-loadtest bench: {} room {} | {} cores, {:.1} GiB | publisher {}x{}@{} loop {} kbit/s (target {}), noise {:.1}%",
            self.url,
            self.room,
            self.machine.cores,
            self.machine.memory_gib,
            p.width,
            p.height,
            p.fps,
            p.loop_bitrate_bps / 1000,
            p.target_bitrate_bps / 1000,
            p.noise_percent
        );
        let _ = writeln!(
            out,
            "{:<14} {:>11} {:>15} {:>7} {:>22} {:>11} {:>11} {:>11} {:>9}",
            "run",
            "sessions",
            "join p50/p95ms",
            "loss%",
            "fwd p50/p99/max ms",
            "srv cpu",
            "srv rss MiB",
            "srv fds",
            "rx Mbit/s"
        );
        for run in &self.runs {
            let Some(r) = &run.report else {
                let _ = writeln!(
                    out,
                    "{:<14} {}: {}",
                    run.label,
                    run.status,
                    run.error.as_deref().unwrap_or("")
                );
                continue;
            };
            let sessions = format!("{}/{}", r.sessions.connected, r.sessions.target);
            let join = r
                .join_ms
                .map_or("-".to_owned(), |j| format!("{:.0}/{:.0}", j.p50, j.p95));
            let loss = opt(
                r.loss.map(|l| l.total_pct).or(r.chat.map(|c| c.loss_pct)),
                3,
            );
            let latency = r.latency_ms.map_or("-".to_owned(), |l| {
                format!("{:.2}/{:.2}/{:.1}", l.p50, l.p99, l.max)
            });
            let cpu = r
                .cpu
                .and_then(|c| c.server_cores)
                .map_or("-".to_owned(), |c| {
                    format!("{c:.2}/{}", opt(r.server_cpu_peak_cores, 2))
                });
            let rss = r.server.map_or("-".to_owned(), |s| {
                format!("{:.0}->{:.0}", mib(s.before.rss_kib), mib(s.after.rss_kib))
            });
            let fds = r.server.map_or("-".to_owned(), |s| {
                let f = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
                format!("{}->{}", f(s.before.fds), f(s.after.fds))
            });
            let rx = opt(r.throughput.map(|t| t.received_mbps), 1);
            let _ = writeln!(
                out,
                "{:<14} {sessions:>11} {join:>15} {loss:>7} {latency:>22} {cpu:>11} {rss:>11} {fds:>11} {rx:>9}",
                run.label
            );
        }
        self.details(&mut out);
        out
    }

    fn details(&self, out: &mut String) {
        for run in &self.runs {
            let Some(r) = &run.report else { continue };
            let mut line = format!("  {}:", run.label);
            if let Some(cpu) = r.cpu {
                let _ = write!(
                    line,
                    " generator {:.2} cores, machine {:.0}% busy;",
                    cpu.generator_cores, cpu.machine_busy_pct
                );
            }
            for (label, steps) in [("p50", r.join_steps_p50_ms), ("p95", r.join_steps_p95_ms)] {
                if let Some(s) = steps {
                    let _ = write!(
                        line,
                        " join steps {label}: signaling {:.1}, ICE {:.1}, DTLS {:.1}, \
                         to first RTP {:.1}, keyframe wait {:.1} ms;",
                        s.signaling, s.ice, s.dtls, s.first_packet, s.keyframe_wait
                    );
                }
            }
            if let Some(l) = r.loss {
                let _ = write!(
                    line,
                    " loss video {:.3}% audio {:.3}% ({} viewers lost packets, {} starved);",
                    l.video_pct, l.audio_pct, l.viewers_with_loss, l.viewers_starved
                );
            }
            if let Some(l) = r.latency_ms {
                let _ = write!(
                    line,
                    " latency samples {} (unmatched {});",
                    l.samples, l.unmatched
                );
            }
            if let Some(t) = r.throughput {
                let _ = write!(
                    line,
                    " publisher {:.0} kbit/s, {:.0} pkt/s received;",
                    t.publisher_video_kbps, t.received_packets_per_sec
                );
            }
            if let Some(k) = r.keyframes {
                let _ = write!(
                    line,
                    " publisher got {} keyframe requests for {} joins, sent {} keyframes in {} frames;",
                    k.requests, k.joins, k.keyframes_sent, k.frames_sent
                );
            }
            if let Some(c) = r.churn {
                let _ = write!(
                    line,
                    " churn {}/{} cycles ({:.1}/s, {} warm-up): rss {}%, fds {}, sessions {};",
                    c.completed,
                    c.cycles,
                    c.cycles_per_sec,
                    c.warmup_cycles,
                    opt(c.rss_growth_pct, 1),
                    c.fd_growth.map_or("-".to_owned(), |v| format!("{v:+}")),
                    c.session_growth
                        .map_or("-".to_owned(), |v| format!("{v:+}")),
                );
            }
            if let Some(h) = r.hls {
                let _ = write!(
                    line,
                    " hls {} parts ({:.0}/s), {} playlists, {} errors, {} resyncs, {} starved;",
                    h.parts, h.parts_per_sec, h.playlists, h.errors, h.resyncs, h.viewers_starved
                );
            }
            if let Some(c) = r.chat {
                let _ = write!(
                    line,
                    " chat {} sent ({} rate-limited, {} not queued), {}/{} delivered ({:.0}/s);",
                    c.sent,
                    c.rate_limited,
                    c.not_queued,
                    c.deliveries,
                    c.expected_deliveries,
                    c.deliveries_per_sec
                );
            }
            if r.sessions.failed > 0 {
                let _ = write!(line, " failures {:?};", r.sessions.failures);
            }
            for note in &r.notes {
                let _ = write!(line, " {note};");
            }
            let _ = writeln!(out, "{line}");
        }
    }
}
