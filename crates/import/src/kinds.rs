//! The six kinds of ERP data and their columns, exactly as DATA.md names them: the English name or
//! any Chinese alias, matched case-insensitively, ignoring surrounding spaces.

use crate::ImportError;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Stores,
    Members,
    Products,
    Sales,
    Returns,
    HealthChecks,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::Stores, Kind::Members, Kind::Products, Kind::Sales, Kind::Returns, Kind::HealthChecks];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stores => "stores",
            Kind::Members => "members",
            Kind::Products => "products",
            Kind::Sales => "sales",
            Kind::Returns => "returns",
            Kind::HealthChecks => "health_checks",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s || (s == "health-checks" && *k == Kind::HealthChecks))
    }

    /// The tables an import of this kind fills and then looks up in.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Kind::Stores => &["stores"],
            Kind::Members => &["members", "member_cards", "tickets"],
            Kind::Products => &["products"],
            Kind::Sales => &["tickets", "ticket_lines"],
            Kind::Returns => &["returns"],
            Kind::HealthChecks => &["health_checks"],
        }
    }

    /// The columns of this kind: (name, aliases, required).
    pub fn columns(self) -> &'static [Column] {
        match self {
            Kind::Stores => STORES,
            Kind::Members => MEMBERS,
            Kind::Products => PRODUCTS,
            Kind::Sales => SALES,
            Kind::Returns => RETURNS,
            Kind::HealthChecks => HEALTH_CHECKS,
        }
    }
}

/// One column of the contract.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub required: bool,
}

const fn col(name: &'static str, aliases: &'static [&'static str], required: bool) -> Column {
    Column { name, aliases, required }
}

const STORES: &[Column] = &[
    col("store_code", &["门店编码", "门店编号"], true),
    col("name", &["门店名称"], true),
    col("company_code", &["公司编码"], false),
    col("city", &["城市"], false),
    col("address", &["地址"], false),
    col("opened_on", &["开业日期"], false),
];

const MEMBERS: &[Column] = &[
    col("card_no", &["会员卡号", "卡号"], true),
    col("name", &["姓名", "会员姓名"], false),
    col("phone", &["手机号", "手机", "电话"], false),
    col("gender", &["性别"], false),
    col("birthday", &["出生日期", "生日"], false),
    col("id_number", &["身份证号"], false),
    col("store_code", &["办卡门店", "开卡门店"], false),
    col("registered_at", &["办卡日期", "注册时间", "开卡日期"], false),
    col("clerk_code", &["开卡店员", "发展人"], false),
    col("source", &["注册来源"], false),
    col("referrer_card_no", &["推荐人卡号"], false),
    col("allergies", &["过敏史", "药物过敏"], false),
    col("chronic_conditions", &["慢病", "慢病类型"], false),
    col("sms_opt_in", &["接收短信"], false),
    col("points", &["积分", "当前积分"], false),
];

const PRODUCTS: &[Column] = &[
    col("product_code", &["商品编码", "商品编号"], true),
    col("name", &["商品名称", "品名"], true),
    col("generic_name", &["通用名"], false),
    col("spec", &["规格"], false),
    col("manufacturer", &["生产厂家", "厂家"], false),
    col("brand", &["品牌"], false),
    col("category", &["品类", "分类"], false),
    col("is_prescription", &["处方药"], false),
    col("retail_price", &["零售价"], false),
    col("cost_price", &["成本价", "进价"], false),
    col("days_per_pack", &["每盒可用天数", "服用天数"], false),
    col("ingredients", &["成分"], false),
    col("points_excluded", &["不积分"], false),
];

const SALES: &[Column] = &[
    col("ticket_no", &["小票号", "单号", "流水号"], true),
    col("line_no", &["行号"], false),
    col("sold_at", &["销售时间", "日期"], true),
    col("store_code", &["门店编码"], true),
    col("card_no", &["会员卡号"], false),
    col("clerk_code", &["营业员", "店员编码"], false),
    col("product_code", &["商品编码"], true),
    col("quantity", &["数量"], true),
    col("unit_price", &["单价"], false),
    col("amount", &["金额", "实收金额"], true),
    col("discount", &["折扣金额", "优惠金额"], false),
    col("cost", &["成本"], false),
];

const RETURNS: &[Column] = &[
    col("ticket_no", &["小票号", "原小票号", "单号"], true),
    col("return_no", &["退货单号"], true),
    col("returned_at", &["退货时间"], true),
    col("product_code", &["商品编码"], true),
    col("quantity", &["数量", "退货数量"], true),
    col("amount", &["金额", "退货金额"], true),
];

const HEALTH_CHECKS: &[Column] = &[
    col("card_no", &["会员卡号", "卡号"], true),
    col("store_code", &["门店编码"], false),
    col("checked_at", &["检测时间"], true),
    col("kind", &["检测项目"], true),
    col("value", &["检测值"], true),
    col("unit", &["单位"], false),
];

fn normalize(h: &str) -> String {
    rxmember_core::clean::normalize_width(h.trim_start_matches('\u{feff}')).to_lowercase()
}

/// Which position of a record holds which column of the kind.
#[derive(Debug)]
pub struct Mapping {
    pub kind: Kind,
    positions: Vec<(&'static str, usize)>,
    unknown: Vec<String>,
    /// How many columns the header has.
    pub width: usize,
}

impl Mapping {
    /// Matches a header row against the kind's columns. Fails when a required column is missing.
    pub fn new(kind: Kind, header: &[String]) -> Result<Mapping, ImportError> {
        let mut positions = Vec::new();
        let mut unknown = Vec::new();
        for (i, h) in header.iter().enumerate() {
            let n = normalize(h);
            if n.is_empty() {
                continue;
            }
            let found = kind.columns().iter().find(|c| c.name == n || c.aliases.iter().any(|a| normalize(a) == n));
            match found {
                Some(c) if !positions.iter().any(|(name, _)| *name == c.name) => positions.push((c.name, i)),
                Some(_) => unknown.push(format!("{h} (重复列，已忽略)")),
                None => unknown.push(h.trim().to_string()),
            }
        }
        let missing: Vec<String> = kind
            .columns()
            .iter()
            .filter(|c| c.required && !positions.iter().any(|(n, _)| *n == c.name))
            .map(|c| format!("{} ({})", c.name, c.aliases.join("/")))
            .collect();
        if !missing.is_empty() {
            return Err(ImportError::MissingColumns(missing));
        }
        Ok(Mapping { kind, positions, unknown, width: header.len() })
    }

    /// The raw value of `column` in `record`, if the file has that column.
    pub fn get<'a>(&self, record: &'a [String], column: &str) -> Option<&'a str> {
        self.positions.iter().find(|(n, _)| *n == column).and_then(|(_, i)| record.get(*i)).map(String::as_str)
    }

    pub fn unknown_columns(&self) -> Vec<String> {
        self.unknown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn chinese_and_english_headers_map_to_the_same_columns() {
        let m = Mapping::new(Kind::Members, &h(&["\u{feff}会员卡号", " Phone ", "姓名", "备注"])).unwrap();
        let rec = h(&["C1", "138", "张三", "x"]);
        assert_eq!(m.get(&rec, "card_no"), Some("C1"));
        assert_eq!(m.get(&rec, "phone"), Some("138"));
        assert_eq!(m.get(&rec, "name"), Some("张三"));
        assert_eq!(m.get(&rec, "birthday"), None);
        assert_eq!(m.unknown_columns(), vec!["备注".to_string()]);
    }

    #[test]
    fn missing_required_columns_are_named() {
        let e = Mapping::new(Kind::Sales, &h(&["小票号", "商品编码", "数量"])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("sold_at") && msg.contains("store_code") && msg.contains("amount"), "{msg}");
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }
}
