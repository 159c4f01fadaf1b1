//! Cleaning rules for ERP exports (数据清洗及容错处理): every value an ERP file carries goes through one
//! of these functions before it is stored. Each failure is a [`CleanError`] with a stable code (for
//! machines) and a Chinese message (for the operator reading the import report).

use crate::member::Gender;
use crate::money::Fen;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use std::fmt;

/// Why a value could not be cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanError {
    /// Stable machine code, e.g. `invalid_phone`.
    pub code: &'static str,
    /// Chinese explanation for the operator.
    pub message: String,
}

impl CleanError {
    pub fn new(code: &'static str, message: impl Into<String>) -> CleanError {
        CleanError { code, message: message.into() }
    }
}

impl fmt::Display for CleanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for CleanError {}

/// Maps full-width ASCII (＋８６ １３８…) to half-width and trims every kind of space, including the
/// ideographic space and NBSP that Excel exports leave behind.
pub fn normalize_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{3000}' | '\u{00A0}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Trimmed text, or `None` when empty (or one of the placeholders ERPs write for "nothing").
pub fn text(s: &str) -> Option<String> {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{3000}' || c == '\u{FEFF}');
    match t {
        "" | "NULL" | "null" | "None" | "-" | "--" | "/" | "无" | "未设置" => None,
        _ => Some(t.to_string()),
    }
}

/// A mainland mobile number as 11 digits. Accepts `+86`, `0086` or `86` prefixes, spaces, dashes,
/// dots, parentheses and full-width digits.
pub fn phone(s: &str) -> Result<String, CleanError> {
    let n = normalize_width(s);
    let digits: String = n.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+')).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(CleanError::new("invalid_phone", format!("手机号“{s}”含有非数字字符")));
    }
    let d = digits
        .strip_prefix("0086")
        .or_else(|| if digits.len() == 13 { digits.strip_prefix("86") } else { None })
        .unwrap_or(&digits);
    if d.len() != 11 {
        return Err(CleanError::new("invalid_phone", format!("手机号“{s}”不是11位大陆手机号")));
    }
    let b = d.as_bytes();
    if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
        return Err(CleanError::new("invalid_phone", format!("手机号“{s}”号段无效（应以13-19开头）")));
    }
    Ok(d.to_string())
}

/// A calendar date in any format ERPs export: `2024-01-02`, `2024/1/2`, `2024.1.2`, `20240102`,
/// `2024年1月2日`, optionally followed by a time (which is ignored).
pub fn date(s: &str) -> Result<NaiveDate, CleanError> {
    datetime(s).map(|dt| dt.date())
}

/// A local date-time: a date as in [`date`] with an optional time `13:45`, `13:45:00`, `13:45:00.123`,
/// separated by a space or `T`. A date alone means midnight.
pub fn datetime(s: &str) -> Result<NaiveDateTime, CleanError> {
    let bad = || CleanError::new("invalid_date", format!("无法识别的日期“{s}”"));
    let n = normalize_width(s);
    if n.is_empty() {
        return Err(CleanError::new("missing_value", "日期为空"));
    }
    let (date_part, time_part) = match n.find([' ', 'T']) {
        Some(i) => (&n[..i], n[i + 1..].trim()),
        None => (n.as_str(), ""),
    };
    let date = parse_date_part(date_part).ok_or_else(bad)?;
    if !(1900..=2100).contains(&date.year()) {
        return Err(CleanError::new("invalid_date", format!("日期“{s}”超出合理范围(1900-2100)")));
    }
    let time = if time_part.is_empty() { NaiveTime::MIN } else { parse_time_part(time_part).ok_or_else(bad)? };
    Ok(date.and_time(time))
}

fn parse_date_part(p: &str) -> Option<NaiveDate> {
    if p.len() == 8 && p.chars().all(|c| c.is_ascii_digit()) {
        let y = p[..4].parse().ok()?;
        let m = p[4..6].parse().ok()?;
        let d = p[6..].parse().ok()?;
        return NaiveDate::from_ymd_opt(y, m, d);
    }
    let parts: Vec<&str> = p.split(['-', '/', '.', '年', '月', '日']).filter(|x| !x.is_empty()).collect();
    if parts.len() != 3 || parts[0].len() != 4 {
        return None;
    }
    let y = parts[0].parse().ok()?;
    let m = parts[1].parse().ok()?;
    let d = parts[2].parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

fn parse_time_part(p: &str) -> Option<NaiveTime> {
    let p = p.split('.').next()?; // drop fractional seconds
    let parts: Vec<&str> = p.split(':').collect();
    let h = parts.first()?.parse().ok()?;
    let m = parts.get(1).map(|x| x.parse()).transpose().ok()?.unwrap_or(0);
    let s = parts.get(2).map(|x| x.parse()).transpose().ok()?.unwrap_or(0);
    if parts.len() > 3 {
        return None;
    }
    NaiveTime::from_hms_opt(h, m, s)
}

/// An Excel serial date number (days since 1899-12-30, with fractional time) as a local date-time.
pub fn excel_serial(serial: f64) -> Option<NaiveDateTime> {
    if !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let base = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_time(NaiveTime::MIN);
    let ms = (serial * 86_400_000.0).round() as i64;
    base.checked_add_signed(chrono::Duration::milliseconds(ms))
}

/// Yuan → fen. Accepts `12.5`, `12.50`, `￥12.50`, `¥1,234.00`, `12.5元`, `-3`. More than two decimals
/// (float noise from ERP calculations, `12.3400001`) is rounded half away from zero to the fen.
/// Amounts beyond [`Fen::LIMIT`] either way are refused.
pub fn money(s: &str) -> Result<Fen, CleanError> {
    let n = normalize_width(s);
    let t: String = n.chars().filter(|c| !matches!(c, '￥' | '¥' | ',' | ' ' | '元' | '$')).collect();
    let fen = decimal_scaled(&t, 2).ok_or_else(|| CleanError::new("invalid_money", format!("无法识别的金额“{s}”")))?;
    if fen.unsigned_abs() > Fen::LIMIT.0.unsigned_abs() {
        return Err(CleanError::new(
            "money_out_of_range",
            format!("金额“{s}”超出范围（绝对值不超过 {} 元）", Fen::LIMIT),
        ));
    }
    Ok(Fen(fen))
}

/// A quantity (may be fractional for split packs, 拆零) in thousandths.
pub fn quantity_milli(s: &str) -> Result<i64, CleanError> {
    let t = normalize_width(s);
    decimal_scaled(&t, 3).ok_or_else(|| CleanError::new("invalid_quantity", format!("无法识别的数量“{s}”")))
}

/// Parses a decimal string into an integer scaled by 10^scale, rounding half away from zero.
fn decimal_scaled(t: &str, scale: u32) -> Option<i64> {
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if body.is_empty() {
        return None;
    }
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int_v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_v: i64 = 0;
    let mut round_up = false;
    for (i, c) in frac.chars().enumerate() {
        let d = c as i64 - '0' as i64;
        if (i as u32) < scale {
            frac_v = frac_v * 10 + d;
        } else if i as u32 == scale {
            round_up = d >= 5;
        }
    }
    for _ in frac.len() as u32..scale {
        frac_v *= 10;
    }
    let v = int_v.checked_mul(10i64.pow(scale))?.checked_add(frac_v + round_up as i64)?;
    Some(if neg { -v } else { v })
}

/// 男/女/M/F/male/female/1/2; empty or 未设置 → unknown.
pub fn gender(s: &str) -> Result<Gender, CleanError> {
    let t = normalize_width(s).to_lowercase();
    Ok(match t.as_str() {
        "男" | "m" | "male" | "1" | "男性" => Gender::Male,
        "女" | "f" | "female" | "2" | "女性" => Gender::Female,
        "" | "未设置" | "未知" | "unknown" | "0" | "u" => Gender::Unknown,
        _ => return Err(CleanError::new("invalid_gender", format!("无法识别的性别“{s}”"))),
    })
}

/// Yes/no in the forms ERPs use: 是/否, Y/N, 1/0, true/false, yes/no, √/×.
pub fn boolean(s: &str) -> Result<bool, CleanError> {
    let t = normalize_width(s).to_lowercase();
    Ok(match t.as_str() {
        "是" | "y" | "yes" | "1" | "true" | "√" | "t" | "接收" | "同意" => true,
        "否" | "n" | "no" | "0" | "false" | "×" | "x" | "f" | "不接收" | "拒绝" => false,
        _ => return Err(CleanError::new("invalid_boolean", format!("无法识别的是/否值“{s}”"))),
    })
}

/// A `;`-separated list (also accepts `；`, `、`, `，` and `|`), trimmed, empties removed, duplicates
/// removed with order kept.
pub fn list(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split([';', '；', '、', '，', '|']) {
        if let Some(t) = text(part)
            && !out.contains(&t)
        {
            out.push(t);
        }
    }
    out
}

/// A validated Chinese resident identity number with what it encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdNumber {
    /// Always the 18-digit form (15-digit first-generation numbers are upgraded).
    pub number: String,
    pub birthday: NaiveDate,
    pub gender: Gender,
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

fn id_check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17.iter().zip(ID_WEIGHTS).map(|(d, w)| (d - b'0') as u32 * w).sum();
    ID_CHECK[(sum % 11) as usize]
}

/// Validates a resident ID number (GB 11643): 17 digits + check character by ISO 7064 MOD 11-2, with a
/// real birth date. 15-digit first-generation numbers are converted to 18 digits.
pub fn id_number(s: &str) -> Result<IdNumber, CleanError> {
    let t = normalize_width(s).to_uppercase();
    let number = match t.len() {
        18 => t,
        15 if t.bytes().all(|b| b.is_ascii_digit()) => {
            let mut n = format!("{}19{}", &t[..6], &t[6..]);
            let c = id_check_char(n.as_bytes());
            n.push(c as char);
            n
        }
        _ => {
            return Err(CleanError::new("invalid_id_number", format!("身份证号“{}”长度应为18位", mask_id(s))));
        }
    };
    let b = number.as_bytes();
    if !b[..17].iter().all(|c| c.is_ascii_digit()) || !(b[17].is_ascii_digit() || b[17] == b'X') {
        return Err(CleanError::new("invalid_id_number", format!("身份证号“{}”含有非法字符", mask_id(s))));
    }
    if id_check_char(&b[..17]) != b[17] {
        return Err(CleanError::new("invalid_id_number", format!("身份证号“{}”校验位错误", mask_id(s))));
    }
    let birthday = NaiveDate::parse_from_str(&number[6..14], "%Y%m%d")
        .ok()
        .filter(|d| d.year() >= 1900)
        .ok_or_else(|| CleanError::new("invalid_id_number", format!("身份证号“{}”出生日期无效", mask_id(s))))?;
    let gender = if (b[16] - b'0') % 2 == 1 { Gender::Male } else { Gender::Female };
    Ok(IdNumber { number, birthday, gender })
}

/// ID numbers are personal data: reports show only their ends.
fn mask_id(s: &str) -> String {
    let t = s.trim();
    if t.chars().count() > 8 {
        let head: String = t.chars().take(4).collect();
        let tail: String = t.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        format!("{head}…{tail}")
    } else {
        "…".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn phones_are_normalised() {
        for raw in [
            "13812341234",
            "+86 138 1234 1234",
            "0086-138-1234-1234",
            "8613812341234",
            "１３８１２３４１２３４",
            " 138-1234-1234 ",
        ] {
            assert_eq!(phone(raw).unwrap(), "13812341234", "{raw}");
        }
        for raw in ["1381234123", "23812341234", "12812341234", "138abc41234", "028-88889999", ""] {
            assert_eq!(phone(raw).unwrap_err().code, "invalid_phone", "{raw}");
        }
    }

    #[test]
    fn dates_in_erp_formats() {
        for raw in
            ["2024-01-02", "2024/1/2", "20240102", "2024.1.2", "2024年1月2日", "2024-01-02 13:45:00", "2024/1/2 13:45"]
        {
            assert_eq!(date(raw).unwrap(), d(2024, 1, 2), "{raw}");
        }
        assert_eq!(datetime("2024/1/2 13:45").unwrap(), d(2024, 1, 2).and_hms_opt(13, 45, 0).unwrap());
        assert_eq!(datetime("2024-01-02T08:05:09.250").unwrap(), d(2024, 1, 2).and_hms_opt(8, 5, 9).unwrap());
        for raw in ["2024-02-30", "2024-13-01", "02/01/2024", "yesterday", "2024-01-02 25:00", "1850-01-01"] {
            assert!(date(raw).is_err(), "{raw}");
        }
        assert_eq!(date("").unwrap_err().code, "missing_value");
    }

    #[test]
    fn excel_serials() {
        assert_eq!(excel_serial(45293.0).unwrap(), d(2024, 1, 2).and_hms_opt(0, 0, 0).unwrap());
        assert_eq!(excel_serial(45293.5).unwrap(), d(2024, 1, 2).and_hms_opt(12, 0, 0).unwrap());
        assert!(excel_serial(-1.0).is_none());
    }

    #[test]
    fn money_in_yuan_becomes_fen() {
        assert_eq!(money("12.5").unwrap(), Fen(1250));
        assert_eq!(money("12.50").unwrap(), Fen(1250));
        assert_eq!(money("￥12.50").unwrap(), Fen(1250));
        assert_eq!(money("¥1,234.00").unwrap(), Fen(123400));
        assert_eq!(money("12元").unwrap(), Fen(1200));
        assert_eq!(money("-3").unwrap(), Fen(-300));
        assert_eq!(money(".5").unwrap(), Fen(50));
        assert_eq!(money("12.345").unwrap(), Fen(1235));
        assert_eq!(money("12.3400001").unwrap(), Fen(1234));
        for raw in ["", "abc", "12.3.4", "1,2a", "-", "."] {
            assert_eq!(money(raw).unwrap_err().code, "invalid_money", "{raw}");
        }
    }

    #[test]
    fn money_beyond_ten_million_yuan_is_refused() {
        assert_eq!(money("10,000,000.00").unwrap(), Fen::LIMIT);
        assert_eq!(money("-10000000").unwrap(), Fen(-Fen::LIMIT.0));
        for raw in ["10000000.01", "-10000000.01", "123456789012"] {
            let e = money(raw).unwrap_err();
            assert_eq!(e.code, "money_out_of_range", "{raw}");
            assert!(e.message.contains(raw), "{raw}: {}", e.message);
        }
    }

    #[test]
    fn quantities_keep_three_decimals() {
        assert_eq!(quantity_milli("2").unwrap(), 2000);
        assert_eq!(quantity_milli("0.333").unwrap(), 333);
        assert_eq!(quantity_milli("-1").unwrap(), -1000);
        assert!(quantity_milli("two").is_err());
    }

    #[test]
    fn id_numbers_validate_and_derive() {
        // GB 11643 example number.
        let id = id_number("11010519491231002X").unwrap();
        assert_eq!(id.birthday, d(1949, 12, 31));
        assert_eq!(id.gender, Gender::Female);
        let id = id_number("110101199003074514").unwrap();
        assert_eq!(id.birthday, d(1990, 3, 7));
        assert_eq!(id.gender, Gender::Male);
        assert_eq!(id_number("11010519491231002x").unwrap().number, "11010519491231002X");
        // Wrong check digit, bad date, bad length, letters.
        assert!(id_number("110101199003074515").unwrap_err().message.contains("校验位"));
        assert!(id_number("110101199002304516").is_err());
        assert!(id_number("1101011990030745").is_err());
        assert!(id_number("11010A199003074514").is_err());
        // The error never echoes the whole number.
        assert!(!id_number("110101199003074515").unwrap_err().message.contains("199003074515"));
    }

    #[test]
    fn fifteen_digit_ids_are_upgraded() {
        let id = id_number("110105491231002").unwrap();
        assert_eq!(id.number, "11010519491231002X");
        assert_eq!(id.birthday, d(1949, 12, 31));
    }

    #[test]
    fn genders_and_booleans() {
        assert_eq!(gender("男").unwrap(), Gender::Male);
        assert_eq!(gender("F").unwrap(), Gender::Female);
        assert_eq!(gender("2").unwrap(), Gender::Female);
        assert_eq!(gender("未设置").unwrap(), Gender::Unknown);
        assert!(gender("其他x").is_err());
        assert!(boolean("是").unwrap());
        assert!(!boolean("N").unwrap());
        assert!(boolean("maybe").is_err());
    }

    #[test]
    fn lists_split_on_chinese_separators() {
        assert_eq!(list("青霉素；头孢; 磺胺、青霉素"), vec!["青霉素", "头孢", "磺胺"]);
        assert!(list(" ; ").is_empty());
    }

    #[test]
    fn text_treats_placeholders_as_empty() {
        assert_eq!(text("  张三 "), Some("张三".into()));
        assert_eq!(text("NULL"), None);
        assert_eq!(text("\u{3000}"), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any amount printed as yuan (with the decorations ERPs add) parses back to the same fen.
        #[test]
        fn money_round_trips(fen in -Fen::LIMIT.0..=Fen::LIMIT.0, sym in 0..3usize, grouping in any::<bool>()) {
            let yuan = Fen(fen).to_string();
            let text = if grouping && fen.abs() >= 100_000 {
                // 1234567.89 → 1,234,567.89
                let (sign, body) = yuan.split_at(if fen < 0 { 1 } else { 0 });
                let (int, frac) = body.split_once('.').unwrap();
                let mut grouped = String::new();
                for (i, c) in int.chars().enumerate() {
                    if i > 0 && (int.len() - i) % 3 == 0 { grouped.push(','); }
                    grouped.push(c);
                }
                format!("{sign}{grouped}.{frac}")
            } else { yuan };
            let text = match sym { 0 => text, 1 => format!("￥{text}"), _ => format!("{text}元") };
            prop_assert_eq!(money(&text).unwrap(), Fen(fen));
        }

        /// Quantities keep exactly three decimals.
        #[test]
        fn quantity_round_trips(milli in -1_000_000_000i64..1_000_000_000) {
            let text = format!("{}{}.{:03}", if milli < 0 { "-" } else { "" }, milli.abs() / 1000, milli.abs() % 1000);
            prop_assert_eq!(quantity_milli(&text).unwrap(), milli);
        }

        /// Cleaning a phone is idempotent, and every decoration of a valid number gives the same digits.
        #[test]
        fn phone_cleaning_is_idempotent(second in 3u8..10, rest in 0u64..1_000_000_000, style in 0..4usize) {
            let digits = format!("1{second}{rest:09}");
            let decorated = match style {
                0 => digits.clone(),
                1 => format!("+86 {} {} {}", &digits[..3], &digits[3..7], &digits[7..]),
                2 => format!("0086-{digits}"),
                _ => digits.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap()).collect(),
            };
            let clean = phone(&decorated).unwrap();
            prop_assert_eq!(&clean, &digits);
            prop_assert_eq!(phone(&clean).unwrap(), clean);
        }

        /// A 17-digit body with its computed check character always validates, and one changed
        /// digit never does.
        #[test]
        fn id_checksum_catches_single_digit_errors(y in 1930i32..2020, m in 1u32..13, d in 1u32..29, seq in 0u32..1000, pos in 0usize..17, delta in 1u8..10) {
            let body = format!("500103{y:04}{m:02}{d:02}{seq:03}");
            let check = id_check_char(body.as_bytes()) as char;
            let id = format!("{body}{check}");
            let parsed = id_number(&id).unwrap();
            prop_assert_eq!(parsed.birthday, NaiveDate::from_ymd_opt(y, m, d).unwrap());
            let mut bytes = id.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            prop_assert!(id_number(std::str::from_utf8(&bytes).unwrap()).is_err());
        }
    }
}
