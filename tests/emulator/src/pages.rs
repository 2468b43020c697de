//! The login host's HTML: the login form, the Allow/Deny consent page, and
//! the error page. Element ids match Salesforce's own (`username`,
//! `password`, `Login`, `error`, `oaapprove`, `oadeny`), so browser tests
//! written for the real pages work here.

/// Escapes text for HTML bodies and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f3f6f9;color:#181818;margin:0}\
main{max-width:380px;margin:64px auto;background:#fff;border:1px solid #d8dde6;border-radius:6px;padding:28px 32px}\
h1{font-size:20px;margin:0 0 18px;color:#032d60}label{display:block;font-size:13px;margin:14px 0 4px;color:#3e3e3c}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:9px;border:1px solid #c9c9c9;border-radius:4px;font-size:15px}\
button{margin-top:20px;padding:10px 18px;font-size:15px;border-radius:4px;border:1px solid #0176d3;cursor:pointer}\
.primary{background:#0176d3;color:#fff;width:100%}.secondary{background:#fff;color:#0176d3}\
#error{background:#fef1ee;border:1px solid #ea001e;color:#ba0517;padding:10px;border-radius:4px;font-size:14px}\
ul{padding-left:20px;font-size:14px}.row{display:flex;gap:12px;justify-content:flex-end}.note{font-size:12px;color:#706e6b;margin-top:22px}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head>\
         <body><main>{body}<p class=\"note\">Salesforce emulator: offline stand-in for login.salesforce.com</p></main></body></html>",
        escape(title)
    )
}

/// The login form for transaction `tx`, with an optional error.
pub fn login(tx: &str, app_name: &str, error: Option<&str>, username: &str) -> String {
    let error = error.map(|e| format!("<div id=\"error\" role=\"alert\">{}</div>", escape(e))).unwrap_or_default();
    page(
        "Login | Salesforce",
        &format!(
            "<h1>Log in to Salesforce</h1><p style=\"font-size:14px\">to continue to <strong>{}</strong></p>{error}\
             <form method=\"post\" action=\"/services/oauth2/authorize/login\">\
             <input type=\"hidden\" name=\"tx\" value=\"{}\">\
             <label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" required>\
             <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"pw\" autocomplete=\"current-password\" required>\
             <button type=\"submit\" id=\"Login\" class=\"primary\">Log In</button></form>",
            escape(app_name),
            escape(tx),
            escape(username)
        ),
    )
}

/// The consent page: what the app asks for, and Allow / Deny.
pub fn consent(tx: &str, app_name: &str, username: &str, scopes: &[String]) -> String {
    let items: String = scopes.iter().map(|s| format!("<li>{}</li>", escape(scope_text(s)))).collect();
    page(
        "Allow Access? | Salesforce",
        &format!(
            "<h1>Allow Access?</h1><p style=\"font-size:14px\"><strong>{}</strong> is asking to:</p><ul>{items}</ul>\
             <p style=\"font-size:13px\">You are logged in as <strong id=\"username\">{}</strong>.</p>\
             <form method=\"post\" action=\"/services/oauth2/authorize/consent\">\
             <input type=\"hidden\" name=\"tx\" value=\"{}\"><div class=\"row\">\
             <button type=\"submit\" id=\"oadeny\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>\
             <button type=\"submit\" id=\"oaapprove\" name=\"decision\" value=\"allow\" class=\"primary\" style=\"width:auto\">Allow</button>\
             </div></form>",
            escape(app_name),
            escape(username),
            escape(tx)
        ),
    )
}

/// An error page for requests that cannot be sent back to the client.
pub fn error(code: &str, description: &str) -> String {
    page(
        "Error | Salesforce",
        &format!(
            "<h1>Remote Access Error</h1><div id=\"error\" role=\"alert\">error={}&amp;error_description={}</div>",
            escape(code),
            escape(description)
        ),
    )
}

fn scope_text(scope: &str) -> &str {
    match scope {
        "api" => "Manage user data via APIs (api)",
        "refresh_token" | "offline_access" => "Perform requests at any time (refresh_token, offline_access)",
        "id" | "profile" | "email" | "address" | "phone" => "Access the identity URL service (id, profile, email, address, phone)",
        "openid" => "Access unique user identifiers (openid)",
        "full" => "Full access (full)",
        "web" => "Manage user data via Web browsers (web)",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let p = login("t\"x", "<App>", Some("bad & wrong"), "a'b");
        assert!(p.contains("value=\"t&quot;x\""));
        assert!(p.contains("&lt;App&gt;"));
        assert!(p.contains("bad &amp; wrong"));
        assert!(p.contains("value=\"a&#39;b\""));
        assert!(!p.contains("<App>"));
        let c = consent("tx", "App", "u@x.com", &["api".into(), "refresh_token".into()]);
        assert!(c.contains("id=\"oaapprove\"") && c.contains("id=\"oadeny\""));
        assert!(c.contains("Manage user data via APIs"));
    }
}
