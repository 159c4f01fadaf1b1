//! The product category taxonomy (商品品类): major and minor categories with stable codes. The default
//! pharmacy taxonomy ships as `data/taxonomy.csv` (about 65 major and 300 minor categories, the breadth
//! the seeds cite for the reference platform); each company gets its own copy and may change it.

use serde::Serialize;

/// One category. A major category has a 2-character code; a minor one has its major's code plus two more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    pub code: String,
    pub major_code: String,
    pub name: String,
    pub name_en: String,
}

impl Category {
    pub fn is_major(&self) -> bool {
        self.code == self.major_code
    }
}

/// A full taxonomy: majors and minors in code order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Taxonomy {
    pub categories: Vec<Category>,
}

/// A taxonomy file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("taxonomy line {line}: {reason}")]
pub struct TaxonomyError {
    pub line: usize,
    pub reason: String,
}

const DEFAULT_CSV: &str = include_str!("../data/taxonomy.csv");

impl Taxonomy {
    /// The shipped default pharmacy taxonomy.
    pub fn default_pharmacy() -> Taxonomy {
        Taxonomy::parse_csv(DEFAULT_CSV).expect("the shipped taxonomy is valid (tested)")
    }

    /// Parses `major_code,major_name,major_name_en,minor_code,minor_name,minor_name_en` rows (header
    /// first). Fields must not contain commas.
    pub fn parse_csv(text: &str) -> Result<Taxonomy, TaxonomyError> {
        let mut categories: Vec<Category> = Vec::new();
        for (i, raw) in text.lines().enumerate().skip(1) {
            let line = i + 1;
            let raw = raw.trim_start_matches('\u{feff}').trim();
            if raw.is_empty() {
                continue;
            }
            let f: Vec<&str> = raw.split(',').map(str::trim).collect();
            if f.len() != 6 {
                return Err(TaxonomyError { line, reason: format!("expected 6 fields, found {}", f.len()) });
            }
            let (major, minor) = (f[0], f[3]);
            if major.is_empty() || !minor.starts_with(major) || minor.len() <= major.len() {
                return Err(TaxonomyError {
                    line,
                    reason: format!("minor code {minor} must extend major code {major}"),
                });
            }
            if !categories.iter().any(|c| c.code == major) {
                categories.push(Category {
                    code: major.into(),
                    major_code: major.into(),
                    name: f[1].into(),
                    name_en: f[2].into(),
                });
            }
            if categories.iter().any(|c| c.code == minor) {
                return Err(TaxonomyError { line, reason: format!("duplicate code {minor}") });
            }
            categories.push(Category {
                code: minor.into(),
                major_code: major.into(),
                name: f[4].into(),
                name_en: f[5].into(),
            });
        }
        categories.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(Taxonomy { categories })
    }

    /// The CSV form [`parse_csv`](Self::parse_csv) reads.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("major_code,major_name,major_name_en,minor_code,minor_name,minor_name_en\n");
        for m in self.minors() {
            if let Some(major) = self.get(&m.major_code) {
                out.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    major.code, major.name, major.name_en, m.code, m.name, m.name_en
                ));
            }
        }
        out
    }

    pub fn majors(&self) -> impl Iterator<Item = &Category> {
        self.categories.iter().filter(|c| c.is_major())
    }

    pub fn minors(&self) -> impl Iterator<Item = &Category> {
        self.categories.iter().filter(|c| !c.is_major())
    }

    pub fn get(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }

    /// Resolves what an ERP writes in the category column: a code (`0301`), a path of names
    /// (`心脑血管用药/降压药`, also with `>` or `-`), or a unique minor or major name.
    pub fn resolve(&self, s: &str) -> Option<&Category> {
        let s = s.trim();
        if let Some(c) = self.get(s) {
            return Some(c);
        }
        if let Some((major, minor)) = s.split_once(['/', '>', '／']) {
            let (major, minor) = (major.trim(), minor.trim());
            let m = self.majors().find(|c| c.name == major || c.code == major)?;
            return self.minors().find(|c| c.major_code == m.code && c.name == minor);
        }
        let mut named = self.categories.iter().filter(|c| c.name == s || c.name_en.eq_ignore_ascii_case(s));
        let first = named.next()?;
        // Prefer a minor over a major of the same name; refuse genuinely ambiguous names.
        match named.next() {
            None => Some(first),
            Some(second) if first.is_major() != second.is_major() => {
                Some(if first.is_major() { second } else { first })
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_taxonomy_has_the_breadth_the_seeds_cite() {
        let t = Taxonomy::default_pharmacy();
        let majors = t.majors().count();
        let minors = t.minors().count();
        assert!(majors >= 60, "{majors} majors");
        assert!(minors >= 280, "{minors} minors");
        for m in t.minors() {
            assert!(t.get(&m.major_code).is_some(), "{} has no major", m.code);
        }
    }

    #[test]
    fn resolves_codes_paths_and_names() {
        let t = Taxonomy::parse_csv(
            "major_code,major_name,major_name_en,minor_code,minor_name,minor_name_en\n\
             03,心脑血管用药,Cardiovascular,0301,降压药,Antihypertensives\n\
             03,心脑血管用药,Cardiovascular,0302,调血脂药,Lipid regulators\n\
             04,内分泌用药,Endocrine,0401,口服降糖药,Oral antidiabetics\n",
        )
        .unwrap();
        assert_eq!(t.resolve("0301").unwrap().name, "降压药");
        assert_eq!(t.resolve("心脑血管用药/调血脂药").unwrap().code, "0302");
        assert_eq!(t.resolve("口服降糖药").unwrap().code, "0401");
        assert_eq!(t.resolve("内分泌用药").unwrap().code, "04");
        assert!(t.resolve("心脑血管用药/口服降糖药").is_none());
        assert!(t.resolve("不存在").is_none());
    }

    #[test]
    fn csv_round_trips() {
        let t = Taxonomy::default_pharmacy();
        assert_eq!(Taxonomy::parse_csv(&t.to_csv()).unwrap(), t);
    }

    #[test]
    fn rejects_broken_files() {
        let e = Taxonomy::parse_csv("h\n03,a,b,0401,c,d\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
