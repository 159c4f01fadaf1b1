//! Members (会员): one person, known by one or more card numbers within a company.

use crate::ids::{CompanyId, MemberId, StoreId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
    #[default]
    Unknown,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Gender {
        match s {
            "male" => Gender::Male,
            "female" => Gender::Female,
            _ => Gender::Unknown,
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            Gender::Male => "男",
            Gender::Female => "女",
            Gender::Unknown => "未知",
        }
    }
}

/// How the member joined (注册来源).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationSource {
    Store,
    Wechat,
    Alipay,
    Referral,
    #[default]
    Import,
}

impl RegistrationSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationSource::Store => "store",
            RegistrationSource::Wechat => "wechat",
            RegistrationSource::Alipay => "alipay",
            RegistrationSource::Referral => "referral",
            RegistrationSource::Import => "import",
        }
    }
    /// Accepts the English codes and the Chinese words ERPs use.
    pub fn parse(s: &str) -> Option<RegistrationSource> {
        Some(match s.trim().to_lowercase().as_str() {
            "store" | "门店" | "线下" | "pos" => RegistrationSource::Store,
            "wechat" | "微信" | "公众号" | "小程序" => RegistrationSource::Wechat,
            "alipay" | "支付宝" => RegistrationSource::Alipay,
            "referral" | "推荐" | "转介绍" => RegistrationSource::Referral,
            "import" | "导入" => RegistrationSource::Import,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    /// 已注销: the card was cancelled; history is kept.
    Cancelled,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> MemberStatus {
        if s == "cancelled" { MemberStatus::Cancelled } else { MemberStatus::Active }
    }
}

/// A member as a cleaned import row (DATA.md "members") — what an ERP tells us about one card.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberInput {
    pub card_no: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub gender: Gender,
    pub birthday: Option<NaiveDate>,
    pub id_number: Option<String>,
    pub store_code: Option<String>,
    /// Epoch milliseconds.
    pub registered_at: Option<i64>,
    pub clerk_code: Option<String>,
    pub source: RegistrationSource,
    pub referrer_card_no: Option<String>,
    pub allergies: Vec<String>,
    pub chronic_conditions: Vec<String>,
    pub sms_opt_in: bool,
    /// Opening points balance carried over from a legacy system.
    pub points: Option<i64>,
}

/// A member as the platform shows it, personal data already decrypted (and masked where the role
/// requires it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub company_id: CompanyId,
    pub id: MemberId,
    pub card_no: String,
    /// Every card merged into this member, the primary card excluded.
    pub other_cards: Vec<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub gender: Gender,
    pub birthday: Option<NaiveDate>,
    pub store_id: Option<StoreId>,
    pub registered_at: Option<i64>,
    pub clerk_code: Option<String>,
    pub source: String,
    pub referrer_card_no: Option<String>,
    pub allergies: Vec<String>,
    pub chronic_conditions: Vec<String>,
    pub sms_opt_in: bool,
    pub status: MemberStatus,
}

/// Age in whole years on `on`.
pub fn age_on(birthday: NaiveDate, on: NaiveDate) -> i32 {
    use chrono::Datelike;
    let mut age = on.year() - birthday.year();
    if (on.month(), on.day()) < (birthday.month(), birthday.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_whole_years() {
        let b = NaiveDate::from_ymd_opt(1970, 6, 15).unwrap();
        assert_eq!(age_on(b, NaiveDate::from_ymd_opt(2024, 6, 14).unwrap()), 53);
        assert_eq!(age_on(b, NaiveDate::from_ymd_opt(2024, 6, 15).unwrap()), 54);
    }

    #[test]
    fn sources_accept_chinese() {
        assert_eq!(RegistrationSource::parse("微信"), Some(RegistrationSource::Wechat));
        assert_eq!(RegistrationSource::parse("Store"), Some(RegistrationSource::Store));
        assert_eq!(RegistrationSource::parse("火星"), None);
    }
}
