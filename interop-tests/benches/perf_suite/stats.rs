//! Samples, their median and spread, and the markdown table.

/// Repeated measurements of one figure.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    /// Adds one measurement.
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Whether nothing was measured (a column left out with `--weft-only`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The median (mean of the two middle values for an even count); NaN when empty.
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The smallest value.
    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    /// The largest value.
    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    /// `median (min–max)`.
    pub fn display(&self) -> String {
        if self.0.is_empty() {
            return "—".to_string();
        }
        format!(
            "{} ({}–{})",
            num(self.median()),
            num(self.min()),
            num(self.max())
        )
    }
}

/// A number with about three significant digits.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "n/a".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One line of the table: a figure for both implementations.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// Its unit.
    pub unit: &'static str,
    /// weft's samples.
    pub weft: Samples,
    /// rust-libp2p's samples (empty for a reference-only row).
    pub libp2p: Samples,
}

impl Row {
    /// weft's median over rust-libp2p's.
    pub fn ratio(&self) -> f64 {
        self.weft.median() / self.libp2p.median()
    }
}

/// Prints the rows as a markdown table.
pub fn print_table(rows: &[Row]) {
    println!();
    println!("| figure | unit | weft median (min–max) | rust-libp2p median (min–max) | weft / rust-libp2p |");
    println!("|---|---|---|---|---|");
    for row in rows {
        let ratio = if row.libp2p.0.is_empty() || row.weft.0.is_empty() {
            "—".to_string()
        } else {
            format!("{:.2}", row.ratio())
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            row.figure,
            row.unit,
            row.weft.display(),
            row.libp2p.display(),
            ratio
        );
    }
    println!();
}
