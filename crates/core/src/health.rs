//! Health checks (健康检测) done in store: blood pressure, glucose, lipids, uric acid, weight, ...
//! Values are kept as the ERP wrote them, parsed into numbers where the kind has a known form, and
//! flagged abnormal by the thresholds of Chinese clinical guidelines (cited per kind). Health data is
//! sensitive personal information.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    /// 血压, `systolic/diastolic` in mmHg.
    BloodPressure,
    /// 血糖, mmol/L (fasting unless stated).
    BloodGlucose,
    /// 血脂 (total cholesterol), mmol/L.
    BloodLipids,
    /// 尿酸, µmol/L.
    UricAcid,
    /// 体重, kg.
    Weight,
    /// BMI, kg/m².
    Bmi,
    /// 骨密度, T-score.
    BoneDensity,
    /// Anything else the ERP records; kept as text.
    Other,
}

impl HealthKind {
    pub fn parse(s: &str) -> HealthKind {
        match s.trim().to_lowercase().as_str() {
            "血压" | "bp" | "blood_pressure" | "blood pressure" => HealthKind::BloodPressure,
            "血糖" | "空腹血糖" | "glucose" | "blood_glucose" | "blood glucose" => HealthKind::BloodGlucose,
            "血脂" | "总胆固醇" | "胆固醇" | "lipids" | "blood_lipids" | "cholesterol" => {
                HealthKind::BloodLipids
            }
            "尿酸" | "uric_acid" | "uric acid" => HealthKind::UricAcid,
            "体重" | "weight" => HealthKind::Weight,
            "bmi" | "体质指数" => HealthKind::Bmi,
            "骨密度" | "bone_density" => HealthKind::BoneDensity,
            _ => HealthKind::Other,
        }
    }

    /// The canonical Chinese name stored and shown.
    pub fn label_zh(self) -> &'static str {
        match self {
            HealthKind::BloodPressure => "血压",
            HealthKind::BloodGlucose => "血糖",
            HealthKind::BloodLipids => "血脂",
            HealthKind::UricAcid => "尿酸",
            HealthKind::Weight => "体重",
            HealthKind::Bmi => "BMI",
            HealthKind::BoneDensity => "骨密度",
            HealthKind::Other => "其他",
        }
    }
}

/// A health check as a cleaned import row (DATA.md "health_checks").
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckInput {
    pub card_no: String,
    pub store_code: Option<String>,
    pub checked_at: i64,
    pub kind: HealthKind,
    /// The kind's name as stored: canonical for known kinds, the ERP's text for `Other`.
    pub kind_name: String,
    pub value: String,
    pub value1: Option<f64>,
    pub value2: Option<f64>,
    pub unit: Option<String>,
    pub abnormal: bool,
}

/// Why a reading could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadingError(pub String);

/// Parses a reading for its kind and decides whether it is abnormal.
/// Returns `(value1, value2, abnormal)`.
pub fn assess(kind: HealthKind, value: &str) -> Result<(Option<f64>, Option<f64>, bool), ReadingError> {
    let num = |s: &str| -> Result<f64, ReadingError> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| ReadingError(format!("检测值“{value}”不是有效数字")))
    };
    match kind {
        HealthKind::BloodPressure => {
            let (s, d) = value
                .split_once(['/', '／'])
                .ok_or_else(|| ReadingError(format!("血压值“{value}”应为“收缩压/舒张压”，如 135/85")))?;
            let (s, d) = (num(s)?, num(d)?);
            if !(40.0..=300.0).contains(&s) || !(20.0..=200.0).contains(&d) || d >= s {
                return Err(ReadingError(format!("血压值“{value}”超出合理范围")));
            }
            // 中国高血压防治指南: hypertension from 140/90 mmHg.
            Ok((Some(s), Some(d), s >= 140.0 || d >= 90.0))
        }
        HealthKind::BloodGlucose => {
            let v = num(value)?;
            if v > 50.0 {
                return Err(ReadingError(format!("血糖值“{value}”超出合理范围(mmol/L)")));
            }
            // 中国2型糖尿病防治指南: fasting glucose ≥ 7.0 mmol/L diabetic; < 3.9 hypoglycaemia.
            Ok((Some(v), None, !(3.9..7.0).contains(&v)))
        }
        HealthKind::BloodLipids => {
            let v = num(value)?;
            // 中国成人血脂异常防治指南: total cholesterol ≥ 6.2 mmol/L is high.
            Ok((Some(v), None, v >= 6.2))
        }
        HealthKind::UricAcid => {
            let v = num(value)?;
            // 高尿酸血症: > 420 µmol/L.
            Ok((Some(v), None, v > 420.0))
        }
        HealthKind::Bmi => {
            let v = num(value)?;
            // 中国成人超重和肥胖: BMI ≥ 28 obese, < 18.5 underweight.
            Ok((Some(v), None, !(18.5..28.0).contains(&v)))
        }
        HealthKind::BoneDensity => {
            let v: f64 = value.trim().parse().map_err(|_| ReadingError(format!("骨密度值“{value}”不是有效数字")))?;
            // WHO: T-score ≤ -2.5 osteoporosis.
            Ok((Some(v), None, v <= -2.5))
        }
        HealthKind::Weight => Ok((Some(num(value)?), None, false)),
        HealthKind::Other => Ok((value.trim().parse().ok(), None, false)),
    }
}

/// A reading as the platform shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub checked_on: NaiveDate,
    pub kind: String,
    pub value: String,
    pub unit: Option<String>,
    pub abnormal: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blood_pressure_thresholds() {
        assert_eq!(assess(HealthKind::BloodPressure, "135/85").unwrap(), (Some(135.0), Some(85.0), false));
        assert!(assess(HealthKind::BloodPressure, "140/80").unwrap().2);
        assert!(assess(HealthKind::BloodPressure, "130/90").unwrap().2);
        assert!(assess(HealthKind::BloodPressure, "135").is_err());
        assert!(assess(HealthKind::BloodPressure, "85/135").is_err());
    }

    #[test]
    fn glucose_and_others() {
        assert!(!assess(HealthKind::BloodGlucose, "5.6").unwrap().2);
        assert!(assess(HealthKind::BloodGlucose, "7.2").unwrap().2);
        assert!(assess(HealthKind::BloodGlucose, "3.5").unwrap().2);
        assert!(assess(HealthKind::BloodGlucose, "abc").is_err());
        assert!(assess(HealthKind::UricAcid, "480").unwrap().2);
        assert!(!assess(HealthKind::Weight, "70.5").unwrap().2);
        assert_eq!(HealthKind::parse("空腹血糖"), HealthKind::BloodGlucose);
    }
}
