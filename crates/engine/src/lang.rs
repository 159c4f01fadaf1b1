//! The audience language (人群筛选语言): a small text language for member audiences, and its JSON form.
//!
//! ```text
//! grade in ("重要保持", "重要发展") and gender = "女" and age between 50 and 70
//! bought(category = "口服降糖药", within = 365d) and not checked(kind = "血糖", within = 365d)
//! ```
//!
//! The text form is parsed into [`Expr`]; the JSON form is [`Expr`] through serde. `Display` prints the
//! canonical text, which parses back to the same expression. Field and function names are checked
//! here (so errors point at the position); values (category names, grades, ...) are checked by the
//! evaluator, which reports the [`Span`] of the offending comparison. Documented in
//! `docs/audience-language.md`.

use std::fmt::{self, Write as _};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Where a piece of the text was: character offsets (not bytes), start inclusive, end exclusive.
/// Not part of the JSON form, and ignored by `==` so parsed and built expressions compare equal.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Expr {
    /// Every member in scope (`all`).
    All,
    And {
        args: Vec<Expr>,
    },
    Or {
        args: Vec<Expr>,
    },
    Not {
        arg: Box<Expr>,
    },
    /// `field <cmp> value`, e.g. `age >= 50`, `gender = "女"`.
    Compare {
        field: String,
        cmp: Cmp,
        value: Value,
        #[serde(skip)]
        span: Span,
    },
    /// `field in (v1, v2, ...)`.
    In {
        field: String,
        values: Vec<Value>,
        #[serde(skip)]
        span: Span,
    },
    /// `field between low and high`, both ends inclusive.
    Between {
        field: String,
        low: Value,
        high: Value,
        #[serde(skip)]
        span: Span,
    },
    /// `bought(category = "口服降糖药", within = 365d, times >= 2)`.
    Call {
        func: Func,
        args: Vec<Arg>,
        #[serde(skip)]
        span: Span,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    Date(NaiveDate),
    /// `365d`, `8w`, `6m`, `1y`.
    Duration {
        amount: i64,
        unit: DurationUnit,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurationUnit {
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Func {
    /// Purchases: `category`, `product`, `group`, `manufacturer`, `brand`, `store`, `within`, `since`,
    /// `before`, `times`, `spend`.
    Bought,
    /// Health checks: `kind`, `abnormal`, `within`, `since`, `before`, `times`.
    Checked,
    /// Registration: `within`, `since`, `before`, `source`, `store`.
    Registered,
    /// Unspent points that expire from the as-of day on: `within` (a window starting on the as-of
    /// day), `before` (a date), `points` (the amount; default `points >= 1`).
    PointsExpiring,
}

/// One argument of a call: `name <cmp> value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arg {
    pub name: String,
    pub cmp: Cmp,
    pub value: Value,
    #[serde(skip)]
    pub span: Span,
}

/// The fields a comparison may name. Types and meanings are in `docs/audience-language.md`;
/// the evaluator checks value types.
pub const FIELDS: &[&str] = &[
    // member attributes
    "gender",
    "age",
    "birthday_month",
    "tenure_days",
    "source",
    "store",
    "status",
    "referred",
    "sms_opt_in",
    "health_consent",
    "has_allergies",
    "chronic",
    // loyalty (the store's current state)
    "tier",
    "points_balance",
    // grades and classes
    "grade",
    "activity",
    "class",
    "tag",
    // consumption features (money in yuan, shares in percent)
    "recency_days",
    "frequency_12m",
    "monetary_12m",
    "avg_ticket",
    "items_per_ticket",
    "margin_rate",
    "discount_share",
    "tickets_total",
    "spend_total",
    "first_purchase_days",
    "returns_12m",
    "preferred_store",
    // health
    "checks_12m",
];

impl Func {
    pub fn name(self) -> &'static str {
        match self {
            Func::Bought => "bought",
            Func::Checked => "checked",
            Func::Registered => "registered",
            Func::PointsExpiring => "points_expiring",
        }
    }

    /// The argument names this function accepts.
    pub fn arg_names(self) -> &'static [&'static str] {
        match self {
            Func::Bought => &[
                "category",
                "product",
                "group",
                "manufacturer",
                "brand",
                "store",
                "within",
                "since",
                "before",
                "times",
                "spend",
            ],
            Func::Checked => &["kind", "abnormal", "within", "since", "before", "times"],
            Func::Registered => &["within", "since", "before", "source", "store"],
            Func::PointsExpiring => &["within", "before", "points"],
        }
    }
}

impl Func {
    /// The function of this name, ASCII case-insensitively.
    pub fn from_name(name: &str) -> Option<Func> {
        [Func::Bought, Func::Checked, Func::Registered, Func::PointsExpiring]
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

impl std::str::FromStr for Expr {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Expr, ParseError> {
        parse(text)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A syntax error in the text form: where, what would have been accepted there, and what was there.
///
/// `expected` and `found` are English; [`ParseError::message_zh`] translates them for the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Character offset (not bytes) of the offending character, from 0. Messages count from 1.
    pub offset: usize,
    /// What would have been accepted: descriptions (`a value (...)`), keywords (`in`), punctuation
    /// in quotes (`")"`) or argument names.
    pub expected: Vec<String>,
    /// The offending token's text, `end of input`, or `unknown field "xyz"` (also `unknown function`,
    /// `unknown argument`) for a name that is not in the language.
    pub found: String,
}

const END: &str = "end of input";

// What `expected` says, with the Chinese the UI shows. Names, keywords and punctuation are not
// translated.
const EXPRESSION: &str = "an expression";
const COMPARISON: &str = "a comparison (=, !=, <, <=, >, >=)";
const VALUE: &str = "a value (a quoted string, number, true/false, date or duration)";
const AND_OR: &str = "and / or";
const ANY_FIELD: &str = "a field (gender, age, grade, tag, recency_days, …)";
const ANY_FUNCTION: &str = "a function (bought, checked, registered)";
const DATE: &str = "a date (YYYY-MM-DD)";
const REAL_DATE: &str = "a date that exists (YYYY-MM-DD)";
const NUMBER: &str = "a number (e.g. 12, 12.5 or -3)";
const DURATION: &str = "a duration: a whole number followed by d, w, m or y (e.g. 365d)";
const DURATION_UNIT: &str = "a duration unit: d (days), w (weeks), m (months) or y (years)";
const CLOSING_QUOTE: &str = "the closing quote of this string";
const ESCAPE: &str = "an escape: a backslash followed by a quote or a backslash";
/// Keep the number in step with [`MAX_DEPTH`].
const SHALLOWER: &str = "at most 64 levels of not and parentheses";

const PHRASES_ZH: &[(&str, &str)] = &[
    (EXPRESSION, "表达式"),
    (COMPARISON, "比较符（=、!=、<、<=、>、>=）"),
    (VALUE, "值（带引号的字符串、数字、true/false、日期或时长）"),
    (AND_OR, "and / or（且 / 或）"),
    (ANY_FIELD, "字段（gender、age、grade、tag、recency_days 等）"),
    (ANY_FUNCTION, "函数（bought、checked、registered）"),
    (DATE, "日期（YYYY-MM-DD）"),
    (REAL_DATE, "存在的日期（YYYY-MM-DD）"),
    (NUMBER, "数字（如 12、12.5、-3）"),
    (DURATION, "时长：整数后接 d、w、m 或 y（如 365d）"),
    (DURATION_UNIT, "时长单位：d（天）、w（周）、m（月）或 y（年）"),
    (CLOSING_QUOTE, "这个字符串的结束引号"),
    (ESCAPE, "转义：反斜杠后接引号或反斜杠"),
    (SHALLOWER, "not 与括号最多嵌套 64 层"),
];

/// `unknown ... "x"` in `found`, with its Chinese.
const UNKNOWN_ZH: &[(&str, &str)] =
    &[("unknown field ", "未知字段 "), ("unknown function ", "未知函数 "), ("unknown argument ", "未知参数 ")];

/// `field (did you mean x?)` in `expected`, with its Chinese.
const DID_YOU_MEAN_ZH: &[(&str, &str)] = &[("field", "字段"), ("function", "函数"), ("argument", "参数")];

/// Deeper nesting than this is refused, so hostile text cannot overflow the stack.
const MAX_DEPTH: usize = 64;

impl ParseError {
    fn new(offset: usize, expected: &[&str], found: impl Into<String>) -> ParseError {
        ParseError { offset, expected: expected.iter().map(|e| e.to_string()).collect(), found: found.into() }
    }

    /// E.g. `第 13 个字符处：期望 比较符（=、!=、<、<=、>、>=）、in 或 between，实际是 "xyz"`.
    pub fn message_zh(&self) -> String {
        let at = self.offset + 1;
        let found = self.found_text(true);
        if self.expected.is_empty() {
            return format!("第 {at} 个字符处：无法识别 {found}");
        }
        let expected: Vec<String> = self.expected.iter().map(|e| expected_zh(e)).collect();
        format!("第 {at} 个字符处：期望 {}，实际是 {found}", join(&expected, "、", " 或 "))
    }

    /// E.g. `at character 13: expected a comparison (=, !=, <, <=, >, >=), in or between, found "xyz"`.
    pub fn message_en(&self) -> String {
        let at = self.offset + 1;
        let found = self.found_text(false);
        if self.expected.is_empty() {
            return format!("at character {at}: unexpected {found}");
        }
        format!("at character {at}: expected {}, found {found}", join(&self.expected, ", ", " or "))
    }

    /// The line of `text` holding the error and a `^` under the offending character, aligned for a
    /// terminal where CJK characters take two columns.
    pub fn caret(&self, text: &str) -> String {
        caret_at(text, self.offset)
    }

    fn found_text(&self, zh: bool) -> String {
        if self.found == END {
            return if zh { "输入结束".to_string() } else { END.to_string() };
        }
        for (en, in_zh) in UNKNOWN_ZH {
            if let Some(rest) = self.found.strip_prefix(en) {
                return if zh { format!("{in_zh}{rest}") } else { self.found.clone() };
            }
        }
        if self.found.starts_with(['"', '\'', '“', '‘']) {
            self.found.clone()
        } else {
            format!("\"{}\"", self.found)
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_zh())
    }
}

impl std::error::Error for ParseError {}

fn expected_zh(item: &str) -> String {
    if let Some((_, zh)) = PHRASES_ZH.iter().find(|(en, _)| *en == item) {
        return zh.to_string();
    }
    for (en, zh) in DID_YOU_MEAN_ZH {
        let name =
            item.strip_prefix(en).and_then(|r| r.strip_prefix(" (did you mean ")).and_then(|r| r.strip_suffix("?)"));
        if let Some(name) = name {
            return format!("{zh}（是否想写 {name}？）");
        }
    }
    item.to_string()
}

fn did_you_mean(what: &str, name: &str) -> String {
    format!("{what} (did you mean {name}?)")
}

/// `a, b or c`.
fn join(items: &[String], separator: &str, last_separator: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}{last_separator}{last}", init.join(separator)),
    }
}

/// The line of `text` holding character `offset` and a `^` under it, aligned for a terminal where
/// CJK characters take two columns.
pub fn caret_at(text: &str, offset: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let offset = offset.min(chars.len());
    let line_start = chars[..offset].iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
    let line_end = chars[offset..].iter().position(|&c| c == '\n').map_or(chars.len(), |i| offset + i);
    let line: String =
        chars[line_start..line_end].iter().filter(|&&c| c != '\r').map(|&c| if c == '\t' { ' ' } else { c }).collect();
    let column: usize = chars[line_start..offset].iter().map(|&c| display_width(c)).sum();
    format!("{line}\n{}^", " ".repeat(column))
}

/// Terminal columns of a character: CJK and full-width forms take two.
fn display_width(c: char) -> usize {
    match c {
        '\u{1100}'..='\u{115F}'
        | '\u{2E80}'..='\u{A4CF}'
        | '\u{AC00}'..='\u{D7A3}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FE30}'..='\u{FE4F}'
        | '\u{FF00}'..='\u{FF60}'
        | '\u{FFE0}'..='\u{FFE6}' => 2,
        _ => 1,
    }
}

/// The candidate closest to `word` (ASCII case-insensitively), if it is within two edits and the
/// word is not so short that anything would be.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word: Vec<char> = word.to_ascii_lowercase().chars().collect();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.chars().collect::<Vec<_>>()), *c))
        .filter(|&(d, _)| d <= 2 && d < word.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or keyword (ASCII), a Chinese keyword (且, 并且, 或, 非), or a run of other
    /// letters (only ever an error, but reported whole). The text as written.
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    Num(f64),
    Date(NaiveDate),
    Duration(i64, DurationUnit),
    Cmp(Cmp),
    LParen,
    RParen,
    Comma,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    /// The character at `i`, full-width punctuation typed with a Chinese IME read as ASCII.
    fn at(&self, i: usize) -> Option<char> {
        self.chars.get(i).map(|&c| match c {
            '（' => '(',
            '）' => ')',
            '，' => ',',
            '＝' => '=',
            '＜' => '<',
            '＞' => '>',
            '！' => '!',
            c => c,
        })
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.chars[start..end].iter().collect()
    }

    /// Length of the Chinese keyword at `i` (且, 并且, 或, 非), or 0.
    fn chinese_keyword_len(&self, i: usize) -> usize {
        match self.at(i) {
            Some('且' | '或' | '非') => 1,
            Some('并') if self.at(i + 1) == Some('且') => 2,
            _ => 0,
        }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        while self.at(self.pos).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(c) = self.at(start) else {
            return Ok(Token { kind: Tok::End, start, end: start });
        };
        let next = self.at(start + 1);
        let (kind, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '=' if next == Some('=') => (Tok::Cmp(Cmp::Eq), 2),
            '=' => (Tok::Cmp(Cmp::Eq), 1),
            '!' if next == Some('=') => (Tok::Cmp(Cmp::Ne), 2),
            '<' if next == Some('=') => (Tok::Cmp(Cmp::Le), 2),
            '<' if next == Some('>') => (Tok::Cmp(Cmp::Ne), 2),
            '<' => (Tok::Cmp(Cmp::Lt), 1),
            '>' if next == Some('=') => (Tok::Cmp(Cmp::Ge), 2),
            '>' => (Tok::Cmp(Cmp::Gt), 1),
            '"' | '\'' | '“' | '‘' => return self.string(start),
            '-' if next.is_some_and(|n| n.is_ascii_digit()) => return self.number(start),
            c if c.is_ascii_digit() => return self.number(start),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = self.chars[start..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
                (Tok::Word(self.text(start, start + len)), len)
            }
            c if c.is_alphabetic() => {
                let mut len = self.chinese_keyword_len(start);
                if len == 0 {
                    while self.at(start + len).is_some_and(|c| !c.is_ascii() && c.is_alphabetic())
                        && self.chinese_keyword_len(start + len) == 0
                    {
                        len += 1;
                    }
                }
                (Tok::Word(self.text(start, start + len)), len)
            }
            _ => return Err(ParseError::new(start, &[], self.text(start, start + 1))),
        };
        self.pos = start + len;
        Ok(Token { kind, start, end: self.pos })
    }

    /// `"..."`, `'...'`, `“...”` or `‘...’`; a backslash escapes any of these quotes or itself.
    fn string(&mut self, start: usize) -> Result<Token, ParseError> {
        let close = match self.chars[start] {
            '“' => '”',
            '‘' => '’',
            open => open,
        };
        let mut value = String::new();
        let mut i = start + 1;
        loop {
            match self.chars.get(i) {
                None => return Err(ParseError::new(start, &[CLOSING_QUOTE], END)),
                Some(&c) if c == close => break,
                Some('\\') => match self.chars.get(i + 1) {
                    Some(&e @ ('"' | '\'' | '\\' | '“' | '”' | '‘' | '’')) => {
                        value.push(e);
                        i += 2;
                    }
                    Some(_) => return Err(ParseError::new(i, &[ESCAPE], self.text(i, i + 2))),
                    None => return Err(ParseError::new(start, &[CLOSING_QUOTE], END)),
                },
                Some(&c) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        self.pos = i + 1;
        Ok(Token { kind: Tok::Str(value), start, end: self.pos })
    }

    /// A number (`12`, `-3`, `12.5`), a date (`2026-01-31`) or a duration (`365d`). The whole run of
    /// digits, dots, dashes and letters is read first, so an error shows all of it.
    fn number(&mut self, start: usize) -> Result<Token, ParseError> {
        let signed = self.chars[start] == '-';
        let mut i = start + usize::from(signed);
        while self.at(i).is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '-') {
            i += 1;
        }
        let body_end = i;
        while self.at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') && self.chinese_keyword_len(i) == 0 {
            i += 1;
        }
        self.pos = i;
        let whole = self.text(start, i);
        let digits = self.text(start + usize::from(signed), body_end);
        let tail = self.text(body_end, i);
        let kind = if digits.contains('-') && !signed {
            let shape = digits.len() == 10
                && digits.char_indices().all(|(k, c)| if k == 4 || k == 7 { c == '-' } else { c.is_ascii_digit() });
            if !shape || !tail.is_empty() {
                return Err(ParseError::new(start, &[DATE], whole));
            }
            let date = NaiveDate::parse_from_str(&digits, "%Y-%m-%d")
                .map_err(|_| ParseError::new(start, &[REAL_DATE], whole.clone()))?;
            Tok::Date(date)
        } else if !tail.is_empty() && !digits.contains('-') {
            if signed || digits.contains('.') {
                return Err(ParseError::new(start, &[DURATION], whole));
            }
            let unit = match tail.to_ascii_lowercase().as_str() {
                "d" => DurationUnit::Day,
                "w" => DurationUnit::Week,
                "m" => DurationUnit::Month,
                "y" => DurationUnit::Year,
                _ => return Err(ParseError::new(body_end, &[DURATION_UNIT], tail)),
            };
            let amount = digits.parse::<i64>().map_err(|_| ParseError::new(start, &[DURATION], whole.clone()))?;
            Tok::Duration(amount, unit)
        } else {
            let (int, frac) = match digits.split_once('.') {
                Some((int, frac)) => (int, Some(frac)),
                None => (digits.as_str(), None),
            };
            let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !tail.is_empty() || !all_digits(int) || !frac.is_none_or(all_digits) {
                return Err(ParseError::new(start, &[NUMBER], whole));
            }
            match whole.parse::<f64>() {
                Ok(n) if n.is_finite() => Tok::Num(n),
                _ => return Err(ParseError::new(start, &[NUMBER], whole)),
            }
        };
        Ok(Token { kind, start, end: i })
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

/// Parses the text form. Field, function and argument names are checked here; values are not.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser { lexer: Lexer { chars: text.chars().collect(), pos: 0 }, peeked: None, depth: 0 };
    let expr = parser.or()?;
    let token = parser.next()?;
    if !matches!(token.kind, Tok::End) {
        return Err(parser.unexpected(&token, &[AND_OR]));
    }
    Ok(expr)
}

/// Recursive descent with one token of look-ahead. Tokens are read as they are needed, so the
/// first error in the text is the one reported.
struct Parser {
    lexer: Lexer,
    peeked: Option<Token>,
    depth: usize,
}

#[derive(Clone, Copy)]
enum Keyword {
    And,
    Or,
    Not,
}

/// Words that cannot name a field.
const RESERVED: &[&str] = &["and", "or", "not", "in", "between", "all", "true", "false", "且", "并且", "或", "非"];

fn is_word(token: &Token, word: &str) -> bool {
    matches!(&token.kind, Tok::Word(w) if w.eq_ignore_ascii_case(word))
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    match keyword {
        Keyword::And => is_word(token, "and") || is_word(token, "且") || is_word(token, "并且"),
        Keyword::Or => is_word(token, "or") || is_word(token, "或"),
        Keyword::Not => is_word(token, "not") || is_word(token, "非"),
    }
}

/// A single expression as itself, several as `make(args)`.
fn chain(mut args: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if args.len() == 1 { args.swap_remove(0) } else { make(args) }
}

impl Parser {
    fn peek(&mut self) -> Result<&Token, ParseError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn unexpected(&self, token: &Token, expected: &[&str]) -> ParseError {
        let found = match token.kind {
            Tok::End => END.to_string(),
            _ => self.lexer.text(token.start, token.end),
        };
        ParseError::new(token.start, expected, found)
    }

    /// Consumes the next token if it is `kind`, else fails expecting `expected`.
    fn expect(&mut self, kind: Tok, expected: &str) -> Result<Token, ParseError> {
        let token = self.next()?;
        if token.kind == kind { Ok(token) } else { Err(self.unexpected(&token, &[expected])) }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut args = vec![self.and()?];
        while is_keyword(self.peek()?, Keyword::Or) {
            self.next()?;
            args.push(self.and()?);
        }
        Ok(chain(args, |args| Expr::Or { args }))
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut args = vec![self.unary()?];
        while is_keyword(self.peek()?, Keyword::And) {
            self.next()?;
            args.push(self.unary()?);
        }
        Ok(chain(args, |args| Expr::And { args }))
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if !is_keyword(self.peek()?, Keyword::Not) {
            return self.primary();
        }
        let not = self.next()?;
        let arg = self.nested(&not, Parser::unary)?;
        Ok(Expr::Not { arg: Box::new(arg) })
    }

    /// Runs `parse` one level deeper, refusing to go deeper than [`MAX_DEPTH`].
    fn nested(&mut self, at: &Token, parse: fn(&mut Parser) -> Result<Expr, ParseError>) -> Result<Expr, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.unexpected(at, &[SHALLOWER]));
        }
        self.depth += 1;
        let expr = parse(self);
        self.depth -= 1;
        expr
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let token = self.next()?;
        let word = match &token.kind {
            Tok::LParen => {
                let expr = self.nested(&token, Parser::or)?;
                self.expect(Tok::RParen, "\")\"")?;
                return Ok(expr);
            }
            Tok::Word(word) => word.to_ascii_lowercase(),
            _ => return Err(self.unexpected(&token, &[EXPRESSION])),
        };
        if word == "all" {
            return Ok(Expr::All);
        }
        if let Some(func) = Func::from_name(&word) {
            return self.call(func, token);
        }
        if FIELDS.contains(&word.as_str()) {
            return self.comparison(word, token);
        }
        if RESERVED.contains(&word.as_str()) {
            return Err(self.unexpected(&token, &[EXPRESSION]));
        }
        let written = self.lexer.text(token.start, token.end);
        // A lexing error after the unknown name is not the first problem: ignore it here.
        if matches!(self.peek(), Ok(Token { kind: Tok::LParen, .. })) {
            let names = ["bought", "checked", "registered"];
            let mut error = ParseError::new(token.start, &names, format!("unknown function \"{written}\""));
            if let Some(name) = closest(&word, &names) {
                error.expected.insert(0, did_you_mean("function", name));
            }
            return Err(error);
        }
        let expected = match closest(&word, FIELDS) {
            Some(name) => vec![did_you_mean("field", name)],
            None => vec![ANY_FIELD.to_string(), ANY_FUNCTION.to_string()],
        };
        Err(ParseError { offset: token.start, expected, found: format!("unknown field \"{written}\"") })
    }

    /// After the field: `<cmp> value`, `[not] in (...)` or `between low and high`.
    fn comparison(&mut self, field: String, field_token: Token) -> Result<Expr, ParseError> {
        let start = field_token.start;
        let token = self.next()?;
        if let Tok::Cmp(cmp) = token.kind {
            let (value, end) = self.value()?;
            return Ok(Expr::Compare { field, cmp, value, span: Span { start, end } });
        }
        if is_word(&token, "in") {
            return self.in_list(field, start);
        }
        if is_keyword(&token, Keyword::Not) {
            let token = self.next()?;
            if !is_word(&token, "in") {
                return Err(self.unexpected(&token, &["in"]));
            }
            return Ok(Expr::Not { arg: Box::new(self.in_list(field, start)?) });
        }
        if is_word(&token, "between") {
            let (low, _) = self.value()?;
            let token = self.next()?;
            if !is_keyword(&token, Keyword::And) {
                return Err(self.unexpected(&token, &["and"]));
            }
            let (high, end) = self.value()?;
            return Ok(Expr::Between { field, low, high, span: Span { start, end } });
        }
        Err(self.unexpected(&token, &[COMPARISON, "in", "between"]))
    }

    /// `(v1, v2, ...)` after `in`.
    fn in_list(&mut self, field: String, start: usize) -> Result<Expr, ParseError> {
        self.expect(Tok::LParen, "\"(\"")?;
        let mut values = Vec::new();
        loop {
            values.push(self.value()?.0);
            let token = self.next()?;
            match token.kind {
                Tok::Comma => {}
                Tok::RParen => return Ok(Expr::In { field, values, span: Span { start, end: token.end } }),
                _ => return Err(self.unexpected(&token, &["\",\"", "\")\""])),
            }
        }
    }

    /// `func(arg, ...)` after the function's name.
    fn call(&mut self, func: Func, name: Token) -> Result<Expr, ParseError> {
        self.expect(Tok::LParen, "\"(\"")?;
        let mut args = Vec::new();
        if let Tok::RParen = self.peek()?.kind {
            let close = self.next()?;
            return Ok(Expr::Call { func, args, span: Span { start: name.start, end: close.end } });
        }
        loop {
            args.push(self.arg(func)?);
            let token = self.next()?;
            match token.kind {
                Tok::Comma => {}
                Tok::RParen => return Ok(Expr::Call { func, args, span: Span { start: name.start, end: token.end } }),
                _ => return Err(self.unexpected(&token, &["\",\"", "\")\""])),
            }
        }
    }

    /// `name <cmp> value` inside a call.
    fn arg(&mut self, func: Func) -> Result<Arg, ParseError> {
        let token = self.next()?;
        let names = func.arg_names();
        let Tok::Word(written) = &token.kind else {
            return Err(self.unexpected(&token, names));
        };
        let name = written.to_ascii_lowercase();
        if !names.contains(&name.as_str()) {
            let mut error = ParseError::new(token.start, names, format!("unknown argument \"{written}\""));
            if let Some(close) = closest(&name, names) {
                error.expected.insert(0, did_you_mean("argument", close));
            }
            return Err(error);
        }
        let cmp_token = self.next()?;
        let Tok::Cmp(cmp) = cmp_token.kind else {
            return Err(self.unexpected(&cmp_token, &[COMPARISON]));
        };
        let (value, end) = self.value()?;
        Ok(Arg { name, cmp, value, span: Span { start: token.start, end } })
    }

    /// A value and the offset just after it.
    fn value(&mut self) -> Result<(Value, usize), ParseError> {
        let token = self.next()?;
        let value = match token.kind {
            Tok::Str(ref s) => Value::Str(s.clone()),
            Tok::Num(n) => Value::Num(n),
            Tok::Date(d) => Value::Date(d),
            Tok::Duration(amount, unit) => Value::Duration { amount, unit },
            _ if is_word(&token, "true") => Value::Bool(true),
            _ if is_word(&token, "false") => Value::Bool(false),
            _ => return Err(self.unexpected(&token, &[VALUE])),
        };
        Ok((value, token.end))
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical text

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        })
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => {
                f.write_char('"')?;
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        f.write_char('\\')?;
                    }
                    f.write_char(c)?;
                }
                f.write_char('"')
            }
            // `{}` prints the shortest digits that read back to the same f64, and never an exponent.
            Value::Num(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Value::Duration { amount, unit } => {
                let unit = match unit {
                    DurationUnit::Day => 'd',
                    DurationUnit::Week => 'w',
                    DurationUnit::Month => 'm',
                    DurationUnit::Year => 'y',
                };
                write!(f, "{amount}{unit}")
            }
        }
    }
}

/// The canonical text. Parses back to an equal expression; an empty `and` prints as `all` and an
/// empty `or` as `not all`, which are their meanings.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all"),
            Expr::And { args } if args.is_empty() => f.write_str("all"),
            Expr::Or { args } if args.is_empty() => f.write_str("not all"),
            // `and` binds tighter than `or`; a nested `and` in `and` (or `or` in `or`) keeps its
            // parentheses so it reads back nested.
            Expr::And { args } => write_chain(f, args, " and ", |e| matches!(e, Expr::And { .. } | Expr::Or { .. })),
            Expr::Or { args } => write_chain(f, args, " or ", |e| matches!(e, Expr::Or { .. })),
            Expr::Not { arg } if matches!(**arg, Expr::And { .. } | Expr::Or { .. }) => write!(f, "not ({arg})"),
            Expr::Not { arg } => write!(f, "not {arg}"),
            Expr::Compare { field, cmp, value, .. } => write!(f, "{field} {cmp} {value}"),
            Expr::In { field, values, .. } => {
                write!(f, "{field} in (")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_char(')')
            }
            Expr::Between { field, low, high, .. } => write!(f, "{field} between {low} and {high}"),
            Expr::Call { func, args, .. } => {
                write!(f, "{func}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} {} {}", arg.name, arg.cmp, arg.value)?;
                }
                f.write_char(')')
            }
        }
    }
}

fn write_chain(
    f: &mut fmt::Formatter<'_>,
    args: &[Expr],
    separator: &str,
    needs_parens: fn(&Expr) -> bool,
) -> fmt::Result {
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        if needs_parens(arg) {
            write!(f, "({arg})")?;
        } else {
            write!(f, "{arg}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn s(text: &str) -> Value {
        Value::Str(text.to_string())
    }

    fn days(amount: i64) -> Value {
        Value::Duration { amount, unit: DurationUnit::Day }
    }

    fn date(y: i32, m: u32, d: u32) -> Value {
        Value::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    fn compare(field: &str, cmp: Cmp, value: Value) -> Expr {
        Expr::Compare { field: field.to_string(), cmp, value, span: Span::default() }
    }

    fn call(func: Func, args: &[(&str, Cmp, Value)]) -> Expr {
        let args = args
            .iter()
            .map(|(name, cmp, value)| Arg {
                name: name.to_string(),
                cmp: *cmp,
                value: value.clone(),
                span: Span::default(),
            })
            .collect();
        Expr::Call { func, args, span: Span::default() }
    }

    fn and(args: Vec<Expr>) -> Expr {
        Expr::And { args }
    }

    fn or(args: Vec<Expr>) -> Expr {
        Expr::Or { args }
    }

    fn not(arg: Expr) -> Expr {
        Expr::Not { arg: Box::new(arg) }
    }

    fn ok(text: &str) -> Expr {
        parse(text).unwrap_or_else(|e| panic!("{text}: {}\n{}", e.message_en(), e.caret(text)))
    }

    fn err(text: &str) -> ParseError {
        match parse(text) {
            Ok(expr) => panic!("{text} parsed as {expr:?}"),
            Err(e) => e,
        }
    }

    /// The characters of `text` a span covers.
    fn spanned(text: &str, span: Span) -> String {
        text.chars().skip(span.start).take(span.end - span.start).collect()
    }

    const EXAMPLES: [&str; 4] = [
        r#"grade in ("重要保持", "重要发展") and gender = "女" and age between 50 and 70"#,
        r#"bought(category = "口服降糖药", within = 365d) and not checked(kind = "血糖", within = 365d)"#,
        r#"bought(group = "阿胶", within = 365d, times >= 2) or tag = "慢病关怀""#,
        "registered(within = 90d) and frequency_12m < 2",
    ];

    #[test]
    fn the_examples_parse_to_their_trees_and_print_back_as_written() {
        let expected = [
            and(vec![
                Expr::In {
                    field: "grade".into(), values: vec![s("重要保持"), s("重要发展")], span: Span::default()
                },
                compare("gender", Cmp::Eq, s("女")),
                Expr::Between {
                    field: "age".into(),
                    low: Value::Num(50.0),
                    high: Value::Num(70.0),
                    span: Span::default(),
                },
            ]),
            and(vec![
                call(Func::Bought, &[("category", Cmp::Eq, s("口服降糖药")), ("within", Cmp::Eq, days(365))]),
                not(call(Func::Checked, &[("kind", Cmp::Eq, s("血糖")), ("within", Cmp::Eq, days(365))])),
            ]),
            or(vec![
                call(
                    Func::Bought,
                    &[
                        ("group", Cmp::Eq, s("阿胶")),
                        ("within", Cmp::Eq, days(365)),
                        ("times", Cmp::Ge, Value::Num(2.0)),
                    ],
                ),
                compare("tag", Cmp::Eq, s("慢病关怀")),
            ]),
            and(vec![
                call(Func::Registered, &[("within", Cmp::Eq, days(90))]),
                compare("frequency_12m", Cmp::Lt, Value::Num(2.0)),
            ]),
        ];
        for (text, expected) in EXAMPLES.iter().zip(expected) {
            let parsed = ok(text);
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string(), *text);
            assert_eq!(text.parse::<Expr>(), Ok(expected));
        }
    }

    #[test]
    fn chinese_keywords_and_full_width_punctuation_read_as_ascii() {
        let text = "bought（category＝“降压药”）且 非 gender = \"男\"";
        let expected = and(vec![
            call(Func::Bought, &[("category", Cmp::Eq, s("降压药"))]),
            not(compare("gender", Cmp::Eq, s("男"))),
        ]);
        assert_eq!(ok(text), expected);
        assert_eq!(ok(text).to_string(), r#"bought(category = "降压药") and not gender = "男""#);

        // 并且, 或, ‘...’, full-width comma, ！＝, ＜＝, ＞ and ideographic spaces; keywords next to
        // names with no space between.
        let text = "age＞50并且age＜＝70\u{3000}或\u{3000}grade in（‘重要保持’，'一般'）且gender！＝'男'";
        let expected = or(vec![
            and(vec![compare("age", Cmp::Gt, Value::Num(50.0)), compare("age", Cmp::Le, Value::Num(70.0))]),
            and(vec![
                Expr::In { field: "grade".into(), values: vec![s("重要保持"), s("一般")], span: Span::default() },
                compare("gender", Cmp::Ne, s("男")),
            ]),
        ]);
        assert_eq!(ok(text), expected);
    }

    #[test]
    fn and_binds_tighter_than_or_and_chains_are_flat() {
        let [a, b, c, d] =
            ["age", "tenure_days", "recency_days", "checks_12m"].map(|f| compare(f, Cmp::Gt, Value::Num(1.0)));
        assert_eq!(
            ok("age > 1 or tenure_days > 1 and recency_days > 1 or checks_12m > 1"),
            or(vec![a.clone(), and(vec![b.clone(), c.clone()]), d.clone()])
        );
        assert_eq!(ok("age > 1 and tenure_days > 1 and recency_days > 1"), and(vec![a.clone(), b.clone(), c.clone()]));
        assert_eq!(
            ok("(age > 1 or tenure_days > 1) and recency_days > 1"),
            and(vec![or(vec![a.clone(), b.clone()]), c.clone()])
        );
        // Parentheses keep a nested chain nested, and a parenthesised single expression is itself.
        assert_eq!(
            ok("(age > 1 and tenure_days > 1) and recency_days > 1"),
            and(vec![and(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(ok("((age > 1))"), a);
        assert_eq!(ok("not age > 1 and tenure_days > 1"), and(vec![not(a.clone()), b.clone()]));
        assert_eq!(ok("not (age > 1 and tenure_days > 1)"), not(and(vec![a.clone(), b.clone()])));
        assert_eq!(ok("not not age > 1"), not(not(a.clone())));
        assert_eq!(ok("all and not all"), and(vec![Expr::All, not(Expr::All)]));
    }

    #[test]
    fn not_in_is_not_of_in() {
        let values = vec![s("沉睡"), s("流失")];
        let expected = not(Expr::In { field: "activity".into(), values, span: Span::default() });
        assert_eq!(ok(r#"activity not in ("沉睡", "流失")"#), expected);
        assert_eq!(ok(r#"activity 非 in ("沉睡", "流失")"#), expected);
        assert_eq!(ok(r#"not activity in ("沉睡", "流失")"#), expected);
        assert_eq!(expected.to_string(), r#"not activity in ("沉睡", "流失")"#);
    }

    #[test]
    fn keywords_and_names_are_case_insensitive_and_names_are_lowercased() {
        let expected = or(vec![
            and(vec![
                compare("age", Cmp::Ge, Value::Num(50.0)),
                call(
                    Func::Bought,
                    &[
                        ("category", Cmp::Eq, s("维生素")),
                        ("within", Cmp::Eq, Value::Duration { amount: 6, unit: DurationUnit::Month }),
                    ],
                ),
            ]),
            not(Expr::All),
            compare("sms_opt_in", Cmp::Eq, Value::Bool(true)),
            Expr::Between { field: "age".into(), low: Value::Num(1.0), high: Value::Num(2.0), span: Span::default() },
        ]);
        let text = r#"AGE >= 50 And Bought(Category == "维生素", WITHIN = 6M) OR NOT All or SMS_Opt_In = TRUE or Age BETWEEN 1 AND 2"#;
        assert_eq!(ok(text), expected);
    }

    #[test]
    fn values_of_every_kind() {
        let value = |text: &str| match ok(&format!("age = {text}")) {
            Expr::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("12"), Value::Num(12.0));
        assert_eq!(value("-3"), Value::Num(-3.0));
        assert_eq!(value("12.50"), Value::Num(12.5));
        assert_eq!(value("007"), Value::Num(7.0));
        assert_eq!(value("true"), Value::Bool(true));
        assert_eq!(value("False"), Value::Bool(false));
        assert_eq!(value("2026-01-31"), date(2026, 1, 31));
        assert_eq!(value("\"2026-01-31\""), s("2026-01-31"));
        assert_eq!(value("365d"), days(365));
        assert_eq!(value("8w"), Value::Duration { amount: 8, unit: DurationUnit::Week });
        assert_eq!(value("6m"), Value::Duration { amount: 6, unit: DurationUnit::Month });
        assert_eq!(value("1y"), Value::Duration { amount: 1, unit: DurationUnit::Year });
        assert_eq!(value(r#""say \"hi\" \\ it's""#), s(r#"say "hi" \ it's"#));
        assert_eq!(value(r#"'it\'s "fine"'"#), s(r#"it's "fine""#));
        assert_eq!(value("“他说‘好’”"), s("他说‘好’"));
        assert_eq!(value("“a\\”b”"), s("a”b"));
        assert_eq!(value("\"\""), s(""));

        let cmp = |text: &str| match ok(&format!("age {text} 1")) {
            Expr::Compare { cmp, .. } => cmp,
            other => panic!("{other:?}"),
        };
        let all = [("=", Cmp::Eq), ("==", Cmp::Eq), ("!=", Cmp::Ne), ("<>", Cmp::Ne), ("<", Cmp::Lt)];
        for (text, expected) in all.into_iter().chain([("<=", Cmp::Le), (">", Cmp::Gt), (">=", Cmp::Ge)]) {
            assert_eq!(cmp(text), expected, "{text}");
        }

        assert_eq!(s("a\"b\\c").to_string(), r#""a\"b\\c""#);
        assert_eq!(Value::Num(0.1).to_string(), "0.1");
        assert_eq!(Value::Num(-2.0).to_string(), "-2");
        assert_eq!(Value::Num(1e20).to_string(), "100000000000000000000");
        assert_eq!(date(2026, 1, 31).to_string(), "2026-01-31");
    }

    #[test]
    fn display_parenthesises_what_would_otherwise_read_differently() {
        let [a, b, c] = ["age", "tenure_days", "recency_days"].map(|f| compare(f, Cmp::Lt, Value::Num(1.0)));
        let cases = [
            (and(vec![or(vec![a.clone(), b.clone()]), c.clone()]), "(age < 1 or tenure_days < 1) and recency_days < 1"),
            (or(vec![and(vec![a.clone(), b.clone()]), c.clone()]), "age < 1 and tenure_days < 1 or recency_days < 1"),
            (not(or(vec![a.clone(), b.clone()])), "not (age < 1 or tenure_days < 1)"),
            (not(and(vec![a.clone(), b.clone()])), "not (age < 1 and tenure_days < 1)"),
            (not(not(a.clone())), "not not age < 1"),
            (
                and(vec![and(vec![a.clone(), b.clone()]), c.clone()]),
                "(age < 1 and tenure_days < 1) and recency_days < 1",
            ),
            (or(vec![a.clone(), or(vec![b.clone(), c.clone()])]), "age < 1 or (tenure_days < 1 or recency_days < 1)"),
            (call(Func::Checked, &[]), "checked()"),
        ];
        for (expr, text) in cases {
            assert_eq!(expr.to_string(), text);
            assert_eq!(ok(text), expr, "{text}");
        }
        assert_eq!(and(vec![]).to_string(), "all");
        assert_eq!(or(vec![]).to_string(), "not all");
    }

    #[test]
    fn spans_count_characters_in_chinese_text() {
        let text = r#"tag = "慢病关怀" and bought(group = "阿胶", within = 365d) or grade not in ("重要保持")"#;
        let Expr::Or { args } = ok(text) else { panic!() };
        let Expr::And { args: ands } = &args[0] else { panic!() };
        let Expr::Compare { span, .. } = &ands[0] else { panic!() };
        assert_eq!((span.start, span.end), (0, 12));
        assert_eq!(spanned(text, *span), r#"tag = "慢病关怀""#);
        let Expr::Call { span, args: call_args, .. } = &ands[1] else { panic!() };
        assert_eq!(spanned(text, *span), r#"bought(group = "阿胶", within = 365d)"#);
        assert_eq!(spanned(text, call_args[0].span), r#"group = "阿胶""#);
        assert_eq!(spanned(text, call_args[1].span), "within = 365d");
        let Expr::Not { arg } = &args[1] else { panic!() };
        let Expr::In { span, .. } = &**arg else { panic!() };
        assert_eq!(spanned(text, *span), r#"grade not in ("重要保持")"#);

        let text = "性别：(age between 50 and 70)";
        let e = err(text);
        assert_eq!(e.offset, 0);
        let text = "（age between 50 and 70）";
        let Expr::Between { span, .. } = ok(text) else { panic!() };
        assert_eq!(spanned(text, span), "age between 50 and 70");
    }

    #[test]
    fn the_json_form_is_pinned_and_reads_back() {
        let expr = ok(EXAMPLES[2]);
        let value = serde_json::to_value(&expr).unwrap();
        assert_eq!(
            value,
            json!({
                "op": "or",
                "args": [
                    {
                        "op": "call",
                        "func": "bought",
                        "args": [
                            {"name": "group", "cmp": "eq", "value": {"str": "阿胶"}},
                            {"name": "within", "cmp": "eq", "value": {"duration": {"amount": 365, "unit": "day"}}},
                            {"name": "times", "cmp": "ge", "value": {"num": 2.0}}
                        ]
                    },
                    {"op": "compare", "field": "tag", "cmp": "eq", "value": {"str": "慢病关怀"}}
                ]
            })
        );
        assert_eq!(serde_json::from_value::<Expr>(value).unwrap(), expr);

        let expr = ok(
            r#"not grade in ("一般") and age between 50 and 70 and all and bought(since = 2026-01-31) and referred = true"#,
        );
        let value = serde_json::to_value(&expr).unwrap();
        assert_eq!(
            value,
            json!({
                "op": "and",
                "args": [
                    {"op": "not", "arg": {"op": "in", "field": "grade", "values": [{"str": "一般"}]}},
                    {"op": "between", "field": "age", "low": {"num": 50.0}, "high": {"num": 70.0}},
                    {"op": "all"},
                    {
                        "op": "call",
                        "func": "bought",
                        "args": [{"name": "since", "cmp": "eq", "value": {"date": "2026-01-31"}}]
                    },
                    {"op": "compare", "field": "referred", "cmp": "eq", "value": {"bool": true}}
                ]
            })
        );
        assert_eq!(serde_json::from_value::<Expr>(value).unwrap(), expr);
    }

    #[test]
    fn empty_text_expects_an_expression() {
        for text in ["", "   ", "\u{3000}"] {
            let e = err(text);
            assert_eq!(e.offset, text.chars().count());
            assert_eq!(e.expected, vec!["an expression"]);
            assert_eq!(e.found, "end of input");
            assert!(e.message_en().contains("expected an expression, found end of input"), "{}", e.message_en());
            assert!(e.message_zh().contains("期望 表达式，实际是 输入结束"), "{}", e.message_zh());
        }
    }

    #[test]
    fn a_missing_comparison_says_what_would_do() {
        let e = err("age xyz 1");
        assert_eq!(e.offset, 4);
        assert_eq!(e.found, "xyz");
        assert_eq!(
            e.message_en(),
            r#"at character 5: expected a comparison (=, !=, <, <=, >, >=), in or between, found "xyz""#
        );
        assert_eq!(e.message_zh(), r#"第 5 个字符处：期望 比较符（=、!=、<、<=、>、>=）、in 或 between，实际是 "xyz""#);
        assert_eq!(e.to_string(), e.message_zh());
    }

    #[test]
    fn unknown_names_are_reported_at_the_name_with_suggestions() {
        let e = err(r#"tag = "慢病" and recency_day < 30"#);
        assert_eq!(e.offset, 15);
        assert_eq!(e.expected, vec!["field (did you mean recency_days?)"]);
        assert_eq!(e.found, r#"unknown field "recency_day""#);
        assert_eq!(
            e.message_en(),
            r#"at character 16: expected field (did you mean recency_days?), found unknown field "recency_day""#
        );
        assert_eq!(
            e.message_zh(),
            r#"第 16 个字符处：期望 字段（是否想写 recency_days？），实际是 未知字段 "recency_day""#
        );

        let e = err("colour = 1");
        assert_eq!(e.offset, 0);
        assert_eq!(e.found, r#"unknown field "colour""#);
        assert!(e.message_en().contains("expected a field (gender, age"), "{}", e.message_en());

        let e = err("Agee > 1");
        assert_eq!(e.expected, vec!["field (did you mean age?)"]);

        let e = err(r#"age > 1 and 性别 = "女""#);
        assert_eq!(e.offset, 12);
        assert_eq!(e.found, r#"unknown field "性别""#);

        let e = err(r#"buy(category = "维生素")"#);
        assert_eq!(e.offset, 0);
        assert_eq!(e.found, r#"unknown function "buy""#);
        assert_eq!(e.expected, vec!["bought", "checked", "registered"]);
        let e = err(r#"not bougt(category = "维生素")"#);
        assert_eq!(e.offset, 4);
        assert_eq!(e.expected[0], "function (did you mean bought?)");
        assert!(e.message_zh().contains("未知函数 \"bougt\""), "{}", e.message_zh());

        let e = err(r#"bought(category = "维生素", withn = 30d)"#);
        assert_eq!(e.offset, 25);
        assert_eq!(e.found, r#"unknown argument "withn""#);
        assert_eq!(e.expected[0], "argument (did you mean within?)");
        assert_eq!(&e.expected[1..], Func::Bought.arg_names());
        let e = err("registered(kind = 1)");
        assert_eq!(e.offset, 11);
        assert_eq!(e.expected, Func::Registered.arg_names());
        assert!(
            e.message_en()
                .ends_with(r#"expected within, since, before, source or store, found unknown argument "kind""#)
        );

        // A keyword where a name should be is not an unknown field.
        let e = err("age > 1 and in = 2");
        assert_eq!((e.offset, e.expected.as_slice(), e.found.as_str()), (12, &["an expression".to_string()][..], "in"));
    }

    #[test]
    fn lexical_errors_point_at_the_bad_token() {
        let e = err(r#"tag = "慢病关怀 and age > 1"#);
        assert_eq!((e.offset, e.found.as_str()), (6, "end of input"));
        assert!(e.message_en().contains("closing quote"), "{}", e.message_en());
        let e = err("tag = “慢病关怀\" and age > 1");
        assert_eq!(e.offset, 6);

        let e = err(r#"tag = "a\nb""#);
        assert_eq!((e.offset, e.found.as_str()), (8, r"\n"));

        for (text, offset, found) in [
            ("age > 1.", 6, "1."),
            ("age > 1.2.3", 6, "1.2.3"),
            ("age > 12abc3", 8, "abc3"),
            ("age > -1.5d", 6, "-1.5d"),
        ] {
            let e = err(text);
            assert_eq!((e.offset, e.found.as_str()), (offset, found), "{text}");
        }
        assert!(err("age > 1.").message_en().contains("expected a number"));

        let e = err("bought(since = 2026-13-40)");
        assert_eq!((e.offset, e.found.as_str()), (15, "2026-13-40"));
        assert_eq!(e.expected, vec![REAL_DATE]);
        assert!(e.message_zh().contains("存在的日期"), "{}", e.message_zh());
        let e = err("bought(since = 2026-1-5)");
        assert_eq!((e.offset, e.expected[0].as_str()), (15, DATE));

        let e = err("bought(within = 5x)");
        assert_eq!((e.offset, e.found.as_str()), (17, "x"));
        assert!(e.message_en().contains("a duration unit: d (days)"), "{}", e.message_en());
        let e = err("bought(within = 365天)");
        assert_eq!((e.offset, e.found.as_str()), (19, "天"));
        let e = err("bought(within = 1.5y)");
        assert_eq!((e.offset, e.found.as_str()), (16, "1.5y"));

        let e = err("age @ 1");
        assert_eq!((e.offset, e.found.as_str(), e.expected.len()), (4, "@", 0));
        assert_eq!(e.message_en(), r#"at character 5: unexpected "@""#);
        assert_eq!(e.message_zh(), r#"第 5 个字符处：无法识别 "@""#);
        assert_eq!(err("age ! 1").offset, 4);
    }

    #[test]
    fn structural_errors_point_at_the_token_after_the_last_good_one() {
        let cases: &[(&str, usize, &str, &[&str])] = &[
            ("age = 1 b", 8, "b", &[AND_OR]),
            ("age = 1 )", 8, ")", &[AND_OR]),
            ("(age > 1", 8, "end of input", &["\")\""]),
            ("(age > 1 age < 2", 9, "age", &["\")\""]),
            (r#"bought(within = 1y"#, 18, "end of input", &["\",\"", "\")\""]),
            (r#"grade in ("一般""#, 14, "end of input", &["\",\"", "\")\""]),
            (r#"grade in ()"#, 10, ")", &[VALUE]),
            (r#"grade in "一般""#, 9, "\"一般\"", &["\"(\""]),
            ("age between 1 2", 14, "2", &["and"]),
            ("age not between 1 and 2", 8, "between", &["in"]),
            ("gender = 女", 9, "女", &[VALUE]),
            ("age >", 5, "end of input", &[VALUE]),
            ("age > 1 and", 11, "end of input", &[EXPRESSION]),
            ("bought", 6, "end of input", &["\"(\""]),
            ("bought(within 1y)", 14, "1y", &[COMPARISON]),
            ("bought(,)", 7, ",", &[]),
            ("not", 3, "end of input", &[EXPRESSION]),
            ("42", 0, "42", &[EXPRESSION]),
        ];
        for &(text, offset, found, expected) in cases {
            let e = err(text);
            assert_eq!((e.offset, e.found.as_str()), (offset, found), "{text}");
            if !expected.is_empty() {
                assert_eq!(e.expected, expected, "{text}");
            }
        }
        assert_eq!(err("bought(,)").expected, Func::Bought.arg_names());
        assert!(err(r#"gender = 女"#).message_zh().contains("带引号的字符串"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        assert!(parse(&format!("{}age > 1{}", "(".repeat(60), ")".repeat(60))).is_ok());
        let e = err(&format!("{}age > 1{}", "(".repeat(100_000), ")".repeat(100_000)));
        assert_eq!(e.offset, MAX_DEPTH);
        assert!(e.message_en().contains("at most 64 levels"));
        assert_eq!(err(&"not ".repeat(100_000)).offset, MAX_DEPTH * 4);
    }

    #[test]
    fn the_caret_sits_under_the_offending_character_counting_wide_characters_twice() {
        let text = r#"tag = "慢病关怀" and foo = 1"#;
        let e = err(text);
        assert_eq!(e.offset, 17);
        assert_eq!(e.caret(text), format!("{text}\n{}^", " ".repeat(21)));

        let text = "age > 1 and\n（grade = 1 x";
        let e = err(text);
        assert_eq!(e.caret(text), format!("（grade = 1 x\n{}^", " ".repeat(12)));

        let text = "age >";
        assert_eq!(err(text).caret(text), "age >\n     ^");
    }

    const REFERENCE: &str = include_str!("../../../docs/audience-language.md");

    /// The fenced block after `heading` in the user reference.
    fn doc_block(heading: &str) -> &'static str {
        let section = &REFERENCE[REFERENCE.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
        let start = section.find("```").unwrap();
        let block = &section[start..];
        let body = &block[block.find('\n').unwrap() + 1..];
        &body[..body.find("```").unwrap()]
    }

    #[test]
    fn the_reference_examples_parse_and_its_messages_are_the_real_ones() {
        for line in doc_block("## 例子").lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let expr = ok(line);
            assert_eq!(ok(&expr.to_string()), expr, "{line}");
        }

        let json_section = &REFERENCE[REFERENCE.find("## JSON").unwrap()..];
        let text = json_section.lines().find_map(|l| l.strip_prefix('`')?.strip_suffix("`:")).unwrap();
        let json: serde_json::Value = serde_json::from_str(doc_block("## JSON")).unwrap();
        assert_eq!(serde_json::to_value(ok(text)).unwrap(), json);

        for example in doc_block("## 错误提示").split("\n\n") {
            let lines: Vec<&str> = example.lines().collect();
            let [text, caret, zh, en] = lines[..] else { panic!("{example}") };
            let e = err(text);
            assert_eq!(e.caret(text), format!("{text}\n{caret}"));
            assert_eq!((e.message_zh().as_str(), e.message_en().as_str()), (zh, en));
        }
    }

    /// Values whose printed text reads back equal: strings with quotes, backslashes, Chinese and
    /// full-width punctuation; any finite number; dates 1900–2100; durations that are not negative.
    fn canonical_value() -> impl Strategy<Value = Value> {
        let chars = prop::sample::select(vec![
            'a', 'Z', '0', ' ', '"', '\'', '\\', '“', '”', '‘', '’', '（', '，', '重', '女', '阿', '\n', '/',
        ]);
        prop_oneof![
            prop::collection::vec(chars, 0..8).prop_map(|c| Value::Str(c.into_iter().collect())),
            (-1000i32..1000).prop_map(|n| Value::Num(n.into())),
            any::<f64>().prop_filter("finite", |n| n.is_finite()).prop_map(Value::Num),
            any::<bool>().prop_map(Value::Bool),
            (693_596i32..767_009).prop_map(|d| Value::Date(NaiveDate::from_num_days_from_ce_opt(d).unwrap())),
            (
                0i64..100_000,
                prop::sample::select(vec![
                    DurationUnit::Day,
                    DurationUnit::Week,
                    DurationUnit::Month,
                    DurationUnit::Year
                ])
            )
                .prop_map(|(amount, unit)| Value::Duration { amount, unit }),
        ]
    }

    fn any_cmp() -> impl Strategy<Value = Cmp> {
        prop::sample::select(vec![Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge])
    }

    fn leaf() -> impl Strategy<Value = Expr> {
        let field = || prop::sample::select(FIELDS).prop_map(str::to_string);
        let func = prop::sample::select(vec![Func::Bought, Func::Checked, Func::Registered, Func::PointsExpiring]);
        let arg =
            |func: Func| {
                (prop::sample::select(func.arg_names()), any_cmp(), canonical_value())
                    .prop_map(|(name, cmp, value)| Arg { name: name.to_string(), cmp, value, span: Span::default() })
            };
        prop_oneof![
            Just(Expr::All),
            (field(), any_cmp(), canonical_value()).prop_map(|(field, cmp, value)| Expr::Compare {
                field,
                cmp,
                value,
                span: Span::default()
            }),
            (field(), prop::collection::vec(canonical_value(), 1..4)).prop_map(|(field, values)| Expr::In {
                field,
                values,
                span: Span::default()
            }),
            (field(), canonical_value(), canonical_value()).prop_map(|(field, low, high)| Expr::Between {
                field,
                low,
                high,
                span: Span::default()
            }),
            func.prop_flat_map(move |func| {
                prop::collection::vec(arg(func), 0..4).prop_map(move |args| Expr::Call {
                    func,
                    args,
                    span: Span::default(),
                })
            }),
        ]
    }

    /// Expressions of the shapes the parser produces: `and`/`or` of two or more, a child of the same
    /// kind spliced in (as `a and b and c` reads), depth at most 4.
    fn canonical_expr() -> impl Strategy<Value = Expr> {
        leaf().prop_recursive(4, 32, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(|args| {
                    let args = args.into_iter().flat_map(|a| match a {
                        Expr::And { args } => args,
                        other => vec![other],
                    });
                    Expr::And { args: args.collect() }
                }),
                prop::collection::vec(inner.clone(), 2..4).prop_map(|args| {
                    let args = args.into_iter().flat_map(|a| match a {
                        Expr::Or { args } => args,
                        other => vec![other],
                    });
                    Expr::Or { args: args.collect() }
                }),
                inner.prop_map(|arg| Expr::Not { arg: Box::new(arg) }),
            ]
        })
    }

    proptest! {
        #[test]
        fn printed_text_parses_back_to_the_same_expression(expr in canonical_expr()) {
            let text = expr.to_string();
            prop_assert_eq!(parse(&text), Ok(expr), "{}", text);
        }

        #[test]
        fn any_text_parses_or_fails_inside_it(
            chars in prop::collection::vec(
                prop::sample::select("age(=<>!,)（＝，）\"'“”\\ 且或非并and not in 1-.d2026-01-31 bought".chars().collect::<Vec<_>>()),
                0..40,
            )
        ) {
            let text: String = chars.into_iter().collect();
            if let Err(e) = parse(&text) {
                prop_assert!(e.offset <= text.chars().count(), "{}: {:?}", text, e);
                prop_assert!(e.caret(&text).ends_with('^'));
            }
        }
    }
}
