//! Structured inputs as dense features: age and sex, vital signs, structured findings.

use domain::{AgeBand, CaseInput, Sex, VitalSign, Vitals};

/// Width of [`demographics`].
pub const DEMOGRAPHIC_WIDTH: usize = AgeBand::ALL.len() + 2 + Sex::ALL.len();
/// Width of [`vitals`].
pub const VITAL_WIDTH: usize = VitalSign::ALL.len() * 2;

/// Age band one-hot, age/100, age-known flag, sex one-hot.
pub fn demographics(age: Option<f32>, sex: Sex) -> [f32; DEMOGRAPHIC_WIDTH] {
    let mut out = [0f32; DEMOGRAPHIC_WIDTH];
    if let Some(a) = age {
        out[AgeBand::of_age(a).index()] = 1.0;
        out[AgeBand::ALL.len()] = a / 100.0;
        out[AgeBand::ALL.len() + 1] = 1.0;
    }
    out[AgeBand::ALL.len() + 2 + sex.index()] = 1.0;
    out
}

/// Each vital centred and scaled, with a measured flag; unmeasured vitals are zero.
pub fn vitals(v: &Vitals) -> [f32; VITAL_WIDTH] {
    let mut out = [0f32; VITAL_WIDTH];
    for (k, s) in VitalSign::ALL.iter().enumerate() {
        if let Some(x) = v.get(*s) {
            let (c, sc) = s.typical();
            out[2 * k] = ((x - c) / sc).clamp(-6.0, 6.0);
            out[2 * k + 1] = 1.0;
        }
    }
    out
}

/// Structured findings: one slot per finding for present, one for absent.
pub fn structured_findings(findings: &[(usize, bool)], n_findings: usize) -> Vec<f32> {
    let mut out = vec![0f32; 2 * n_findings];
    for &(i, present) in findings {
        if i < n_findings {
            out[if present { i } else { n_findings + i }] = 1.0;
        }
    }
    out
}

/// All structured inputs of a case, concatenated: findings, demographics, vitals.
pub fn structured(case: &CaseInput, n_findings: usize, with_vitals: bool) -> Vec<f32> {
    let mut out = structured_findings(&case.findings, n_findings);
    out.extend_from_slice(&demographics(case.age, case.sex));
    if with_vitals {
        out.extend_from_slice(&vitals(&case.vitals));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demographic_features() {
        let d = demographics(Some(30.0), Sex::Female);
        assert_eq!(d[AgeBand::Adult.index()], 1.0);
        assert_eq!(d[AgeBand::ALL.len() + 1], 1.0);
        let u = demographics(None, Sex::Unknown);
        assert_eq!(u.iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn vital_features_flag_measured() {
        let v = vitals(&Vitals { spo2: Some(88.0), ..Default::default() });
        assert_eq!(v.iter().filter(|x| **x == 1.0).count(), 1);
        assert!(v[6] < -2.0);
    }
}
