//! The Nodes page: the hosts sharing a PostgreSQL database, their
//! heartbeats and the jobs each holds (what `registry-host nodes` prints).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;

use super::App;
use super::error::WebError;
use super::session::Admin;
use crate::store::postgres::LIVE_WITHIN;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route("/nodes", get(page))
}

async fn page(State(app): State<Arc<App>>, Admin(s): Admin) -> Result<Response, WebError> {
    let (nodes, this) = match app.store.postgres() {
        Some(pg) => (pg.live_nodes(LIVE_WITHIN).await?, Some(pg.node().to_string())),
        None => (Vec::new(), None),
    };
    Ok(app.render(
        "nodes.html",
        context! { admin => s.username, csrf => s.csrf_token, nodes => nodes, this => this, live_within => LIVE_WITHIN.as_secs(), nav => "nodes" },
    ))
}
