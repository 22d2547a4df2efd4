//! Output of the table-size benchmark: a markdown table, JSON and an SVG chart of seconds
//! against slots for both layouts.

/// One operation's figures.
pub struct Measurement {
    pub op: String,
    pub pbs: i64,
    pub products: i64,
    pub seconds: f64,
    pub wal_bytes: i64,
}

/// One table: its layout, size, load and operations.
pub struct TableRun {
    pub layout: String,
    pub slots: usize,
    /// For the flat and leveled tables: the slot count actually measured (figures are
    /// scaled per slot).
    pub extrapolated_from: Option<usize>,
    pub create_seconds: f64,
    pub load_seconds: f64,
    pub loaded_keys: usize,
    pub bytes_per_slot: f64,
    pub ops: Vec<Measurement>,
}

impl TableRun {
    /// Seconds and bootstraps of `op` at `slots` slots: measured, or for the flat and
    /// leveled tables scaled linearly from the measured size (their work is per slot).
    fn at(&self, op: &Measurement, slots: usize) -> (f64, f64) {
        match self.extrapolated_from {
            Some(measured) => {
                let k = slots as f64 / measured as f64;
                (op.seconds * k, op.pbs as f64 * k)
            }
            None => (op.seconds, op.pbs as f64),
        }
    }
}

fn mb(bytes: i64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

pub fn markdown(runs: &[TableRun]) -> String {
    let mut out = String::new();
    out.push_str(
        "| layout | slots | operation | bootstraps | external products | seconds | WAL MB |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for run in runs {
        for op in &run.ops {
            let (slots, seconds, pbs) = match run.extrapolated_from {
                Some(_) => {
                    let (s, p) = run.at(op, 1000);
                    (
                        "1,000 (from ".to_string() + &run.slots.to_string() + ")",
                        s,
                        p,
                    )
                }
                None => (run.slots.to_string(), op.seconds, op.pbs as f64),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {:.0} | {} | {:.2} | {} |\n",
                run.layout,
                slots,
                op.op,
                pbs,
                op.products,
                seconds,
                if op.wal_bytes > 0 {
                    mb(op.wal_bytes)
                } else {
                    "–".into()
                }
            ));
        }
    }
    out.push_str("\n| layout | slots | create (s) | load (keys, s) | bytes stored per slot |\n|---|---|---|---|---|\n");
    for run in runs {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {} keys, {:.2} | {:.0} |\n",
            run.layout,
            run.slots,
            run.create_seconds,
            run.loaded_keys,
            run.load_seconds,
            run.bytes_per_slot
        ));
    }
    out
}

pub fn json(runs: &[TableRun]) -> String {
    let runs: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            serde_json::json!({
                "layout": r.layout,
                "slots": r.slots,
                "extrapolated_from": r.extrapolated_from,
                "create_seconds": r.create_seconds,
                "load_seconds": r.load_seconds,
                "loaded_keys": r.loaded_keys,
                "bytes_per_slot": r.bytes_per_slot,
                "ops": r.ops.iter().map(|o| serde_json::json!({
                    "op": o.op, "bootstraps": o.pbs, "external_products": o.products,
                    "seconds": o.seconds, "wal_bytes": o.wal_bytes,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "u64/u64": runs })).unwrap()
}

/// Seconds against slots, both axes logarithmic: the bucketed operations as measured, the
/// flat ones as their per-slot cost times the slot count (dashed).
pub fn svg(runs: &[TableRun]) -> String {
    let (w, h, left, bottom, top, right) = (760.0, 440.0, 70.0, 50.0, 30.0, 250.0);
    let (x0, x1) = (2.0f64, 6.0f64); // log10 slots: 100 .. 1,000,000
    let (y0, y1) = (-1.0f64, 5.0f64); // log10 seconds: 0.1 .. 100,000
    let px = |slots: f64| left + (slots.log10() - x0) / (x1 - x0) * (w - left - right);
    let py = |s: f64| h - bottom - (s.max(0.1).log10() - y0) / (y1 - y0) * (h - bottom - top);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"18\" font-size=\"14\">fhe_kv, u64/u64, 2 cores: seconds per operation against table size</text>\n",
        left
    );
    for e in 2..=6 {
        let x = px(10f64.powi(e));
        out.push_str(&format!(
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">10^{e}</text>\n",
            top,
            h - bottom,
            h - bottom + 16.0
        ));
    }
    for e in -1..=5 {
        let y = py(10f64.powi(e));
        let label = match e {
            -1 => "0.1 s".to_string(),
            0 => "1 s".to_string(),
            1 => "10 s".to_string(),
            2 => "100 s".to_string(),
            3 => "17 min".to_string(),
            4 => "2.8 h".to_string(),
            _ => "28 h".to_string(),
        };
        out.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>\n",
            w - right,
            left - 6.0,
            y + 4.0
        ));
    }
    out.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">slots</text>\n",
        (left + w - right) / 2.0,
        h - 12.0
    ));
    let series: [(&str, &str, &str, bool); 10] = [
        ("flat", "GET (server, fhe_get)", "#d62728", true),
        ("flat", "SET (server, fhe_set)", "#ff7f0e", true),
        ("leveled", "GET (server, fhe_get)", "#e377c2", true),
        ("leveled", "SET (two rounds, insert)", "#bcbd22", true),
        ("bucketed", "GET (server, fhe_get)", "#9467bd", false),
        ("bucketed", "SET (server, fhe_set)", "#8c564b", false),
        ("bucketed", "GET (key owner, hit)", "#1f77b4", false),
        ("bucketed", "SET (key owner, insert)", "#2ca02c", false),
        ("bucketed", "DELETE (key owner)", "#17becf", false),
        (
            "bucketed-leveled",
            "GET (server, fhe_get)",
            "#7f7f7f",
            false,
        ),
    ];
    for (i, (layout, op, color, dashed)) in series.iter().enumerate() {
        let mut points: Vec<(f64, f64)> = Vec::new();
        for run in runs.iter().filter(|r| r.layout == *layout) {
            for m in run.ops.iter().filter(|m| m.op == *op) {
                if run.extrapolated_from.is_some() {
                    for slots in [100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0] {
                        let (s, _) = run.at(m, slots as usize);
                        points.push((slots, s));
                    }
                } else {
                    points.push((run.slots as f64, m.seconds));
                }
            }
        }
        if points.is_empty() {
            continue;
        }
        points.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{} points=\"{}\"/>\n",
            if *dashed {
                " stroke-dasharray=\"6,4\""
            } else {
                ""
            },
            path.join(" ")
        ));
        if !dashed {
            for (x, y) in &points {
                out.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>\n",
                    px(*x),
                    py(*y)
                ));
            }
        }
        let ly = top + 20.0 + 18.0 * i as f64;
        out.push_str(&format!(
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"{}/><text x=\"{}\" y=\"{}\">{layout}: {op}</text>\n",
            w - right + 10.0,
            w - right + 34.0,
            if *dashed { " stroke-dasharray=\"6,4\"" } else { "" },
            w - right + 40.0,
            ly + 4.0
        ));
    }
    out.push_str("</svg>\n");
    out
}
