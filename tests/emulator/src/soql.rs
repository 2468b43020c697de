//! The SOQL subset the emulator answers:
//! `SELECT f, ... | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC]] [LIMIT n] [OFFSET n]`,
//! where a condition compares a field with `= != <> < <= > >= LIKE`, `IN (...)`
//! or `NOT IN (...)`, combined with `AND`, `OR`, `NOT` and parentheses.
//! Text comparisons ignore case, as Salesforce's do. Errors carry Salesforce's
//! caret-style message (`ERROR at Row:1:Column:8`).

use serde_json::Value;

use crate::errors::SfError;
use crate::records::Record;
use crate::schema::{FieldType, Schema};

/// A parsed query, with field names already resolved against the schema.
#[derive(Debug, Clone)]
pub struct Query {
    /// The selected fields (canonical names); empty for `COUNT()`.
    pub fields: Vec<String>,
    /// Whether this is `SELECT COUNT()`.
    pub count: bool,
    /// The object (canonical name).
    pub object: &'static str,
    /// The `WHERE` condition.
    pub filter: Option<Expr>,
    /// `ORDER BY` field and whether descending.
    pub order: Option<(String, bool)>,
    /// `LIMIT`.
    pub limit: Option<usize>,
    /// `OFFSET`.
    pub offset: usize,
}

/// A condition.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// Does not hold.
    Not(Box<Expr>),
    /// `field op literal`.
    Cmp(String, Op, Literal),
    /// `field [NOT] IN (literals)`.
    In(String, bool, Vec<Literal>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE` with `%` and `_`
    Like,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'`
    Str(String),
    /// A number.
    Num(f64),
    /// `true` / `false`
    Bool(bool),
    /// `null`
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    row: usize,
    col: usize,
}

struct ErrAt {
    code: &'static str,
    row: usize,
    col: usize,
    message: String,
}

fn tokenize(q: &str) -> Result<Vec<Token>, ErrAt> {
    let chars: Vec<char> = q.chars().collect();
    let (mut i, mut row, mut col) = (0, 1, 1);
    let mut out = Vec::new();
    let bad = |row, col, message: String| ErrAt { code: "MALFORMED_QUERY", row, col, message };
    while i < chars.len() {
        let c = chars[i];
        let (trow, tcol) = (row, col);
        let step = |i: &mut usize, col: &mut usize, n: usize| {
            *i += n;
            *col += n;
        };
        if c == '\n' {
            i += 1;
            row += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            step(&mut i, &mut col, 1);
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                step(&mut i, &mut col, 1);
            }
            out.push(Token { tok: Tok::Word(chars[start..i].iter().collect()), row: trow, col: tcol });
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            step(&mut i, &mut col, 1);
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                step(&mut i, &mut col, 1);
            }
            let text: String = chars[start..i].iter().collect();
            let n = text.parse().map_err(|_| bad(trow, tcol, format!("unexpected token: '{text}'")))?;
            out.push(Token { tok: Tok::Num(n), row: trow, col: tcol });
            continue;
        }
        if c == '\'' {
            step(&mut i, &mut col, 1);
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(bad(trow, tcol, "line 1:0 mismatched character '<EOF>' expecting '''".into())),
                    Some('\'') => {
                        step(&mut i, &mut col, 1);
                        break;
                    }
                    Some('\\') => {
                        let esc = chars.get(i + 1).copied().unwrap_or('\\');
                        match esc {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'r' => s.push('\r'),
                            // Escaped wildcards stay escaped for LIKE.
                            '%' | '_' => {
                                s.push('\\');
                                s.push(esc);
                            }
                            other => s.push(other),
                        }
                        step(&mut i, &mut col, 2);
                    }
                    Some(&ch) => {
                        s.push(ch);
                        step(&mut i, &mut col, 1);
                    }
                }
            }
            out.push(Token { tok: Tok::Str(s), row: trow, col: tcol });
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let sym = match two.as_str() {
            "!=" => Some("!="),
            "<>" => Some("<>"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(s) = sym {
            out.push(Token { tok: Tok::Sym(s), row: trow, col: tcol });
            step(&mut i, &mut col, 2);
            continue;
        }
        let one = match c {
            ',' => ",",
            '(' => "(",
            ')' => ")",
            '=' => "=",
            '<' => "<",
            '>' => ">",
            '*' => "*",
            _ => return Err(bad(trow, tcol, format!("unexpected token: '{c}'"))),
        };
        out.push(Token { tok: Tok::Sym(one), row: trow, col: tcol });
        step(&mut i, &mut col, 1);
    }
    out.push(Token { tok: Tok::End, row, col });
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Token>,
    pos: usize,
    schema: &'a Schema,
    object: Option<&'static str>,
    depth: usize,
}

/// Deepest nesting of parentheses and NOT accepted.
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }
    fn next(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn unexpected(&self, t: &Token) -> ErrAt {
        let text = match &t.tok {
            Tok::Word(w) => w.clone(),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Num(n) => n.to_string(),
            Tok::Sym(s) => s.to_string(),
            Tok::End => "<EOF>".into(),
        };
        ErrAt { code: "MALFORMED_QUERY", row: t.row, col: t.col, message: format!("unexpected token: '{text}'") }
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), ErrAt> {
        if self.is_kw(kw) {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(&self.peek().clone()))
        }
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), ErrAt> {
        if self.peek().tok == Tok::Sym(match s {
            "(" => "(",
            ")" => ")",
            _ => ",",
        }) {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(&self.peek().clone()))
        }
    }
    fn word(&mut self) -> Result<(String, Token), ErrAt> {
        let t = self.next();
        match &t.tok {
            Tok::Word(w) => Ok((w.clone(), t.clone())),
            _ => Err(self.unexpected(&t)),
        }
    }
    fn resolve(&self, name: &str, at: &Token) -> Result<String, ErrAt> {
        let object = self.schema.object(self.object.expect("object parsed first")).expect("object exists");
        object.field(name).map(|f| f.name.clone()).ok_or_else(|| ErrAt {
            code: "INVALID_FIELD",
            row: at.row,
            col: at.col,
            message: format!(
                "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                object.name
            ),
        })
    }

    fn expr(&mut self) -> Result<Expr, ErrAt> {
        let mut left = self.term()?;
        while self.is_kw("OR") {
            self.next();
            left = Expr::Or(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }
    fn term(&mut self) -> Result<Expr, ErrAt> {
        let mut left = self.factor()?;
        while self.is_kw("AND") {
            self.next();
            left = Expr::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }
    fn factor(&mut self) -> Result<Expr, ErrAt> {
        if self.is_kw("NOT") || self.peek().tok == Tok::Sym("(") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                let t = self.peek().clone();
                return Err(ErrAt { code: "MALFORMED_QUERY", row: t.row, col: t.col, message: "the condition is nested too deeply".into() });
            }
            let e = if self.is_kw("NOT") {
                self.next();
                Expr::Not(Box::new(self.factor()?))
            } else {
                self.next();
                let e = self.expr()?;
                self.expect_sym(")")?;
                e
            };
            self.depth -= 1;
            return Ok(e);
        }
        let (name, at) = self.word()?;
        let field = self.resolve(&name, &at)?;
        let negated = self.is_kw("NOT");
        if negated {
            self.next();
            if !self.is_kw("IN") {
                return Err(self.unexpected(&self.peek().clone()));
            }
        }
        if self.is_kw("IN") {
            self.next();
            self.expect_sym("(")?;
            let mut values = vec![self.literal()?];
            while self.peek().tok == Tok::Sym(",") {
                self.next();
                values.push(self.literal()?);
            }
            self.expect_sym(")")?;
            return Ok(Expr::In(field, negated, values));
        }
        let t = self.next();
        let op = match &t.tok {
            Tok::Sym("=") => Op::Eq,
            Tok::Sym("!=") | Tok::Sym("<>") => Op::Ne,
            Tok::Sym("<") => Op::Lt,
            Tok::Sym("<=") => Op::Le,
            Tok::Sym(">") => Op::Gt,
            Tok::Sym(">=") => Op::Ge,
            Tok::Word(w) if w.eq_ignore_ascii_case("LIKE") => Op::Like,
            _ => return Err(self.unexpected(&t)),
        };
        Ok(Expr::Cmp(field, op, self.literal()?))
    }
    fn literal(&mut self) -> Result<Literal, ErrAt> {
        let t = self.next();
        Ok(match &t.tok {
            Tok::Str(s) => Literal::Str(s.clone()),
            Tok::Num(n) => Literal::Num(*n),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            _ => return Err(self.unexpected(&t)),
        })
    }
    fn number(&mut self) -> Result<usize, ErrAt> {
        let t = self.next();
        match t.tok {
            Tok::Num(n) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
            _ => Err(self.unexpected(&t)),
        }
    }
}

/// Parses `q` against `schema`, or gives Salesforce's error.
pub fn parse(q: &str, schema: &Schema) -> Result<Query, SfError> {
    parse_inner(q, schema).map_err(|e| {
        let line = q.lines().nth(e.row - 1).unwrap_or(q);
        let caret = " ".repeat(e.col.saturating_sub(1));
        SfError::new(e.code, format!("\n{line}\n{caret}^\nERROR at Row:{}:Column:{}\n{}", e.row, e.col, e.message))
    })
}

fn parse_inner(q: &str, schema: &Schema) -> Result<Query, ErrAt> {
    let mut p = Parser { toks: tokenize(q)?, pos: 0, schema, object: None, depth: 0 };
    p.expect_kw("SELECT")?;
    let mut raw_fields = Vec::new();
    let mut count = false;
    if p.is_kw("COUNT") {
        p.next();
        p.expect_sym("(")?;
        p.expect_sym(")")?;
        count = true;
    } else {
        loop {
            let (name, at) = p.word()?;
            raw_fields.push((name, at));
            if p.peek().tok == Tok::Sym(",") {
                p.next();
            } else {
                break;
            }
        }
    }
    p.expect_kw("FROM")?;
    let (obj, at) = p.word()?;
    let object = schema.object(&obj).ok_or_else(|| ErrAt {
        code: "INVALID_TYPE",
        row: at.row,
        col: at.col,
        message: format!(
            "sObject type '{obj}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    })?;
    p.object = Some(object.name);
    let mut fields = Vec::new();
    for (name, at) in &raw_fields {
        let f = p.resolve(name, at)?;
        if !fields.contains(&f) {
            fields.push(f);
        }
    }
    let filter = if p.is_kw("WHERE") {
        p.next();
        Some(p.expr()?)
    } else {
        None
    };
    let mut order = None;
    if p.is_kw("ORDER") {
        p.next();
        p.expect_kw("BY")?;
        let (name, at) = p.word()?;
        let f = p.resolve(&name, &at)?;
        let mut desc = false;
        if p.is_kw("ASC") {
            p.next();
        } else if p.is_kw("DESC") {
            p.next();
            desc = true;
        }
        order = Some((f, desc));
    }
    let mut limit = None;
    if p.is_kw("LIMIT") {
        p.next();
        limit = Some(p.number()?);
    }
    let mut offset = 0;
    if p.is_kw("OFFSET") {
        p.next();
        let at = p.peek().clone();
        offset = p.number()?;
        if offset > 2000 {
            return Err(ErrAt { code: "NUMBER_OUTSIDE_VALID_RANGE", row: at.row, col: at.col, message: "Maximum SOQL offset allowed is 2000".into() });
        }
    }
    if p.peek().tok != Tok::End {
        return Err(p.unexpected(&p.peek().clone()));
    }
    Ok(Query { fields, count, object: object.name, filter, order, limit, offset })
}

impl Query {
    /// Whether `record` satisfies the `WHERE` condition.
    pub fn matches(&self, schema: &Schema, record: &Record) -> bool {
        self.filter.as_ref().is_none_or(|e| eval(e, schema, self.object, record))
    }

    /// Filters, orders and pages `records`.
    pub fn run<'r>(&self, schema: &Schema, records: impl Iterator<Item = &'r Record>) -> Vec<&'r Record> {
        let mut out: Vec<&Record> = records.filter(|r| self.matches(schema, r)).collect();
        if let Some((f, desc)) = &self.order {
            out.sort_by(|a, b| {
                let o = compare(&a.get(f), &b.get(f));
                if *desc { o.reverse() } else { o }
            });
        }
        let out: Vec<&Record> = out.into_iter().skip(self.offset).collect();
        match self.limit {
            Some(n) => out.into_iter().take(n).collect(),
            None => out,
        }
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        // Salesforce sorts nulls first by default.
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn eval(e: &Expr, schema: &Schema, object: &str, r: &Record) -> bool {
    match e {
        Expr::And(a, b) => eval(a, schema, object, r) && eval(b, schema, object, r),
        Expr::Or(a, b) => eval(a, schema, object, r) || eval(b, schema, object, r),
        Expr::Not(a) => !eval(a, schema, object, r),
        Expr::In(f, negated, values) => {
            let v = r.get(f);
            values.iter().any(|l| cmp(&v, Op::Eq, l, field_is_id(schema, object, f))) != *negated
        }
        Expr::Cmp(f, op, l) => cmp(&r.get(f), *op, l, field_is_id(schema, object, f)),
    }
}

fn field_is_id(schema: &Schema, object: &str, f: &str) -> bool {
    schema
        .object(object)
        .and_then(|o| o.field(f))
        .is_some_and(|f| matches!(f.ty, FieldType::Id | FieldType::Reference(_)))
}

fn cmp(v: &Value, op: Op, l: &Literal, is_id: bool) -> bool {
    use std::cmp::Ordering::*;
    let ord = match (v, l) {
        (Value::Null, Literal::Null) => Some(Equal),
        (Value::Null, _) | (_, Literal::Null) => None,
        (Value::String(s), Literal::Str(t)) if is_id => {
            // 15- and 18-character forms of one id are equal.
            let norm = |x: &str| crate::ids::normalize(x).unwrap_or_else(|| x.to_string());
            Some(norm(s).cmp(&norm(t)))
        }
        (Value::String(s), Literal::Str(t)) => {
            if op == Op::Like {
                return like(&s.to_lowercase(), &t.to_lowercase());
            }
            Some(s.to_lowercase().cmp(&t.to_lowercase()))
        }
        (Value::Bool(b), Literal::Bool(c)) => Some(b.cmp(c)),
        (Value::String(s), Literal::Num(n)) => s.parse::<f64>().ok().and_then(|x| x.partial_cmp(n)),
        _ => None,
    };
    match (op, ord) {
        (Op::Eq, Some(o)) => o == Equal,
        (Op::Ne, Some(o)) => o != Equal,
        (Op::Ne, None) => true,
        (Op::Lt, Some(o)) => o == Less,
        (Op::Le, Some(o)) => o != Greater,
        (Op::Gt, Some(o)) => o == Greater,
        (Op::Ge, Some(o)) => o != Less,
        _ => false,
    }
}

/// A LIKE pattern element.
#[derive(Clone, Copy, PartialEq)]
enum Pat {
    Any,
    One,
    Lit(char),
}

/// `LIKE` with `%`, `_` and backslash escapes, in O(len × pattern) time.
fn like(s: &str, pattern: &str) -> bool {
    let mut pat = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        pat.push(match c {
            '%' => Pat::Any,
            '_' => Pat::One,
            '\\' => Pat::Lit(chars.next().unwrap_or('\\')),
            c => Pat::Lit(c),
        });
    }
    let s: Vec<char> = s.chars().collect();
    // reach[j]: the pattern's first j elements can match the text so far.
    let mut reach = vec![false; pat.len() + 1];
    reach[0] = true;
    for j in 0..pat.len() {
        reach[j + 1] = reach[j] && pat[j] == Pat::Any;
    }
    for &c in &s {
        let mut next = vec![false; pat.len() + 1];
        for j in 0..pat.len() {
            next[j + 1] = match pat[j] {
                Pat::Any => reach[j + 1] || next[j],
                Pat::One => reach[j],
                Pat::Lit(l) => reach[j] && l == c,
            };
        }
        reach = next;
    }
    reach[pat.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use serde_json::json;

    fn rec(id: &str, last: &str, email: Option<&str>) -> Record {
        let mut fields = IndexMap::new();
        fields.insert("Id".into(), json!(id));
        fields.insert("LastName".into(), json!(last));
        if let Some(e) = email {
            fields.insert("Email".into(), json!(e));
        }
        Record { id: id.into(), object: "Contact", fields, deleted: false }
    }

    #[test]
    fn parses_and_filters_the_subset() {
        let schema = Schema::new(&[]).unwrap();
        let q = parse("select Id, lastname FROM contact WHERE (LastName = 'LOVELACE' OR Email LIKE '%@b.org') AND Email != null ORDER BY LastName DESC LIMIT 5", &schema).unwrap();
        assert_eq!(q.fields, vec!["Id", "LastName"]);
        assert_eq!(q.object, "Contact");
        let rs = [rec("1", "Lovelace", Some("a@a.org")), rec("2", "Babbage", Some("c@b.org")), rec("3", "Lovelace", None)];
        let out: Vec<&str> = q.run(&schema, rs.iter()).iter().map(|r| r.id.as_str()).collect();
        assert_eq!(out, vec!["1", "2"]);
        let q = parse("SELECT COUNT() FROM Contact WHERE LastName NOT IN ('babbage')", &schema).unwrap();
        assert!(q.count);
        assert_eq!(q.run(&schema, rs.iter()).len(), 2);
    }

    #[test]
    fn errors_point_at_the_column() {
        let schema = Schema::new(&[]).unwrap();
        let e = parse("SELECT Foo FROM Contact", &schema).unwrap_err();
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(e.message.starts_with("\nSELECT Foo FROM Contact\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' on entity 'Contact'."), "{}", e.message);
        let e = parse("SELECT Id FROM Widget", &schema).unwrap_err();
        assert_eq!(e.code, "INVALID_TYPE");
        assert!(e.message.contains("sObject type 'Widget' is not supported."));
        let e = parse("SELECT Id, FROM Contact", &schema).unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(e.message.contains("unexpected token"), "{}", e.message);
        assert_eq!(parse("SELECT Id FROM Contact LIMIT", &schema).unwrap_err().code, "MALFORMED_QUERY");
    }

    #[test]
    fn like_wildcards() {
        assert!(like("lovelace", "love%"));
        assert!(like("lovelace", "%lace"));
        assert!(like("lovelace", "l_velace"));
        assert!(!like("lovelace", "l_ve"));
        assert!(like("100%", "100\\%"));
        assert!(!like("1000", "100\\%"));
        // Pathological patterns finish at once.
        let s = "a".repeat(5000);
        assert!(!like(&s, &format!("{}z", "%".repeat(200))));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let schema = Schema::new(&[]).unwrap();
        let q = format!("SELECT Id FROM Contact WHERE {}LastName = 'x'{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(parse(&q, &schema).unwrap_err().code, "MALFORMED_QUERY");
        let q = format!("SELECT Id FROM Contact WHERE {}LastName = 'x'", "NOT ".repeat(10_000));
        assert_eq!(parse(&q, &schema).unwrap_err().code, "MALFORMED_QUERY");
    }
}
