//! The start page: per target what is provisioned, pending, failed, held
//! or paused and its API budget; the servers that need a token; the last
//! runs; and two charts drawn here as SVG (the host works offline, so no
//! chart library from a CDN): attempts per hour over 7 days, and API calls
//! against the remote system's limit.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;
use serde::Serialize;

use super::error::WebError;
use super::session::Admin;
use super::App;
use crate::domain::{ProvState, TokenStatus, format_time};
use registry_plugin_runtime::latest::types::GrantType;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route("/", get(page))
}

const HOUR: i64 = 3_600_000;
const WEEK_HOURS: i64 = 7 * 24;

#[derive(Serialize)]
struct TargetRow {
    id: i64,
    name: String,
    enabled: bool,
    provisioned: i64,
    pending: i64,
    failed: i64,
    held: i64,
    paused: Option<String>,
    waiting: Option<String>,
    usage: Option<String>,
    run: Option<String>,
}

#[derive(Serialize)]
struct ServerRow {
    id: i64,
    name: String,
    why: &'static str,
}

async fn page(State(app): State<Arc<App>>, Admin(s): Admin) -> Result<Response, WebError> {
    let now = app.store.now();
    let mut targets = Vec::new();
    let mut usage_charts = Vec::new();
    for t in app.store.targets().await? {
        let counts = app.store.target_counts(t.id).await?;
        let n = |st: ProvState| counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
        let health = app.store.target_health(t.id).await?;
        let guards = app.store.safeguards(t.id).await?;
        let (_, failed_jobs) = app.store.job_counts(Some(t.id)).await?;
        let usage = health.usage.map(|(used, limit, _)| {
            let share = guards.api_share.map(|s| format!(", {s} % allowed")).unwrap_or_default();
            format!("{used} / {limit} API calls{share}")
        });
        let series = app.store.usage_series(t.id, now - WEEK_HOURS * HOUR).await?;
        if !series.is_empty() {
            usage_charts.push(context! { name => t.name.clone(), svg => usage_svg(&series, now, guards.api_share) });
        }
        let run = app.store.latest_run(t.id).await?.map(|r| match r.finished_at {
            Some(at) => format!("{} of {} done, {} failed; finished {}", r.done, r.total, r.failed, format_time(at)),
            None => format!("{} of {} done; running since {}", r.done + r.failed, r.total, format_time(r.started_at)),
        });
        targets.push(TargetRow {
            id: t.id,
            name: t.name.clone(),
            enabled: t.enabled,
            provisioned: n(ProvState::Provisioned),
            pending: n(ProvState::Pending),
            failed: failed_jobs,
            held: health.held_removals,
            paused: (health.pause_level > 0).then(|| health.pause_reason.clone().unwrap_or_default()),
            waiting: app.store.held_because(&t).await,
            usage,
            run,
        });
    }
    let servers: Vec<ServerRow> = app
        .store
        .servers().await?
        .into_iter()
        .filter_map(|sv| {
            let why = match sv.token_status {
                TokenStatus::NeedsReauthorization => "needs a new token",
                TokenStatus::NotSet if sv.grant_type == GrantType::AuthorizationCode => "has no token yet",
                _ => return None,
            };
            Some(ServerRow { id: sv.id, name: sv.name, why })
        })
        .collect();
    let activity = app.store.activity(now - WEEK_HOURS * HOUR).await?;
    let (ok, failed): (i64, i64) = activity.iter().fold((0, 0), |(a, b), (_, o, f)| (a + o, b + f));
    Ok(app.render(
        "dashboard.html",
        context! {
            admin => s.username, csrf => s.csrf_token, nav => "dashboard", targets => targets, servers => servers,
            activity_svg => activity_svg(&activity, now), week_ok => ok, week_failed => failed, usage_charts => usage_charts,
        },
    ))
}

/// Bars per hour for 7 days: successes (green) with failures (red) on top.
pub(super) fn activity_svg(rows: &[(i64, i64, i64)], now: i64) -> String {
    let (w, h, bar) = (840.0, 160.0, 5.0);
    let start = (now / HOUR - WEEK_HOURS + 1) * HOUR;
    let max = rows.iter().map(|(_, o, f)| o + f).max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {}" role="img" aria-label="Provisioning attempts per hour, last 7 days" class="chart" id="activity-chart">"#, h + 20.0);
    let _ = write!(svg, r##"<line x1="0" y1="{h}" x2="{w}" y2="{h}" stroke="#d9dee7"/>"##);
    for (hour, ok, failed) in rows {
        let i = ((hour - start) / HOUR) as f64;
        if i < 0.0 {
            continue;
        }
        let x = i * bar;
        let ok_h = *ok as f64 / max * h;
        let bad_h = *failed as f64 / max * h;
        let when = format_time(*hour);
        let _ = write!(
            svg,
            r##"<g><title>{when}: {ok} provisioned, {failed} failed</title><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{ok_h:.1}" fill="#1a7f37"/><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bad_h:.1}" fill="#b42318"/></g>"##,
            h - ok_h,
            bar - 1.0,
            h - ok_h - bad_h,
            bar - 1.0
        );
    }
    for day in 0..7 {
        let x = day as f64 * 24.0 * bar;
        let _ = write!(svg, r##"<text x="{x:.0}" y="{}" font-size="11" fill="#667085">{}</text>"##, h + 15.0, &format_time(start + day * 24 * HOUR)[5..10]);
    }
    svg.push_str("</svg>");
    svg
}

/// The highest usage seen per hour (blue) against the limit (dashed) and
/// the share allowed (orange), for 7 days.
pub(super) fn usage_svg(rows: &[(i64, i64, i64)], now: i64, share: Option<i64>) -> String {
    let (w, h, step) = (840.0, 120.0, 5.0);
    let start = (now / HOUR - WEEK_HOURS + 1) * HOUR;
    let limit = rows.iter().map(|(_, _, l)| *l).max().unwrap_or(1).max(1) as f64;
    let y = |v: f64| h - v / limit * h;
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {}" role="img" aria-label="API calls against the limit, last 7 days" class="chart">"#, h + 6.0);
    let _ = write!(svg, r##"<line x1="0" y1="{:.1}" x2="{w}" y2="{:.1}" stroke="#667085" stroke-dasharray="4 3"><title>limit {limit}</title></line>"##, y(limit), y(limit));
    if let Some(s) = share {
        let cap = limit * s as f64 / 100.0;
        let _ = write!(svg, r##"<line x1="0" y1="{:.1}" x2="{w}" y2="{:.1}" stroke="#b54708" stroke-dasharray="2 3"><title>{s} % allowed</title></line>"##, y(cap), y(cap));
    }
    let points: Vec<String> = rows.iter().filter(|(hour, _, _)| *hour >= start).map(|(hour, used, _)| format!("{:.1},{:.1}", (hour - start) as f64 / HOUR as f64 * step, y(*used as f64))).collect();
    let _ = write!(svg, r##"<polyline fill="none" stroke="#0b5cab" stroke-width="2" points="{}"/>"##, points.join(" "));
    for (hour, used, lim) in rows.iter().filter(|(hour, _, _)| *hour >= start) {
        let _ = write!(svg, r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#0b5cab"><title>{}: {used} of {lim}</title></circle>"##, (hour - start) as f64 / HOUR as f64 * step, y(*used as f64), format_time(*hour));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_scale_to_the_busiest_hour_and_the_limit() {
        let now = 1_795_000_000_000;
        let hour = (now / HOUR) * HOUR;
        let svg = activity_svg(&[(hour, 30, 10), (hour - HOUR, 5, 0)], now);
        assert!(svg.contains("30 provisioned, 10 failed") && svg.contains(r#"height="120.0""#) && svg.contains(r#"height="40.0""#), "{svg}");
        let usage = usage_svg(&[(hour, 750, 1000)], now, Some(80));
        assert!(usage.contains("750 of 1000") && usage.contains("80 % allowed"), "{usage}");
    }
}
