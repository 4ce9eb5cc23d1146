//! SyntaxGym test suites (Gauthier et al. 2020; the reference is
//! cpllab/syntaxgym-core, `syntaxgym/prediction.py` and `suite.py`, as
//! vendored in brainscore-language): the suite JSON, the prediction formula
//! language, and how a condition's regions become one sentence whose
//! tokens are assigned back to regions.
//!
//! Formulas compare region surprisals: `(7;%match_sing%)` is the surprisal
//! of region 7 in condition `match_sing` of the item at hand (`(*;%c%)`
//! sums every region of `c`); numbers (`0`, `-1.5e2`), `+` and `-` combine
//! them; `<`, `>` and `=` compare two sums (`=`: numpy's `isclose` with
//! rtol 1e-5 and atol 1e-3, as the reference); `&` and `|` join
//! comparisons, left to right at one precedence, as the reference's
//! `infixNotation` levels: `+ -` bind tightest, then comparisons, then
//! `& |`. Parentheses group. A chained comparison (`a < b < c`), a
//! comparison of comparisons or `&` of two numbers is an error here (the
//! reference silently drops the rest of a chain).
//!
//! A region's value is the suite's `metric` (`sum`, the default and the
//! only one the 2020 suites use; `mean`, `median`, `range`, `max`, `min`)
//! over the surprisals in bits of the tokens assigned to it; an empty
//! region sums to 0. An item passes when every prediction of its suite
//! holds, as Brain-Score's SyntaxGym benchmark scores it.
//!
//! Sentences ([`assemble`]): the regions' contents, trimmed, the non-empty
//! ones joined by single spaces (syntaxgym-core's `iter_sentences`). A
//! token belongs to the region that holds its first non-space character
//! ([`assign_tokens`]), so GPT-2's " dog" (the joining space in front)
//! counts for the region of "dog", as syntaxgym-core's region edges do.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;

/// A suite file as SyntaxGym writes it (unknown fields are ignored:
/// evaluated suites carry `metric_value` and `oovs`).
#[derive(Debug, Clone, Deserialize)]
pub struct SuiteFile {
    pub meta: SuiteMeta,
    #[serde(default)]
    pub region_meta: BTreeMap<String, String>,
    pub predictions: Vec<PredictionSpec>,
    pub items: Vec<ItemSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SuiteMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub metric: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PredictionSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub formula: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ItemSpec {
    pub item_number: i64,
    pub conditions: Vec<ConditionSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConditionSpec {
    pub condition_name: String,
    pub regions: Vec<RegionSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RegionSpec {
    pub region_number: i64,
    pub content: String,
}

/// How a region's token surprisals become its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Sum,
    Mean,
    Median,
    Range,
    Max,
    Min,
}

impl Metric {
    pub const NAMES: [&'static str; 6] = ["sum", "mean", "median", "range", "max", "min"];

    pub fn parse(name: &str) -> Option<Metric> {
        Some(match name {
            "sum" => Metric::Sum,
            "mean" => Metric::Mean,
            "median" => Metric::Median,
            "range" => Metric::Range,
            "max" => Metric::Max,
            "min" => Metric::Min,
            _ => return None,
        })
    }

    /// The value of a region with these token surprisals: 0 for an empty
    /// region's sum, NaN for its other metrics (no comparison holds).
    pub fn apply(self, values: &[f64]) -> f64 {
        if values.is_empty() {
            return if self == Metric::Sum { 0.0 } else { f64::NAN };
        }
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        match self {
            Metric::Sum => values.iter().sum(),
            Metric::Mean => values.iter().sum::<f64>() / values.len() as f64,
            Metric::Median => {
                let mut sorted = values.to_vec();
                sorted.sort_by(f64::total_cmp);
                let n = sorted.len();
                if n % 2 == 1 {
                    sorted[n / 2]
                } else {
                    (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
                }
            }
            Metric::Range => max - min,
            Metric::Max => max,
            Metric::Min => min,
        }
    }
}

/// A region of a condition in a formula: `(7;%match_sing%)`, or every
/// region of the condition (`(*;%match_sing%)`, `region` None).
#[derive(Debug, Clone, PartialEq)]
pub struct RegionRef {
    pub region: Option<i64>,
    pub condition: String,
}

impl fmt::Display for RegionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.region {
            Some(r) => write!(f, "({r};%{}%)", self.condition),
            None => write!(f, "(*;%{}%)", self.condition),
        }
    }
}

/// A number-valued formula.
#[derive(Debug, Clone, PartialEq)]
pub enum Sum {
    Region(RegionRef),
    Number(f64),
    Add(Box<Sum>, Box<Sum>),
    Sub(Box<Sum>, Box<Sum>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    Greater,
    Equal,
}

/// A prediction: comparisons joined by `&` and `|`.
#[derive(Debug, Clone, PartialEq)]
pub enum Formula {
    Compare(Comparison, Sum, Sum),
    And(Box<Formula>, Box<Formula>),
    Or(Box<Formula>, Box<Formula>),
}

/// A formula that does not parse, with the character where it went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct FormulaError {
    pub message: String,
    /// 0-based character offset into the formula.
    pub at: usize,
}

impl fmt::Display for FormulaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

/// Region surprisals of one item: (condition, region number) -> value.
pub type RegionValues = BTreeMap<(String, i64), f64>;

/// Relative and absolute tolerances of `=` (syntaxgym-core's).
const EQUALITY_RTOL: f64 = 1e-5;
const EQUALITY_ATOL: f64 = 1e-3;

impl Sum {
    fn eval(&self, values: &RegionValues) -> Result<f64, String> {
        Ok(match self {
            Sum::Number(x) => *x,
            Sum::Region(r) => match r.region {
                Some(n) => *values.get(&(r.condition.clone(), n)).ok_or_else(|| {
                    format!("the item has no region {r} (no region {n} in condition `{}`)", r.condition)
                })?,
                None => {
                    let mut found = false;
                    let mut total = 0.0;
                    for ((c, _), v) in values {
                        if *c == r.condition {
                            found = true;
                            total += v;
                        }
                    }
                    if !found {
                        return Err(format!("the item has no condition `{}` ({r})", r.condition));
                    }
                    total
                }
            },
            Sum::Add(a, b) => a.eval(values)? + b.eval(values)?,
            Sum::Sub(a, b) => a.eval(values)? - b.eval(values)?,
        })
    }

    fn regions<'a>(&'a self, out: &mut Vec<&'a RegionRef>) {
        match self {
            Sum::Region(r) => out.push(r),
            Sum::Number(_) => {}
            Sum::Add(a, b) | Sum::Sub(a, b) => {
                a.regions(out);
                b.regions(out);
            }
        }
    }
}

impl Formula {
    /// Parses a prediction formula.
    pub fn parse(text: &str) -> Result<Formula, FormulaError> {
        let tokens = lex(text)?;
        let mut parser = Parser { tokens, next: 0, end: text.chars().count() };
        let node = parser.or_level()?;
        if let Some((token, at)) = parser.tokens.get(parser.next) {
            return Err(FormulaError { message: format!("unexpected {}", token.describe()), at: *at });
        }
        node.into_formula()
    }

    /// Whether the prediction holds for an item's region values.
    pub fn eval(&self, values: &RegionValues) -> Result<bool, String> {
        Ok(match self {
            Formula::Compare(op, a, b) => {
                let (a, b) = (a.eval(values)?, b.eval(values)?);
                match op {
                    Comparison::Less => a < b,
                    Comparison::Greater => a > b,
                    Comparison::Equal => (a - b).abs() <= EQUALITY_ATOL + EQUALITY_RTOL * b.abs(),
                }
            }
            // Both sides are evaluated (a missing region is an error either way).
            Formula::And(a, b) => {
                let (a, b) = (a.eval(values)?, b.eval(values)?);
                a && b
            }
            Formula::Or(a, b) => {
                let (a, b) = (a.eval(values)?, b.eval(values)?);
                a || b
            }
        })
    }

    /// The regions the formula reads, in order of appearance.
    pub fn regions(&self) -> Vec<&RegionRef> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a RegionRef>) {
        match self {
            Formula::Compare(_, a, b) => {
                a.regions(out);
                b.regions(out);
            }
            Formula::And(a, b) | Formula::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Plus,
    Minus,
    Less,
    Greater,
    Equal,
    And,
    Or,
    Number(f64),
    Region(RegionRef),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "`(`".into(),
            Token::Close => "`)`".into(),
            Token::Plus => "`+`".into(),
            Token::Minus => "`-`".into(),
            Token::Less => "`<`".into(),
            Token::Greater => "`>`".into(),
            Token::Equal => "`=`".into(),
            Token::And => "`&`".into(),
            Token::Or => "`|`".into(),
            Token::Number(x) => format!("the number {x}"),
            Token::Region(r) => format!("the region {r}"),
        }
    }
}

/// Splits a formula into tokens, each with its character offset. A `(`
/// that opens `N;%name%)` is read as one region token.
fn lex(text: &str) -> Result<Vec<(Token, usize)>, FormulaError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = match c {
            ')' => Some(Token::Close),
            '+' => Some(Token::Plus),
            '-' => Some(Token::Minus),
            '<' => Some(Token::Less),
            '>' => Some(Token::Greater),
            '=' => Some(Token::Equal),
            '&' => Some(Token::And),
            '|' => Some(Token::Or),
            _ => None,
        };
        if let Some(token) = single {
            tokens.push((token, i));
            i += 1;
            continue;
        }
        if c == '(' {
            match region_at(&chars, i)? {
                Some((region, next)) => {
                    tokens.push((Token::Region(region), i));
                    i = next;
                }
                None => {
                    tokens.push((Token::Open, i));
                    i += 1;
                }
            }
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let literal: String = chars[start..i].iter().collect();
            let value = literal
                .parse::<f64>()
                .map_err(|_| FormulaError { message: format!("`{literal}` is not a number"), at: start })?;
            tokens.push((Token::Number(value), start));
            continue;
        }
        return Err(FormulaError {
            message: format!("unexpected character `{c}`: a formula has regions `(N;%condition%)`, numbers, + - < > = & | and parentheses"),
            at: i,
        });
    }
    Ok(tokens)
}

/// A region reference starting at the `(` at `open`: `( N ; %name% )` or
/// `(*;%name%)`; None when the parenthesis opens a group instead. A `(`
/// followed by a number or `*` and then `;` must be a region: an error
/// names what is wrong with it.
fn region_at(chars: &[char], open: usize) -> Result<Option<(RegionRef, usize)>, FormulaError> {
    let skip = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip(open + 1);
    let number_start = i;
    let region = if i < chars.len() && chars[i] == '*' {
        i += 1;
        None
    } else {
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i == number_start {
            return Ok(None);
        }
        let digits: String = chars[number_start..i].iter().collect();
        Some(digits.parse::<i64>().map_err(|_| FormulaError {
            message: format!("region number `{digits}` is too large"),
            at: number_start,
        })?)
    };
    let i = skip(i);
    if i >= chars.len() || chars[i] != ';' {
        return Ok(None);
    }
    let bad =
        |at: usize, what: &str| FormulaError { message: format!("a region is written `(N;%condition%)`: {what}"), at };
    let i = skip(i + 1);
    if i >= chars.len() || chars[i] != '%' {
        return Err(bad(i, "expected `%` before the condition name"));
    }
    let name_start = i + 1;
    let mut j = name_start;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '-') {
        j += 1;
    }
    if j == name_start {
        return Err(bad(
            name_start,
            "the condition name is empty or has characters other than letters, digits, _ and -",
        ));
    }
    if j >= chars.len() || chars[j] != '%' {
        return Err(bad(j, "expected `%` after the condition name"));
    }
    let condition: String = chars[name_start..j].iter().collect();
    let k = skip(j + 1);
    if k >= chars.len() || chars[k] != ')' {
        return Err(bad(k, "expected `)` to close the region"));
    }
    Ok(Some((RegionRef { region, condition }, k + 1)))
}

/// An untyped parse tree; [`Node::into_formula`] checks the types.
#[derive(Debug)]
enum Node {
    Region(RegionRef, usize),
    Number(f64, usize),
    Binary(Token, Box<Node>, Box<Node>, usize),
}

impl Node {
    fn at(&self) -> usize {
        match self {
            Node::Region(_, at) | Node::Number(_, at) | Node::Binary(_, _, _, at) => *at,
        }
    }

    fn is_boolean(&self) -> bool {
        matches!(self, Node::Binary(Token::Less | Token::Greater | Token::Equal | Token::And | Token::Or, ..))
    }

    fn into_sum(self) -> Result<Sum, FormulaError> {
        match self {
            Node::Region(r, _) => Ok(Sum::Region(r)),
            Node::Number(x, _) => Ok(Sum::Number(x)),
            Node::Binary(Token::Plus, a, b, _) => Ok(Sum::Add(Box::new(a.into_sum()?), Box::new(b.into_sum()?))),
            Node::Binary(Token::Minus, a, b, _) => Ok(Sum::Sub(Box::new(a.into_sum()?), Box::new(b.into_sum()?))),
            Node::Binary(op, _, _, at) => Err(FormulaError {
                message: format!("{} gives true or false where a surprisal (a number) is expected", op.describe()),
                at,
            }),
        }
    }

    fn into_formula(self) -> Result<Formula, FormulaError> {
        match self {
            Node::Binary(op @ (Token::Less | Token::Greater | Token::Equal), a, b, at) => {
                for side in [&a, &b] {
                    if side.is_boolean() {
                        return Err(FormulaError {
                            message: format!(
                                "{} compares two surprisals, but one side is itself a comparison (chained comparisons are not part of the language)",
                                op.describe()
                            ),
                            at,
                        });
                    }
                }
                let comparison = match op {
                    Token::Less => Comparison::Less,
                    Token::Greater => Comparison::Greater,
                    _ => Comparison::Equal,
                };
                Ok(Formula::Compare(comparison, a.into_sum()?, b.into_sum()?))
            }
            Node::Binary(op @ (Token::And | Token::Or), a, b, at) => {
                for side in [&a, &b] {
                    if !side.is_boolean() {
                        return Err(FormulaError {
                            message: format!(
                                "{} joins two comparisons, but one side is a surprisal (a number)",
                                op.describe()
                            ),
                            at,
                        });
                    }
                }
                let (a, b) = (Box::new(a.into_formula()?), Box::new(b.into_formula()?));
                Ok(if op == Token::And { Formula::And(a, b) } else { Formula::Or(a, b) })
            }
            other => Err(FormulaError {
                message: "the formula is a surprisal, not a prediction: compare it with <, > or =".into(),
                at: other.at(),
            }),
        }
    }
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    next: usize,
    /// The formula's length in characters (where "end of formula" is).
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(t, _)| t)
    }

    fn here(&self) -> usize {
        self.tokens.get(self.next).map(|(_, at)| *at).unwrap_or(self.end)
    }

    /// `&` and `|`, left to right.
    fn or_level(&mut self) -> Result<Node, FormulaError> {
        let mut left = self.comparison_level()?;
        while let Some(op @ (Token::And | Token::Or)) = self.peek().cloned() {
            let at = self.here();
            self.next += 1;
            let right = self.comparison_level()?;
            left = Node::Binary(op, Box::new(left), Box::new(right), at);
        }
        Ok(left)
    }

    /// One comparison of two sums, or a sum.
    fn comparison_level(&mut self) -> Result<Node, FormulaError> {
        let left = self.sum_level()?;
        if let Some(op @ (Token::Less | Token::Greater | Token::Equal)) = self.peek().cloned() {
            let at = self.here();
            self.next += 1;
            let right = self.sum_level()?;
            if let Some(Token::Less | Token::Greater | Token::Equal) = self.peek() {
                return Err(FormulaError {
                    message: "chained comparison: parenthesise each comparison and join them with & or |".into(),
                    at: self.here(),
                });
            }
            return Ok(Node::Binary(op, Box::new(left), Box::new(right), at));
        }
        Ok(left)
    }

    /// `+` and `-`, left to right.
    fn sum_level(&mut self) -> Result<Node, FormulaError> {
        let mut left = self.atom()?;
        while let Some(op @ (Token::Plus | Token::Minus)) = self.peek().cloned() {
            let at = self.here();
            self.next += 1;
            let right = self.atom()?;
            left = Node::Binary(op, Box::new(left), Box::new(right), at);
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Node, FormulaError> {
        let at = self.here();
        let Some((token, _)) = self.tokens.get(self.next).cloned() else {
            return Err(FormulaError {
                message: "the formula ends where a region, a number or `(` is expected".into(),
                at,
            });
        };
        self.next += 1;
        match token {
            Token::Region(r) => Ok(Node::Region(r, at)),
            Token::Number(x) => Ok(Node::Number(x, at)),
            // A signed number, as pyparsing's `number`.
            Token::Minus => match self.tokens.get(self.next).cloned() {
                Some((Token::Number(x), _)) => {
                    self.next += 1;
                    Ok(Node::Number(-x, at))
                }
                _ => Err(FormulaError { message: "`-` here must start a negative number".into(), at }),
            },
            Token::Open => {
                let inner = self.or_level()?;
                match self.peek() {
                    Some(Token::Close) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(FormulaError {
                        message: format!(
                            "expected `)` to close the `(` at character {}, found {}",
                            at + 1,
                            other.describe()
                        ),
                        at: self.here(),
                    }),
                    None => Err(FormulaError {
                        message: format!("the `(` at character {} is never closed", at + 1),
                        at: self.here(),
                    }),
                }
            }
            other => Err(FormulaError {
                message: format!(
                    "unexpected {}: expected a region `(N;%condition%)`, a number or `(`",
                    other.describe()
                ),
                at,
            }),
        }
    }
}

/// One condition's sentence: the regions' contents, trimmed, the non-empty
/// ones joined by single spaces; and each region's byte range in it (empty
/// for an empty region, at the place it would be).
pub fn assemble<S: AsRef<str>>(regions: &[S]) -> (String, Vec<Range<usize>>) {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(regions.len());
    for region in regions {
        let content = region.as_ref().trim();
        if content.is_empty() {
            spans.push(text.len()..text.len());
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        let start = text.len();
        text.push_str(content);
        spans.push(start..text.len());
    }
    (text, spans)
}

/// The region of each token, given the tokens' byte offsets `(start, end)`
/// into `text`: the region holding the token's first non-space character
/// (a token of spaces only: the next region's; after the last region: the
/// last non-empty region). None only when every region is empty.
pub fn assign_tokens(text: &str, spans: &[Range<usize>], offsets: &[(usize, usize)]) -> Vec<Option<usize>> {
    let bytes = text.as_bytes();
    offsets
        .iter()
        .map(|&(start, end)| {
            let mut first = start;
            while first < end.min(bytes.len()) && bytes[first].is_ascii_whitespace() {
                first += 1;
            }
            spans
                .iter()
                .position(|span| span.start <= first && first < span.end)
                .or_else(|| spans.iter().position(|span| !span.is_empty() && span.start >= first))
                .or_else(|| spans.iter().rposition(|span| !span.is_empty()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(entries: &[(&str, i64, f64)]) -> RegionValues {
        entries.iter().map(|(c, r, v)| ((c.to_string(), *r), *v)).collect()
    }

    /// Formulas of the shipped suites evaluated on surprisals computed by
    /// hand: each case lists the region values and the expected outcome.
    #[test]
    fn formulas_evaluate_as_computed_by_hand() {
        let number = "((7;%match_sing%) < (7;%mismatch_sing%)) & ((7;%match_plural%) < (7;%mismatch_plural%))";
        let f = Formula::parse(number).unwrap();
        let item = values(&[
            ("match_sing", 7, 3.2),
            ("mismatch_sing", 7, 5.0),
            ("match_plural", 7, 4.0),
            ("mismatch_plural", 7, 4.5),
        ]);
        assert!(f.eval(&item).unwrap());
        let item = values(&[
            ("match_sing", 7, 3.2),
            ("mismatch_sing", 7, 5.0),
            ("match_plural", 7, 4.6),
            ("mismatch_plural", 7, 4.5),
        ]);
        assert!(!f.eval(&item).unwrap());

        // center_embed: sums of two regions; 2.0 + 3.5 = 5.5 < 2.5 + 3.25 = 5.75.
        let f = Formula::parse("( (6;%plaus%) + (7;%plaus%) ) < ( (6;%implaus%) + (7;%implaus%) )").unwrap();
        let item = values(&[("plaus", 6, 2.0), ("plaus", 7, 3.5), ("implaus", 6, 2.5), ("implaus", 7, 3.25)]);
        assert!(f.eval(&item).unwrap());
        let item = values(&[("plaus", 6, 2.0), ("plaus", 7, 3.8), ("implaus", 6, 2.5), ("implaus", 7, 3.25)]);
        assert!(!f.eval(&item).unwrap());

        // cleft: a difference of differences against the literal 0:
        // (4 - 3) + ((1 + 2) - (2 + 2.5)) = 1 - 1.5 = -0.5, not > 0.
        let cleft = "((6;%np_mismatch%)-(6;%np_match%))+(((5;%vp_mismatch%)+(6;%vp_mismatch%))-((5;%vp_match%)+(6;%vp_match%)))>0";
        let f = Formula::parse(cleft).unwrap();
        let mut item = values(&[
            ("np_mismatch", 6, 4.0),
            ("np_match", 6, 3.0),
            ("vp_mismatch", 5, 1.0),
            ("vp_mismatch", 6, 2.0),
            ("vp_match", 5, 2.0),
            ("vp_match", 6, 2.5),
        ]);
        assert!(!f.eval(&item).unwrap());
        item.insert(("np_mismatch".into(), 6), 4.6); // 1.6 - 1.5 = 0.1 > 0
        assert!(f.eval(&item).unwrap());

        // fgd_hierarchy's second prediction: `=` within atol 1e-3 + rtol 1e-5 * |b|.
        let f = Formula::parse("((9;%what_nogap%) =  (9;%that_nogap%))& ((6;%what_subjgap%) =  (6;%that_subjgap%)) ")
            .unwrap();
        let item = values(&[
            ("what_nogap", 9, 10.0),
            ("that_nogap", 9, 10.0009),
            ("what_subjgap", 6, 1.0),
            ("that_subjgap", 6, 1.0),
        ]);
        assert!(f.eval(&item).unwrap());
        let item = values(&[
            ("what_nogap", 9, 10.0),
            ("that_nogap", 9, 10.0012),
            ("what_subjgap", 6, 1.0),
            ("that_subjgap", 6, 1.0),
        ]);
        assert!(!f.eval(&item).unwrap());

        // mvrr: three comparisons, the third a difference of differences.
        let mvrr = "((5;%reduced_ambig%) > (5;%unreduced_ambig%)) & ((5;%reduced_ambig%) > (5;%reduced_unambig%)) & (((5;%reduced_ambig%) - (5;%unreduced_ambig%)) > ((5;%reduced_unambig%) - (5;%unreduced_unambig%)))";
        let f = Formula::parse(mvrr).unwrap();
        // 9 > 6, 9 > 7, 9 - 6 = 3 > 7 - 5 = 2.
        let item = values(&[
            ("reduced_ambig", 5, 9.0),
            ("unreduced_ambig", 5, 6.0),
            ("reduced_unambig", 5, 7.0),
            ("unreduced_unambig", 5, 5.0),
        ]);
        assert!(f.eval(&item).unwrap());
        // 3 > 4 fails.
        let item = values(&[
            ("reduced_ambig", 5, 9.0),
            ("unreduced_ambig", 5, 6.0),
            ("reduced_unambig", 5, 7.0),
            ("unreduced_unambig", 5, 3.0),
        ]);
        assert!(!f.eval(&item).unwrap());

        // `|`, `&` left to right at one level: (false & true) | true = true;
        // false & (true | true) would be false.
        let f = Formula::parse("((1;%a%) > 5) & ((1;%a%) < 5) | ((1;%a%) = 1)").unwrap();
        assert!(f.eval(&values(&[("a", 1, 1.0)])).unwrap());
        let f = Formula::parse("((1;%a%) > 5) & (((1;%a%) < 5) | ((1;%a%) = 1))").unwrap();
        assert!(!f.eval(&values(&[("a", 1, 1.0)])).unwrap());

        // `(*;%c%)`: every region of c; negative literals; 1 + 2 + 3 - -1 = 7.
        let f = Formula::parse("(*;%a%) - -1 = 7 & (*;%a%) < 1e1").unwrap();
        assert!(f.eval(&values(&[("a", 1, 1.0), ("a", 2, 2.0), ("a", 3, 3.0), ("b", 1, 100.0)])).unwrap());
        // A region the item does not have.
        let f = Formula::parse("(8;%a%) < (1;%a%)").unwrap();
        let error = f.eval(&values(&[("a", 1, 1.0)])).unwrap_err();
        assert!(error.contains("no region (8;%a%)"), "{error}");
    }

    #[test]
    fn bad_formulas_say_what_and_where() {
        let cases = [
            ("(1;%a%) < (2;%a%) < (3;%a%)", "chained comparison", 18),
            ("(1;%a%) + (2;%a%)", "not a prediction", 8),
            ("((1;%a%) < 2", "never closed", 12),
            ("(1;%a%) & (2;%a%) < 1", "one side is a surprisal", 8),
            ("((1;%a%) < 1) + 2 > 1", "`<` gives true or false", 9),
            ("(1;%a b%) < 2", "expected `%` after the condition name", 5),
            ("(1;a%) < 2", "expected `%` before the condition name", 3),
            ("(1;%a%) < 2 $", "unexpected character `$`", 12),
            ("(1;%a%) <", "the formula ends", 9),
            ("(1;%a%) < 2)", "unexpected `)`", 11),
        ];
        for (formula, message, at) in cases {
            let error = Formula::parse(formula).unwrap_err();
            assert!(error.message.contains(message), "{formula}: {error}");
            assert_eq!(error.at, at, "{formula}: {error}");
        }
    }

    #[test]
    fn metrics_follow_numpy() {
        let v = [3.0, 1.0, 4.0, 1.5];
        assert_eq!(Metric::Sum.apply(&v), 9.5);
        assert_eq!(Metric::Mean.apply(&v), 2.375);
        assert_eq!(Metric::Median.apply(&v), 2.25);
        assert_eq!(Metric::Range.apply(&v), 3.0);
        assert_eq!((Metric::Max.apply(&v), Metric::Min.apply(&v)), (4.0, 1.0));
        assert_eq!(Metric::Sum.apply(&[]), 0.0);
        assert!(Metric::Mean.apply(&[]).is_nan());
    }

    /// Regions joined by single spaces; tokens with a leading space count
    /// for the region of their first letter; empty regions get no tokens.
    #[test]
    fn tokens_go_to_the_region_of_their_first_character() {
        let (text, spans) = assemble(&["The dog", "", " near the cats ", "runs", "."]);
        assert_eq!(text, "The dog near the cats runs .");
        assert_eq!(spans, vec![0..7, 7..7, 8..21, 22..26, 27..28]);
        // GPT-2 style offsets: "The", " dog", " near", " the", " cats", " runs", " ."
        let offsets = [(0, 3), (3, 7), (7, 12), (12, 16), (16, 21), (21, 26), (26, 28)];
        let regions = assign_tokens(&text, &spans, &offsets);
        assert_eq!(regions, vec![Some(0), Some(0), Some(2), Some(2), Some(2), Some(3), Some(4)]);
        // Word-level offsets (no spaces in tokens) give the same regions.
        let offsets = [(0, 3), (4, 7), (8, 12), (13, 16), (17, 21), (22, 26), (27, 28)];
        assert_eq!(assign_tokens(&text, &spans, &offsets), regions);
        // A token of spaces only goes to the next region.
        assert_eq!(assign_tokens(&text, &spans, &[(21, 22)]), vec![Some(3)]);
    }
}
