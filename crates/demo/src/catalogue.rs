//! The demo drug catalogue (`data/products_part*.csv`): real-looking Chinese products over the
//! default taxonomy, with prices, cost ratios, days per pack for chronic drugs, ingredients (for
//! allergy warnings), the chronic condition a drug treats, and its selling season.

use rxmember_core::Fen;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Season {
    None,
    /// Colds, flu, coughs: winter peaks.
    Flu,
    /// Heatstroke, diarrhoea, mosquitoes.
    Summer,
    /// Hay fever.
    Spring,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub minor_code: String,
    pub generic_name: String,
    pub product_name: String,
    pub spec: String,
    pub manufacturer: String,
    pub retail_price: Fen,
    pub cost_price: Fen,
    pub days_per_pack: Option<i64>,
    pub is_prescription: bool,
    pub ingredients: Vec<String>,
    pub condition: Option<String>,
    pub season: Season,
}

const PARTS: [&str; 3] = [
    include_str!("../data/products_part1.csv"),
    include_str!("../data/products_part2.csv"),
    include_str!("../data/products_part3.csv"),
];

/// The whole catalogue, in file order. Malformed lines are skipped (the files are checked by a test).
pub fn items() -> Vec<Item> {
    PARTS.iter().flat_map(|p| p.lines().skip(1)).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Item> {
    let f: Vec<&str> = line.trim().split(',').map(str::trim).collect();
    if f.len() != 12 {
        return None;
    }
    let retail = rxmember_core::clean::money(f[5]).ok()?;
    let ratio: f64 = f[6].parse().ok()?;
    Some(Item {
        minor_code: f[0].into(),
        generic_name: f[1].into(),
        product_name: f[2].into(),
        spec: f[3].into(),
        manufacturer: f[4].into(),
        retail_price: retail,
        cost_price: Fen((retail.0 as f64 * ratio).round() as i64),
        days_per_pack: f[7].parse().ok(),
        is_prescription: f[8] == "1",
        ingredients: rxmember_core::clean::list(f[9]),
        condition: rxmember_core::clean::text(f[10]),
        season: match f[11] {
            "flu" => Season::Flu,
            "summer" => Season::Summer,
            "spring" => Season::Spring,
            _ => Season::None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rxmember_core::taxonomy::Taxonomy;

    #[test]
    fn every_line_parses_and_every_category_exists() {
        let t = Taxonomy::default_pharmacy();
        let lines: usize = PARTS.iter().map(|p| p.lines().skip(1).filter(|l| !l.trim().is_empty()).count()).sum();
        let items = items();
        assert_eq!(items.len(), lines, "some catalogue lines do not parse");
        assert!(items.len() >= 250, "{} items", items.len());
        for i in &items {
            assert!(t.get(&i.minor_code).is_some(), "{} {}: unknown category {}", i.product_name, i.spec, i.minor_code);
            assert!(i.retail_price.0 > 0 && i.cost_price.0 > 0 && i.cost_price < i.retail_price, "{}", i.product_name);
        }
        let chronic = items.iter().filter(|i| i.condition.is_some() && i.days_per_pack.is_some()).count();
        let flu = items.iter().filter(|i| i.season == Season::Flu).count();
        assert!(chronic >= 80, "{chronic} chronic items");
        assert!(flu >= 30, "{flu} flu items");
    }
}
