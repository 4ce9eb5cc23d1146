//! `voxflow compare --filter/--by/--pivot/--sort`: the gathered table as a
//! polars data frame. Gathering stays in arrow-rs (the store is Arrow and
//! Parquet); the table is copied column by column into a polars `DataFrame`,
//! the query runs on polars' lazy API (filter, group_by + agg, pivot, sort),
//! and the result is copied back into an arrow `RecordBatch` for printing,
//! JSON and the Parquet/CSV writers voxflow already has.
//!
//! The filter grammar (parsed here into polars expressions):
//!
//! ```text
//! filter := clause ("and" clause)*
//! clause := COLUMN OP VALUE
//!         | COLUMN "in" "[" VALUE ("," VALUE)* "]"
//!         | COLUMN "not" "in" "[" VALUE ("," VALUE)* "]"
//! OP     := == | != | < | <= | > | >=      (`=` is read as `==`)
//! VALUE  := a bare word (`lanczos`, `3`, `1e-3`) or a 'quoted' / "quoted" string
//! ```
//!
//! Matrix values are stored as text; a column whose every value reads as a
//! number (seeds, layers, learning rates) is compared and sorted as numbers,
//! so `layer >= 3` and `lr == 1e-3` mean what they say. Other text columns
//! take `==`, `!=` and `in` only.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType as ArrowType, Field, Float64Type, Int64Type, Schema};
use polars::frame::PivotColumnNaming;
use polars::prelude::{
    by_name, col, element, lit, DataFrame, DataType, Expr, IntoColumn, IntoLazy, LazyFrame, NamedFrom, PlSmallStr,
    Series, SortMultipleOptions,
};

use super::Comparison;

/// An aggregate of `--by` / `--pivot`, over the rows of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Mean,
    /// The sample standard deviation (ddof = 1, as polars' and pandas'
    /// default `std`); null for a group of one.
    Sd,
    Median,
    /// The number of non-null values.
    N,
    Min,
    Max,
}

impl Agg {
    pub const ALL: [Agg; 6] = [Agg::Mean, Agg::Sd, Agg::Median, Agg::N, Agg::Min, Agg::Max];

    pub fn name(self) -> &'static str {
        match self {
            Agg::Mean => "mean",
            Agg::Sd => "sd",
            Agg::Median => "median",
            Agg::N => "n",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }

    pub fn parse(text: &str) -> Result<Agg, String> {
        Agg::ALL.into_iter().find(|a| a.name() == text.trim()).ok_or_else(|| {
            format!(
                "unknown aggregate `{text}` (--agg takes {})",
                Agg::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    fn expr(self, e: Expr) -> Expr {
        match self {
            Agg::Mean => e.mean(),
            Agg::Sd => e.std(1),
            Agg::Median => e.median(),
            Agg::N => e.count(),
            Agg::Min => e.min(),
            Agg::Max => e.max(),
        }
    }
}

/// What `voxflow compare` was asked beyond gathering.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// See the module doc for the grammar.
    pub filter: Option<String>,
    /// Group by these columns (axes, `pipeline`, `stage`, `base`, or a
    /// metric such as a training step) and aggregate every other metric.
    pub by: Vec<String>,
    /// One column per value of this column, for one metric.
    pub pivot: Option<String>,
    /// The metric `--pivot` spreads (default: the first metric that is not a key).
    pub metric: Option<String>,
    /// Default: mean, sd, n with `--by`; mean with `--pivot`.
    pub aggs: Vec<Agg>,
    /// `COL` or `COL:desc`, in order of precedence.
    pub sort: Vec<String>,
}

impl Query {
    pub fn is_plain(&self) -> bool {
        self.filter.is_none() && self.by.is_empty() && self.pivot.is_none() && self.sort.is_empty()
    }
}

/// The result of a query.
pub struct Queried {
    /// The filtered rows, before any grouping (what the chart shows).
    pub rows: RecordBatch,
    /// The result table.
    pub table: RecordBatch,
    /// The columns of `table` that name a row (group keys, pivot index, or
    /// the stage and axes of the plain table).
    pub keys: Vec<String>,
    /// The other columns of `table`, each with the metric it came from.
    pub values: Vec<(String, String)>,
}

/// A query error: `Usage` for a bad flag (exit 2, with the names there are),
/// `Failed` for anything polars or arrow refused.
#[derive(Debug)]
pub enum QueryError {
    Usage { message: String, hint: String },
    Failed(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Usage { message, hint } => write!(f, "{message} ({hint})"),
            QueryError::Failed(message) => write!(f, "{message}"),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> QueryError {
    QueryError::Failed(e.to_string())
}

/// The column names there are, for error hints.
pub fn columns_hint(comparison: &Comparison) -> String {
    let labels: Vec<String> = labels(comparison).into_iter().filter(|l| !comparison.axes.contains(l)).collect();
    format!(
        "axes: {}; metrics: {}; also: {}",
        if comparison.axes.is_empty() { "(none)".to_string() } else { comparison.axes.join(", ") },
        comparison.metrics.join(", "),
        labels.join(", ")
    )
}

/// The columns of the table that are not metrics (pipeline, stage, base, axes).
fn labels(comparison: &Comparison) -> Vec<String> {
    comparison
        .table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !comparison.metrics.contains(n))
        .collect()
}

/// Runs the query on the gathered table.
pub fn run(comparison: &Comparison, query: &Query) -> Result<Queried, QueryError> {
    let table = &comparison.table;
    let schema = table.schema();
    let usage = |message: String| QueryError::Usage { message, hint: columns_hint(comparison) };
    let has = |name: &str| schema.index_of(name).is_ok();
    for name in &query.by {
        if !has(name) {
            return Err(usage(format!("--by {name}: no such column")));
        }
    }
    if let Some(pivot) = &query.pivot {
        if !has(pivot) {
            return Err(usage(format!("--pivot {pivot}: no such column")));
        }
        if query.by.contains(pivot) {
            return Err(usage(format!(
                "--pivot {pivot} is also in --by; the pivoted column spreads, it cannot also group"
            )));
        }
    }
    if let Some(metric) = &query.metric {
        if !comparison.metrics.contains(metric) {
            return Err(usage(format!("--metric {metric}: no such metric")));
        }
    }
    // Text columns whose every value reads as a number compare and sort as numbers.
    let numeric_text: Vec<String> = schema
        .fields()
        .iter()
        .zip(table.columns())
        .filter(|(f, c)| f.data_type() == &ArrowType::Utf8 && numeric_like(c))
        .map(|(f, _)| f.name().clone())
        .collect();
    let frame = to_frame(table).map_err(failed)?;
    let mut lazy = frame.lazy();
    if let Some(text) = &query.filter {
        let expr = parse_filter(text, table, &numeric_text).map_err(|message| usage(format!("--filter: {message}")))?;
        lazy = lazy.filter(expr);
    }
    let filtered = lazy.collect().map_err(failed)?;
    let rows = to_batch(&filtered).map_err(failed)?;
    let lazy = filtered.clone().lazy();
    let not_key = |m: &&String| !query.by.contains(m) && query.pivot.as_ref() != Some(*m);
    let (lazy, keys, values) = if let Some(pivot) = &query.pivot {
        let metric = match &query.metric {
            Some(metric) if not_key(&metric) => metric.clone(),
            Some(metric) => return Err(usage(format!("--metric {metric} is a key (--by or --pivot)"))),
            None => comparison
                .metrics
                .iter()
                .find(not_key)
                .cloned()
                .ok_or_else(|| usage("--pivot: every metric is a key; nothing left to spread".into()))?,
        };
        let index: Vec<String> = if query.by.is_empty() {
            labels(comparison)
                .into_iter()
                .filter(|l| (l == "pipeline" || comparison.axes.contains(l)) && l != pivot)
                .collect()
        } else {
            query.by.clone()
        };
        if index.is_empty() {
            return Err(usage(format!("--pivot {pivot}: no other axis is left to name the rows; give --by")));
        }
        let aggs = if query.aggs.is_empty() { vec![Agg::Mean] } else { query.aggs.clone() };
        let mut group: Vec<Expr> = index.iter().map(|c| col(c.as_str())).collect();
        group.push(col(pivot.as_str()));
        let spread: Vec<String> = aggs.iter().map(|a| format!("{metric}_{}", a.name())).collect();
        let grouped = lazy.group_by(group).agg(
            aggs.iter()
                .zip(&spread)
                .map(|(a, name)| a.expr(col(metric.as_str())).alias(name.as_str()))
                .collect::<Vec<_>>(),
        );
        let on = pivot_values(&filtered, pivot, numeric_text.contains(pivot)).map_err(failed)?;
        let pivoted = grouped.pivot(
            by_name([pivot.as_str()], true, false),
            Arc::new(on),
            by_name(index.iter().map(String::as_str), true, false),
            by_name(spread.iter().map(String::as_str), true, false),
            element().first(),
            true,
            PlSmallStr::from("_"),
            PivotColumnNaming::Auto,
        );
        let pivoted = sort_lazy(pivoted, &index.iter().map(|k| (k.clone(), false)).collect::<Vec<_>>(), &numeric_text);
        let names: Vec<String> =
            pivoted.clone().collect_schema().map_err(failed)?.iter_names().map(|n| n.to_string()).collect();
        let values = names.iter().filter(|n| !index.contains(n)).map(|n| (n.clone(), metric.clone())).collect();
        (pivoted, index, values)
    } else if !query.by.is_empty() {
        let aggs = if query.aggs.is_empty() { vec![Agg::Mean, Agg::Sd, Agg::N] } else { query.aggs.clone() };
        let metrics: Vec<&String> = comparison.metrics.iter().filter(not_key).collect();
        let mut exprs = Vec::new();
        let mut values = Vec::new();
        for metric in &metrics {
            for agg in &aggs {
                let name = format!("{metric}_{}", agg.name());
                exprs.push(agg.expr(col(metric.as_str())).alias(name.as_str()));
                values.push((name, metric.to_string()));
            }
        }
        let grouped = lazy.group_by(query.by.iter().map(|c| col(c.as_str())).collect::<Vec<_>>()).agg(exprs);
        let grouped =
            sort_lazy(grouped, &query.by.iter().map(|k| (k.clone(), false)).collect::<Vec<_>>(), &numeric_text);
        (grouped, query.by.clone(), values)
    } else {
        let keys = labels(comparison);
        let values = comparison.metrics.iter().map(|m| (m.clone(), m.clone())).collect();
        (lazy, keys, values)
    };
    let lazy = if query.sort.is_empty() {
        lazy
    } else {
        let names: Vec<String> =
            lazy.clone().collect_schema().map_err(failed)?.iter_names().map(|n| n.to_string()).collect();
        let mut order = Vec::new();
        for spec in &query.sort {
            let (name, descending) = match spec.rsplit_once(':') {
                Some((name, "desc")) => (name, true),
                Some((name, "asc")) => (name, false),
                _ => (spec.as_str(), false),
            };
            if !names.iter().any(|n| n == name) {
                return Err(QueryError::Usage {
                    message: format!("--sort {spec}: no column `{name}` in the result"),
                    hint: format!("columns: {}", names.join(", ")),
                });
            }
            order.push((name.to_string(), descending));
        }
        sort_lazy(lazy, &order, &numeric_text)
    };
    let result = lazy.collect().map_err(failed)?;
    let table = to_batch(&result).map_err(failed)?;
    Ok(Queried { rows, table, keys, values })
}

/// Sorts by the given columns, text columns of numbers as numbers, nulls last.
fn sort_lazy(lazy: LazyFrame, order: &[(String, bool)], numeric_text: &[String]) -> LazyFrame {
    if order.is_empty() {
        return lazy;
    }
    let exprs: Vec<Expr> =
        order
            .iter()
            .map(|(name, _)| {
                if numeric_text.contains(name) {
                    col(name.as_str()).cast(DataType::Float64)
                } else {
                    col(name.as_str())
                }
            })
            .collect();
    let options = SortMultipleOptions::default()
        .with_order_descending_multi(order.iter().map(|(_, d)| *d).collect::<Vec<_>>())
        .with_nulls_last(true)
        .with_maintain_order(true);
    lazy.sort_by_exprs(exprs, options)
}

/// The distinct values of the pivoted column in sorted order (numbers as
/// numbers): the order of the pivot's columns.
fn pivot_values(frame: &DataFrame, pivot: &str, numeric: bool) -> polars::prelude::PolarsResult<DataFrame> {
    let distinct = frame.clone().lazy().select([col(pivot)]).unique_stable(None, Default::default());
    let as_numbers = if numeric { vec![pivot.to_string()] } else { Vec::new() };
    sort_lazy(distinct, &[(pivot.to_string(), false)], &as_numbers).collect()
}

fn numeric_like(column: &ArrayRef) -> bool {
    let values = column.as_string::<i32>();
    values.null_count() < values.len() && values.iter().flatten().all(|v| v.trim().parse::<f64>().is_ok())
}

/// The arrow table as a polars frame: text, Int64 and Float64 columns (the
/// kinds `gather` writes); any other numeric column goes through Float64.
pub fn to_frame(table: &RecordBatch) -> Result<DataFrame, String> {
    let mut columns = Vec::with_capacity(table.num_columns());
    for (field, array) in table.schema().fields().iter().zip(table.columns()) {
        let name = PlSmallStr::from(field.name().as_str());
        let series = match field.data_type() {
            ArrowType::Utf8 => Series::new(name, array.as_string::<i32>().iter().collect::<Vec<Option<&str>>>()),
            ArrowType::Int64 => Series::new(name, array.as_primitive::<Int64Type>().iter().collect::<Vec<_>>()),
            _ => {
                let cast = arrow::compute::cast(array, &ArrowType::Float64).map_err(|e| e.to_string())?;
                Series::new(name, cast.as_primitive::<Float64Type>().iter().collect::<Vec<_>>())
            }
        };
        columns.push(series.into_column());
    }
    DataFrame::new(table.num_rows(), columns).map_err(|e| e.to_string())
}

/// The polars frame as an arrow table: text, Int64 (counts and other
/// integers) and Float64 columns.
pub fn to_batch(frame: &DataFrame) -> Result<RecordBatch, String> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for column in frame.columns() {
        let series = column.as_materialized_series();
        let name = series.name().as_str();
        let dtype = series.dtype();
        let (kind, array): (ArrowType, ArrayRef) = if dtype == &DataType::String {
            let values = series.str().map_err(|e| e.to_string())?;
            (ArrowType::Utf8, Arc::new(values.iter().collect::<StringArray>()))
        } else if dtype.is_integer() || dtype == &DataType::Boolean {
            let cast = series.cast(&DataType::Int64).map_err(|e| e.to_string())?;
            (ArrowType::Int64, Arc::new(cast.i64().map_err(|e| e.to_string())?.iter().collect::<Int64Array>()))
        } else if dtype.is_primitive_numeric() || dtype == &DataType::Null {
            let cast = series.cast(&DataType::Float64).map_err(|e| e.to_string())?;
            (ArrowType::Float64, Arc::new(cast.f64().map_err(|e| e.to_string())?.iter().collect::<Float64Array>()))
        } else {
            let cast = series.cast(&DataType::String).map_err(|e| e.to_string())?;
            (ArrowType::Utf8, Arc::new(cast.str().map_err(|e| e.to_string())?.iter().collect::<StringArray>()))
        };
        fields.push(Field::new(name, kind, true));
        arrays.push(array);
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(frame.height()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options).map_err(|e| e.to_string())
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Quoted(q) => format!("'{q}'"),
            Token::Op(op) => op.to_string(),
            Token::Open => "[".into(),
            Token::Close => "]".into(),
            Token::Comma => ",".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '[' | '(' => {
                tokens.push(Token::Open);
                i += 1
            }
            ']' | ')' => {
                tokens.push(Token::Close);
                i += 1
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1
            }
            '=' | '!' | '<' | '>' => {
                let (op, width) = match (c, next) {
                    ('=', Some('=')) => ("==", 2),
                    ('=', _) => ("==", 1),
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => {
                        return Err(format!(
                            "unexpected `!` at character {}; `!=` is the only operator with `!`",
                            i + 1
                        ))
                    }
                };
                tokens.push(Token::Op(op));
                i += width;
            }
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&d| d == c)
                    .ok_or_else(|| format!("unclosed quote {c} at character {}", i + 1))?;
                tokens.push(Token::Quoted(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"[](),=!<>'\"".contains(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

/// Parses `--filter` into one polars predicate.
fn parse_filter(text: &str, table: &RecordBatch, numeric_text: &[String]) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let schema = table.schema();
    let mut at = 0;
    let mut predicate: Option<Expr> = None;
    let describe = |t: Option<&Token>| t.map(|t| format!("`{}`", t.text())).unwrap_or_else(|| "the end".into());
    loop {
        let name = match tokens.get(at) {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => w.clone(),
            other => return Err(format!("expected a column name, found {}", describe(other))),
        };
        let field = schema.field_with_name(&name).map_err(|_| format!("no column `{name}`"))?;
        at += 1;
        let op = match tokens.get(at) {
            Some(Token::Op(op)) => op.to_string(),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => "in".into(),
            Some(Token::Word(w))
                if w.eq_ignore_ascii_case("not")
                    && matches!(tokens.get(at + 1), Some(Token::Word(i)) if i.eq_ignore_ascii_case("in")) =>
            {
                at += 1;
                "not in".into()
            }
            other => {
                return Err(format!(
                    "expected an operator (== != < <= > >= in, not in) after `{name}`, found {}",
                    describe(other)
                ))
            }
        };
        at += 1;
        let mut values = Vec::new();
        if op.ends_with("in") {
            if tokens.get(at) != Some(&Token::Open) {
                return Err(format!("expected `[` after `{name} {op}`, found {}", describe(tokens.get(at))));
            }
            at += 1;
            loop {
                match tokens.get(at) {
                    Some(Token::Word(w)) | Some(Token::Quoted(w)) => values.push(w.clone()),
                    other => return Err(format!("expected a value in `{name} {op} [...]`, found {}", describe(other))),
                }
                at += 1;
                match tokens.get(at) {
                    Some(Token::Comma) => at += 1,
                    Some(Token::Close) => {
                        at += 1;
                        break;
                    }
                    other => {
                        return Err(format!("expected `,` or `]` in `{name} {op} [...]`, found {}", describe(other)))
                    }
                }
            }
        } else {
            match tokens.get(at) {
                Some(Token::Word(w)) | Some(Token::Quoted(w)) => values.push(w.clone()),
                other => return Err(format!("expected a value after `{name} {op}`, found {}", describe(other))),
            }
            at += 1;
        }
        let numeric_column = field.data_type() != &ArrowType::Utf8 || numeric_text.contains(&name);
        let numbers: Option<Vec<f64>> = values.iter().map(|v| v.trim().parse::<f64>().ok()).collect();
        let clause = match (numeric_column, numbers) {
            (true, Some(numbers)) => {
                let column = col(name.as_str()).cast(DataType::Float64);
                compare(column, &op, numbers.into_iter().map(lit).collect())
            }
            (true, None) if field.data_type() != &ArrowType::Utf8 => {
                return Err(format!(
                    "`{name}` holds numbers; `{}` is not one",
                    values.iter().find(|v| v.trim().parse::<f64>().is_err()).unwrap()
                ))
            }
            _ => {
                if !matches!(op.as_str(), "==" | "!=" | "in" | "not in") {
                    return Err(format!("`{op}` compares numbers; `{name}` holds text (use ==, != or in)"));
                }
                compare(col(name.as_str()), &op, values.iter().map(|v| lit(v.as_str())).collect())
            }
        };
        predicate = Some(match predicate {
            Some(p) => p.and(clause),
            None => clause,
        });
        match tokens.get(at) {
            None => break,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => at += 1,
            other => return Err(format!("expected `and` or the end, found {}", describe(other))),
        }
    }
    predicate.ok_or_else(|| "empty filter".to_string())
}

fn compare(column: Expr, op: &str, values: Vec<Expr>) -> Expr {
    let value = values[0].clone();
    match op {
        "==" => column.eq(value),
        "!=" => column.neq(value),
        "<" => column.lt(value),
        "<=" => column.lt_eq(value),
        ">" => column.gt(value),
        ">=" => column.gt_eq(value),
        _ => {
            let any = values.into_iter().map(|v| column.clone().eq(v)).reduce(|a, b| a.or(b)).unwrap();
            if op == "in" {
                any
            } else {
                any.not()
            }
        }
    }
}
