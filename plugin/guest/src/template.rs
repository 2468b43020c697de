//! Value templates such as `{email}` or `{identifier:eppn}@example.org`, used
//! for the Username and for admin-defined field mappings.

use std::fmt;

/// A person attribute a template can refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// The registry id.
    Id,
    /// Given name.
    Given,
    /// Middle name.
    Middle,
    /// Family name.
    Family,
    /// The preferred email, or the first of the given type.
    Email(Option<String>),
    /// The first identifier of the given type.
    Identifier(String),
    /// The person's status, e.g. "active".
    Status,
    /// The primary role's affiliation.
    Affiliation,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// Text taken from the person.
    Placeholder(Placeholder),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces, in order.
    pub parts: Vec<Part>,
}

const NAMES: &str = "{id}, {given}, {middle}, {family}, {email}, {email:TYPE}, {identifier:TYPE}, {status}, {affiliation}";

impl Template {
    /// Parses a template, explaining what is wrong if it cannot.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("'{{' without a closing '}}' in '{text}'"))?;
            parts.push(Part::Placeholder(parse_placeholder(&after[..close])?));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("'}}' without an opening '{{' in '{text}'"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("the template is empty".to_string());
        }
        Ok(Template { parts })
    }

    /// Whether the template has no placeholder at all.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, String> {
    let (name, arg) = match inner.split_once(':') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (inner.trim(), None),
    };
    let placeholder = match (name, arg) {
        ("id", None) => Placeholder::Id,
        ("given", None) => Placeholder::Given,
        ("middle", None) => Placeholder::Middle,
        ("family", None) => Placeholder::Family,
        ("status", None) => Placeholder::Status,
        ("affiliation", None) => Placeholder::Affiliation,
        ("email", None) => Placeholder::Email(None),
        ("email", Some(t)) if !t.is_empty() => Placeholder::Email(Some(t.to_string())),
        ("identifier", Some(t)) if !t.is_empty() => Placeholder::Identifier(t.to_string()),
        ("identifier", _) => {
            return Err("{identifier} needs a type, e.g. {identifier:eppn}".to_string());
        }
        _ => return Err(format!("unknown placeholder {{{inner}}}; use one of {NAMES}")),
    };
    Ok(placeholder)
}

impl Template {
    /// Fills the template from `person`. A placeholder the person has no
    /// value for is an error naming it, never an empty guess.
    pub fn render(&self, person: &crate::person::Person) -> Result<String, Missing> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Placeholder(p) => {
                    let value = match p {
                        Placeholder::Id => Some(person.id.as_str()),
                        Placeholder::Given => Some(person.name.given.as_str()).filter(|g| !g.is_empty()),
                        Placeholder::Middle => person.name.middle.as_deref(),
                        Placeholder::Family => person.name.family.as_deref(),
                        Placeholder::Email(kind) => person.email(kind.as_deref()),
                        Placeholder::Identifier(kind) => person.identifier(kind),
                        Placeholder::Status => Some(person.status.as_str()),
                        Placeholder::Affiliation => person.primary_role().map(|r| r.affiliation.as_str()),
                    };
                    match value.filter(|v| !v.is_empty()) {
                        Some(v) => out.push_str(v),
                        None => return Err(Missing(p.clone())),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A placeholder the person had no value for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub Placeholder);

impl Missing {
    /// The person attribute, as an `invalid-person` field name.
    pub fn field(&self) -> String {
        match &self.0 {
            Placeholder::Id => "id".into(),
            Placeholder::Given => "name.given".into(),
            Placeholder::Middle => "name.middle".into(),
            Placeholder::Family => "name.family".into(),
            Placeholder::Email(Some(k)) => format!("emails[{k}]"),
            Placeholder::Email(None) => "emails".into(),
            Placeholder::Identifier(k) => format!("identifiers[{k}]"),
            Placeholder::Status => "status".into(),
            Placeholder::Affiliation => "roles[0].affiliation".into(),
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(s) => f.write_str(s)?,
                Part::Placeholder(p) => match p {
                    Placeholder::Id => f.write_str("{id}")?,
                    Placeholder::Given => f.write_str("{given}")?,
                    Placeholder::Middle => f.write_str("{middle}")?,
                    Placeholder::Family => f.write_str("{family}")?,
                    Placeholder::Status => f.write_str("{status}")?,
                    Placeholder::Affiliation => f.write_str("{affiliation}")?,
                    Placeholder::Email(None) => f.write_str("{email}")?,
                    Placeholder::Email(Some(t)) => write!(f, "{{email:{t}}}")?,
                    Placeholder::Identifier(t) => write!(f, "{{identifier:{t}}}")?,
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_placeholders_and_literals() {
        let t = Template::parse("{identifier:eppn}.sf@{email:official}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Placeholder(Placeholder::Identifier("eppn".into())),
                Part::Literal(".sf@".into()),
                Part::Placeholder(Placeholder::Email(Some("official".into()))),
            ]
        );
        assert!(!t.is_constant());
        assert_eq!(t.to_string(), "{identifier:eppn}.sf@{email:official}");
        assert!(Template::parse("fixed").unwrap().is_constant());
    }

    #[test]
    fn explains_bad_templates() {
        assert!(Template::parse("{email").unwrap_err().contains("closing"));
        assert!(Template::parse("email}").unwrap_err().contains("opening"));
        assert!(Template::parse("{identifier}").unwrap_err().contains("{identifier:eppn}"));
        assert!(Template::parse("{nope}").unwrap_err().contains("unknown placeholder {nope}"));
        assert!(Template::parse("").is_err());
    }
}
