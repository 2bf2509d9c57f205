//! Reading one histogram back from the service's Prometheus text.

/// A Prometheus histogram summed over its label sets: cumulative counts per upper bound.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Histogram {
    /// (upper bound `le`, cumulative count), ascending; `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

/// The histogram `name` in `text`, every label set added together.
pub fn histogram(text: &str, name: &str) -> Histogram {
    let mut h = Histogram::default();
    let bucket = format!("{name}_bucket{{");
    let sum = format!("{name}_sum");
    let count = format!("{name}_count");
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        if let Some(labels) = series.strip_prefix(&bucket) {
            let Some(le) = labels.split("le=\"").nth(1).and_then(|x| x.split('"').next()) else {
                continue;
            };
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
            match h.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += value,
                None => h.buckets.push((le, value)),
            }
        } else if series == sum || series.starts_with(&format!("{sum}{{")) {
            h.sum += value;
        } else if series == count || series.starts_with(&format!("{count}{{")) {
            h.count += value;
        }
    }
    h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    h
}

impl Histogram {
    /// What was observed between `earlier` and this reading.
    pub fn minus(&self, earlier: &Histogram) -> Histogram {
        let before = |le: f64| earlier.buckets.iter().find(|(b, _)| *b == le).map_or(0.0, |x| x.1);
        Histogram {
            buckets: self.buckets.iter().map(|&(le, c)| (le, c - before(le))).collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    pub fn mean(&self) -> f64 {
        if self.count > 0.0 { self.sum / self.count } else { f64::NAN }
    }

    /// Observations per bucket (not cumulative), as ("lo-hi", share of all).
    pub fn shares(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let mut prev_le = 0.0;
        let mut prev_c = 0.0;
        for &(le, c) in &self.buckets {
            let n = c - prev_c;
            let label = if le.is_infinite() {
                format!(">{prev_le}")
            } else if le <= prev_le + 1.0 {
                format!("{le}")
            } else {
                format!("{}-{le}", prev_le + 1.0)
            };
            if self.count > 0.0 {
                out.push((label, n / self.count));
            }
            prev_le = le;
            prev_c = c;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP triagent_agent_batch_size x\n\
        triagent_agent_batch_size_bucket{agent=\"a\",le=\"1\"} 4\n\
        triagent_agent_batch_size_bucket{agent=\"a\",le=\"4\"} 6\n\
        triagent_agent_batch_size_bucket{agent=\"a\",le=\"+Inf\"} 7\n\
        triagent_agent_batch_size_sum{agent=\"a\"} 20\n\
        triagent_agent_batch_size_count{agent=\"a\"} 7\n\
        triagent_agent_batch_size_bucket{agent=\"b\",le=\"1\"} 1\n\
        triagent_agent_batch_size_bucket{agent=\"b\",le=\"4\"} 1\n\
        triagent_agent_batch_size_bucket{agent=\"b\",le=\"+Inf\"} 1\n\
        triagent_agent_batch_size_sum{agent=\"b\"} 1\n\
        triagent_agent_batch_size_count{agent=\"b\"} 1\n\
        triagent_agent_batch_size_other 3\n";

    #[test]
    fn sums_label_sets_and_takes_differences() {
        let h = histogram(TEXT, "triagent_agent_batch_size");
        assert_eq!(h.buckets, vec![(1.0, 5.0), (4.0, 7.0), (f64::INFINITY, 8.0)]);
        assert_eq!((h.sum, h.count), (21.0, 8.0));
        let shares = h.shares();
        assert_eq!(shares[0], ("1".to_string(), 5.0 / 8.0));
        assert_eq!(shares[1], ("2-4".to_string(), 2.0 / 8.0));
        assert_eq!(shares[2], (">4".to_string(), 1.0 / 8.0));
        let d = h.minus(&h);
        assert_eq!(d.count, 0.0);
        assert!(d.buckets.iter().all(|b| b.1 == 0.0));
    }
}
