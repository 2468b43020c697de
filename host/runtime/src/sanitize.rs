//! Making plugin-supplied text safe to put in a log line or an error, and
//! a plugin's results safe to store and show ([`Tidy`]).

use crate::contract::latest::{oauth2_server, provisioning_target, types};

/// Escapes control characters (so a plugin cannot forge log lines) and cuts
/// the text to at most `max` bytes, marking the cut.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let piece: String = if c.is_control() { c.escape_debug().collect() } else { c.to_string() };
        if out.len() + piece.len() > max {
            out.push_str(" [cut]");
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// Longest plugin-supplied text the host keeps (a summary, an error
/// message, a remote id): stored for every person and shown on pages.
pub const MAX_PLUGIN_TEXT: usize = 2000;

/// Makes a plugin's results safe to store and show: every text has its
/// control characters escaped and is cut to [`MAX_PLUGIN_TEXT`] bytes.
/// Tokens are left alone (they are sent back as they came).
pub(crate) trait Tidy {
    /// The value with its texts made safe.
    fn tidy(self) -> Self;
}

impl Tidy for String {
    fn tidy(self) -> Self {
        if self.len() <= MAX_PLUGIN_TEXT && !self.chars().any(char::is_control) { self } else { sanitize(&self, MAX_PLUGIN_TEXT) }
    }
}

impl<T: Tidy> Tidy for Option<T> {
    fn tidy(self) -> Self {
        self.map(Tidy::tidy)
    }
}

impl<T: Tidy> Tidy for Vec<T> {
    fn tidy(self) -> Self {
        self.into_iter().map(Tidy::tidy).collect()
    }
}

impl<A: Tidy, B: Tidy> Tidy for (A, B) {
    fn tidy(self) -> Self {
        (self.0.tidy(), self.1.tidy())
    }
}

impl<T: Tidy, E: Tidy> Tidy for Result<T, E> {
    fn tidy(self) -> Self {
        self.map(Tidy::tidy).map_err(Tidy::tidy)
    }
}

impl Tidy for () {
    fn tidy(self) -> Self {}
}

impl Tidy for types::TokenSet {
    fn tidy(self) -> Self {
        self
    }
}

impl Tidy for types::PluginError {
    fn tidy(self) -> Self {
        use types::PluginError as E;
        match self {
            E::Unauthorized(m) => E::Unauthorized(m.tidy()),
            E::ReauthorizationRequired(m) => E::ReauthorizationRequired(m.tidy()),
            E::RateLimited(after) => E::RateLimited(after),
            E::QuotaExhausted(usage) => E::QuotaExhausted(usage),
            E::InvalidConfig(f) => E::InvalidConfig(f.tidy()),
            E::InvalidPerson(f) => E::InvalidPerson(f.tidy()),
            E::Remote(r) => E::Remote(types::RemoteError { code: r.code.tidy(), message: r.message.tidy(), ..r }),
            E::Transport(m) => E::Transport(m.tidy()),
            E::Unsupported(m) => E::Unsupported(m.tidy()),
        }
    }
}

impl Tidy for types::FieldError {
    fn tidy(self) -> Self {
        types::FieldError { field: self.field.tidy(), message: self.message.tidy() }
    }
}

impl Tidy for types::RemoteRef {
    fn tidy(self) -> Self {
        types::RemoteRef { object_type: self.object_type.tidy(), remote_id: self.remote_id.tidy() }
    }
}

impl Tidy for provisioning_target::ProvisionOutcome {
    fn tidy(self) -> Self {
        provisioning_target::ProvisionOutcome { remote: self.remote.tidy(), summary: self.summary.tidy(), ..self }
    }
}

impl Tidy for provisioning_target::BatchAnswer {
    fn tidy(self) -> Self {
        match self {
            provisioning_target::BatchAnswer::Done(results) => provisioning_target::BatchAnswer::Done(results.tidy()),
            // The reference goes back to the plugin as it came: not tidied.
            submitted => submitted,
        }
    }
}

impl Tidy for provisioning_target::PlannedStep {
    fn tidy(self) -> Self {
        provisioning_target::PlannedStep { description: self.description.tidy(), request: self.request.tidy(), fields: self.fields.tidy() }
    }
}

impl Tidy for oauth2_server::ConnectionInfo {
    fn tidy(self) -> Self {
        oauth2_server::ConnectionInfo { user: self.user.tidy(), organization: self.organization.tidy(), details: self.details.tidy(), advice: self.advice.tidy(), ..self }
    }
}

impl Tidy for oauth2_server::ConnectionAdvice {
    fn tidy(self) -> Self {
        oauth2_server::ConnectionAdvice { problem: self.problem.tidy(), fix: self.fix.tidy() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_cuts() {
        assert_eq!(sanitize("a\nINFO forged\r\x1b[0m", 100), "a\\nINFO forged\\r\\u{1b}[0m");
        assert_eq!(sanitize("héllo wörld", 6), "héllo [cut]");
        assert_eq!(sanitize("short", 100), "short");
    }

    #[test]
    fn results_are_tidied_but_tokens_are_not() {
        let long = format!("a\u{1b}[31m{}", "x".repeat(10_000));
        let error = types::PluginError::Remote(types::RemoteError { code: "C\n".into(), message: long.clone(), status: Some(400), retryable: false }).tidy();
        let types::PluginError::Remote(r) = error else { panic!() };
        assert_eq!(r.code, "C\\n");
        assert!(r.message.starts_with("a\\u{1b}[31mxxx") && r.message.ends_with(" [cut]") && r.message.len() <= MAX_PLUGIN_TEXT + 6);
        let tokens = types::TokenSet { access_token: long.clone(), refresh_token: None, instance_url: None, issued_at: None, expires_at: None, scope: None, token_type: "Bearer".into(), extra: vec![] };
        assert_eq!(tokens.tidy().access_token, long, "tokens go back as they came");
    }
}
