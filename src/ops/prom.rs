//! Prometheus text exposition format 0.0.4 (control plane, pure: builds a `String`, no I/O):
//! `# HELP`/`# TYPE` once per family, escaped label values and help text, `_total` counters.
//! See <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>.

use std::fmt::Write;

/// Metric family type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic; the name must end in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Writes families into one text body.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty body with room for a typical scrape.
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(8192),
        }
    }

    /// Starts a family: `# HELP` and `# TYPE` lines. Counter names must end in `_total`
    /// (a programming error otherwise, caught by the unit tests of every caller).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(
            kind != Kind::Counter || name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        let _ = write!(self.out, "# HELP {name} ");
        escape_help(&mut self.out, help);
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "\n# TYPE {name} {kind}");
        self
    }

    /// One sample `name{labels} value`; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_label(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: u64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// The finished body.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Label values escape `\`, `"` and newline.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text escapes `\` and newline.
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_escaping() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "A \\ help\nline.")
            .sample("x_total", &[("room", "a\"b\\c\nd"), ("k", "v")], 7)
            .single("y", Kind::Gauge, "Y.", 3);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_total A \\\\ help\\nline.\n# TYPE x_total counter\n\
             x_total{room=\"a\\\"b\\\\c\\nd\",k=\"v\"} 7\n\
             # HELP y Y.\n# TYPE y gauge\ny 3\n"
        );
    }
}
