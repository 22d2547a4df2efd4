//! Benchmark results: the stdout table, the JSON file and the SVG chart.

use serde::Serialize;
use std::fmt::Write as _;

/// One measured (or derived) operation on one table.
#[derive(Clone, Serialize)]
pub struct Sample {
    /// "u64/u64", "u16/u16", …
    pub types: String,
    pub slots: usize,
    pub operation: &'static str,
    /// "fhe_kv" or "naive"
    pub implementation: &'static str,
    /// Exact PBS count (TFHE-rs pbs-stats; decompression blind rotations included) / slots.
    pub pbs_per_row: f64,
    /// Median wall-clock seconds of the runs / slots.
    pub seconds_per_row: f64,
    /// Median wall-clock seconds of one whole operation.
    pub seconds: f64,
    pub runs: usize,
    /// Peak resident memory of the process during the operation (includes the keys).
    pub peak_rss_mb: Option<f64>,
    /// Computed from another measurement instead of run (batched naive GET = 4 × GET).
    pub derived: bool,
}

#[derive(Serialize)]
pub struct Report {
    pub threads: usize,
    pub tfhe_version: &'static str,
    pub parameters: &'static str,
    pub bytes_per_row: Vec<(String, f64)>,
    pub samples: Vec<Sample>,
    /// GET (hit) seconds with 1 thread and with `threads` threads on one table.
    pub scaling: Option<Scaling>,
}

#[derive(Serialize)]
pub struct Scaling {
    pub types: String,
    pub slots: usize,
    pub one_thread_seconds: f64,
    pub threads: usize,
    pub all_threads_seconds: f64,
    pub speedup: f64,
}

impl Report {
    fn naive_of(&self, s: &Sample) -> Option<&Sample> {
        let op = naive_counterpart(s.operation)?;
        self.samples.iter().find(|n| {
            n.implementation == "naive"
                && n.types == s.types
                && n.slots == s.slots
                && n.operation == op
        })
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "fhe_kv benchmark: {} threads, TFHE-rs {}, {}",
            self.threads, self.tfhe_version, self.parameters
        );
        for (types, bytes) in &self.bytes_per_row {
            let _ = writeln!(out, "stored bytes per row, {types}: {bytes:.0}");
        }
        let _ = writeln!(
            out,
            "{:<8} {:>5}  {:<18} {:>8} {:>8} {:>8} | {:>9} {:>8} | {:>6} {:>6}",
            "types",
            "slots",
            "operation",
            "PBS/row",
            "s/row",
            "peak MB",
            "naive PBS",
            "naive s",
            "×PBS",
            "×s"
        );
        for s in self.samples.iter().filter(|s| s.implementation == "fhe_kv") {
            let naive = self.naive_of(s);
            let (np, ns, rp, rs) = match naive {
                Some(n) => (
                    format!("{:.1}{}", n.pbs_per_row, if n.derived { "*" } else { "" }),
                    format!(
                        "{:.3}{}",
                        n.seconds_per_row,
                        if n.derived { "*" } else { "" }
                    ),
                    format!("{:.2}", n.pbs_per_row / s.pbs_per_row),
                    format!("{:.2}", n.seconds_per_row / s.seconds_per_row),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
            let peak = s.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0}"));
            let _ = writeln!(
                out,
                "{:<8} {:>5}  {:<18} {:>8.1} {:>8.3} {:>8} | {:>9} {:>8} | {:>6} {:>6}",
                s.types,
                s.slots,
                s.operation,
                s.pbs_per_row,
                s.seconds_per_row,
                peak,
                np,
                ns,
                rp,
                rs
            );
        }
        let _ = writeln!(
            out,
            "(×PBS, ×s = naive / fhe_kv; * = derived: 4 × the naive GET; '-' = naive not run for this size)"
        );
        if let Some(sc) = &self.scaling {
            let _ = writeln!(
                out,
                "GET (hit) on {} {} slots: 1 thread {:.1} s, {} threads {:.1} s: speedup {:.2}×",
                sc.types,
                sc.slots,
                sc.one_thread_seconds,
                sc.threads,
                sc.all_threads_seconds,
                sc.speedup
            );
        }
        out
    }

    /// The README's table: one line per fhe_kv operation with its naive counterpart.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| keys/values | slots | operation | PBS/row | s/row | naive PBS/row | naive s/row | naive/ours PBS | naive/ours s | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for s in self.samples.iter().filter(|s| s.implementation == "fhe_kv") {
            let star = |n: &Sample| if n.derived { "*" } else { "" };
            let (np, ns, rp, rs) = match self.naive_of(s) {
                Some(n) => (
                    format!("{:.1}{}", n.pbs_per_row, star(n)),
                    format!("{:.3}{}", n.seconds_per_row, star(n)),
                    format!("{:.2}×", n.pbs_per_row / s.pbs_per_row),
                    format!("{:.2}×", n.seconds_per_row / s.seconds_per_row),
                ),
                None => Default::default(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {:.3} | {np} | {ns} | {rp} | {rs} | {} |",
                s.types,
                s.slots,
                s.operation,
                s.pbs_per_row,
                s.seconds_per_row,
                s.peak_rss_mb.map_or(String::new(), |m| format!("{m:.0}"))
            );
        }
        out
    }

    /// Seconds per operation against table size (log-log), fhe_kv solid, naive dashed.
    pub fn svg(&self, types: &str) -> String {
        let series: Vec<(&str, &str, &str)> = vec![
            ("GET (hit)", "fhe_kv", "#1f77b4"),
            ("GET (hit)", "naive", "#1f77b4"),
            ("GET ×4", "fhe_kv", "#9467bd"),
            ("GET 2-round (hit)", "fhe_kv", "#17becf"),
            ("SET (update)", "fhe_kv", "#ff7f0e"),
            ("SET (update)", "naive", "#ff7f0e"),
            ("DELETE", "fhe_kv", "#2ca02c"),
            ("DELETE", "naive", "#2ca02c"),
        ];
        let points = |op: &str, imp: &str| -> Vec<(f64, f64)> {
            let mut p: Vec<(f64, f64)> = self
                .samples
                .iter()
                .filter(|s| {
                    s.types == types && s.operation == op && s.implementation == imp && !s.derived
                })
                .map(|s| (s.slots as f64, s.seconds))
                .collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            p
        };
        let all: Vec<(f64, f64)> = series.iter().flat_map(|(o, i, _)| points(o, i)).collect();
        let (w, h, left, right, top, bottom) = (640.0, 400.0, 70.0, 170.0, 40.0, 50.0);
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"14\">fhe_kv vs naive, {types}: seconds per operation ({} threads)</text>\n",
            self.threads
        );
        if all.is_empty() {
            out.push_str("</svg>\n");
            return out;
        }
        let lx = |x: f64| x.log10();
        let (x0, x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
            (a.min(lx(p.0)), b.max(lx(p.0)))
        });
        let (y0, y1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
            (a.min(p.1.log10().floor()), b.max(p.1.log10().ceil()))
        });
        let (x0, x1) = if x1 > x0 {
            (x0, x1)
        } else {
            (x0 - 0.5, x1 + 0.5)
        };
        let px = |x: f64| left + (lx(x) - x0) / (x1 - x0) * (w - left - right);
        let py = |y: f64| h - bottom - (y.log10() - y0) / (y1 - y0).max(1e-9) * (h - top - bottom);
        // axes, gridlines at powers of ten, ticks at the measured sizes
        let mut decade = y0;
        while decade <= y1 + 1e-9 {
            let y = py(10f64.powf(decade));
            let _ = writeln!(out, "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} s</text>", w - right, left - 6.0, y + 4.0, fmt_seconds(10f64.powf(decade)));
            decade += 1.0;
        }
        let mut sizes: Vec<f64> = all.iter().map(|p| p.0).collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        for x in sizes {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x}</text>",
                px(x),
                h - bottom + 18.0
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">table size (slots)</text>",
            (left + w - right) / 2.0,
            h - 10.0
        );
        let _ = writeln!(out, "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"black\"/><line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>", h - bottom, h - bottom, w - right, h - bottom);
        let mut legend_y = top + 10.0;
        for (op, imp, color) in series {
            let p = points(op, imp);
            if p.is_empty() {
                continue;
            }
            let dash = if imp == "naive" {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let path: Vec<String> = p
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(out, "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>", path.join(" "));
            for &(x, y) in &p {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                    px(x),
                    py(y)
                );
            }
            let lx0 = w - right + 12.0;
            let _ = writeln!(out, "<line x1=\"{lx0:.1}\" y1=\"{legend_y:.1}\" x2=\"{:.1}\" y2=\"{legend_y:.1}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\">{op} {imp}</text>", lx0 + 24.0, lx0 + 30.0, legend_y + 4.0);
            legend_y += 18.0;
        }
        out.push_str("</svg>\n");
        out
    }
}

/// The naive operation a fhe_kv operation is compared with.
fn naive_counterpart(op: &str) -> Option<&'static str> {
    match op {
        "GET (hit)" | "GET (miss)" | "GET 2-round (hit)" | "GET 2-round (miss)" => {
            Some("GET (hit)")
        }
        "GET ×4" | "GET ×4 2-round" => Some("GET ×4"),
        "SET (insert)" | "SET (update)" => Some("SET (update)"),
        "DELETE" => Some("DELETE"),
        "DELETE (scrub)" => Some("DELETE (scrub)"),
        _ => None,
    }
}

fn fmt_seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}
