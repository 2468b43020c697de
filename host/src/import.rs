//! Bulk import of people from CSV or JSON: every row checked, every problem
//! named by row and field, before anything is written.

use crate::domain::{Address, Email, Identifier, Name, Person, Role, Status};

/// A row of an import file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProblem {
    /// 1-based line (CSV) or 1-based record number (JSON).
    pub row: usize,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ImportProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {}: {}: {}", self.row, self.field, self.message)
    }
}

/// The CSV columns, in the order `people export`/the README give them.
pub const CSV_COLUMNS: &[&str] = &[
    "id", "status", "honorific", "given", "middle", "family", "suffix", "emails", "identifiers", "affiliation", "title", "organization",
    "department", "office_phone", "mobile_phone", "street", "room", "locality", "region", "postal_code", "country", "groups",
];

/// Reads people from CSV (a header row naming columns from [`CSV_COLUMNS`];
/// `emails` is `type:address;type:address`, `identifiers` is
/// `type:value;...`) or from a JSON array of API person objects. Every
/// problem in the file is reported; nothing is returned unless all rows are good.
pub fn parse_import(name: &str, text: &str) -> Result<Vec<Person>, Vec<ImportProblem>> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let (people, mut problems) = if name.to_ascii_lowercase().ends_with(".json") || trimmed.starts_with('[') {
        parse_json(trimmed)?
    } else {
        parse_csv(trimmed)?
    };
    let mut out = Vec::with_capacity(people.len());
    let mut seen = std::collections::HashSet::new();
    for (row, mut p) in people {
        if let Err(ps) = p.normalize() {
            problems.extend(ps.into_iter().map(|f| ImportProblem { row, field: f.field, message: f.message }));
            continue;
        }
        if !p.id.is_empty() && !seen.insert(p.id.clone()) {
            problems.push(ImportProblem { row, field: "id".into(), message: format!("{} appears more than once in the file", p.id) });
        }
        out.push(p);
    }
    problems.sort_by_key(|p| p.row);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// Rows read, and problems found while reading (the rows are still checked).
type Parsed = (Vec<(usize, Person)>, Vec<ImportProblem>);

fn parse_json(text: &str) -> Result<Parsed, Vec<ImportProblem>> {
    let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| {
        vec![ImportProblem { row: e.line(), field: "(file)".into(), message: format!("not a JSON array of people: {e}") }]
    })?;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        match serde_json::from_value::<Person>(v) {
            Ok(p) => out.push((i + 1, p)),
            Err(e) => problems.push(ImportProblem { row: i + 1, field: "(record)".into(), message: e.to_string() }),
        }
    }
    Ok((out, problems))
}

fn parse_csv(text: &str) -> Result<Parsed, Vec<ImportProblem>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| vec![ImportProblem { row: 1, field: "(header)".into(), message: e.to_string() }])?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let unknown: Vec<&String> = header.iter().filter(|h| !CSV_COLUMNS.contains(&h.as_str())).collect();
    if !unknown.is_empty() || !header.iter().any(|h| h == "given") {
        let message = if unknown.is_empty() {
            "the header must have a 'given' column".to_string()
        } else {
            format!("unknown column(s) {}; the columns are: {}", unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "), CSV_COLUMNS.join(", "))
        };
        return Err(vec![ImportProblem { row: 1, field: "(header)".into(), message }]);
    }
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let row = e.position().map_or(0, |p| p.line() as usize);
                problems.push(ImportProblem { row, field: "(row)".into(), message: e.to_string() });
                continue;
            }
        };
        let row = record.position().map_or(0, |p| p.line() as usize);
        let get = |c: &str| header.iter().position(|h| h == c).and_then(|i| record.get(i)).map(str::to_string).filter(|v| !v.is_empty());
        let mut p = Person { id: get("id").unwrap_or_default(), ..Default::default() };
        if let Some(s) = get("status") {
            match Status::parse(&s) {
                Some(st) => p.status = st,
                None => problems.push(ImportProblem { row, field: "status".into(), message: format!("'{s}' is not one of active, grace-period, suspended, expired") }),
            }
        }
        p.name = Name { honorific: get("honorific"), given: get("given").unwrap_or_default(), middle: get("middle"), family: get("family"), suffix: get("suffix") };
        for pair in get("emails").unwrap_or_default().split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, address) = pair.split_once(':').unwrap_or(("official", pair));
            p.emails.push(Email { address: address.into(), kind: kind.into(), verified: false });
        }
        for pair in get("identifiers").unwrap_or_default().split(';').map(str::trim).filter(|s| !s.is_empty()) {
            match pair.split_once(':') {
                Some((kind, value)) => p.identifiers.push(Identifier { kind: kind.into(), value: value.into() }),
                None => problems.push(ImportProblem { row, field: "identifiers".into(), message: format!("'{pair}' must be type:value, e.g. eppn:ada@example.org") }),
            }
        }
        // Group names or ids, `;` between: missing groups are created.
        p.groups = get("groups").unwrap_or_default().split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        if let Some(affiliation) = get("affiliation") {
            let address = Address { street: get("street"), room: get("room"), locality: get("locality"), region: get("region"), postal_code: get("postal_code"), country: get("country") };
            p.roles.push(Role {
                affiliation,
                title: get("title"),
                organization: get("organization"),
                department: get("department"),
                office_phone: get("office_phone"),
                mobile_phone: get("mobile_phone"),
                address: Some(address),
            });
        }
        out.push((row, p));
    }
    Ok((out, problems))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_imports_parse_or_name_every_bad_row() {
        let csv = "id,given,family,emails,identifiers,affiliation,title\nP1,Ada,Lovelace,official:ada@example.org;personal:ada@home.example,eppn:ada@example.org,staff,Analyst\n,Grace,Hopper,grace@example.org,,faculty,\n";
        let people = parse_import("people.csv", csv).unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].emails[1].kind, "personal");
        assert_eq!(people[0].identifiers[0].value, "ada@example.org");
        assert_eq!(people[1].emails[0].kind, "official");
        assert_eq!(people[1].roles[0].affiliation, "faculty");
        let bad = "given,family,emails,status\nAda,L,not-an-email,active\n,NoGiven,,\nX,Y,,retired\n";
        let problems: Vec<String> = parse_import("p.csv", bad).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("row 2: emails[0].address"), "{problems:?}");
        assert!(problems[1].starts_with("row 3: name.given"), "{problems:?}");
        assert!(problems[2].starts_with("row 4: status"), "{problems:?}");
        assert!(parse_import("p.csv", "given,colour\nA,red\n").unwrap_err()[0].message.contains("unknown column(s) colour"));
        let json = r#"[{"id":"P9","name":{"given":"Lin"},"emails":[{"address":"lin@example.org","type":"official"}]},{"name":{"given":"X"},"nickname":"y"}]"#;
        let problems = parse_import("p.json", json).unwrap_err();
        assert_eq!((problems[0].row, problems[0].message.contains("unknown field `nickname`")), (2, true));
        let dup = r#"[{"id":"P9","name":{"given":"Lin"}},{"id":"P9","name":{"given":"Lin"}}]"#;
        assert!(parse_import("p.json", dup).unwrap_err()[0].message.contains("more than once"));
    }
}
