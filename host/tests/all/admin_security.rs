//! The admin surface under attack: login floods, sessions that must end,
//! API tokens, slow or surplus connections, other Host names, and where a
//! login may send the browser.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common;
use crate::web::{Harness, csrf, unescape};

/// A browser at loopback address 127.0.0.`n`: another client, as far as
/// the host can tell.
fn client_at(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .build()
        .unwrap()
}

async fn try_login(h: &Harness, client: &reqwest::Client, user: &str, password: &str) -> reqwest::Response {
    let form = client.get(h.url("/login")).send().await.unwrap().text().await.unwrap();
    client.post(h.url("/login")).form(&[("csrf", csrf(&form).as_str()), ("username", user), ("password", password)]).send().await.unwrap()
}

#[tokio::test]
async fn wrong_passwords_are_throttled_and_a_flood_does_not_keep_a_real_admin_out() {
    let h = Harness::start().await;
    let (user, password) = h.admin();
    // One client guessing: five tries, then 429 with Retry-After, even for
    // the right password.
    let guesser = client_at(2);
    for _ in 0..5 {
        assert_eq!(try_login(&h, &guesser, &user, "wrong password").await.status(), 401);
    }
    let r = try_login(&h, &guesser, &user, "wrong password").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(unescape(r.text().await.unwrap()).contains("Too many wrong passwords"));
    assert_eq!(try_login(&h, &guesser, &user, &password).await.status(), 429, "no guess gets through while it waits");

    // Twelve clients flooding with made-up names: each gets a handful of
    // password checks, and a real admin elsewhere gets in within a bound.
    let flood: Vec<_> = (10..22)
        .map(|n| {
            let url = h.url("");
            tokio::spawn(async move {
                let client = client_at(n);
                let mut checked = 0;
                for i in 0..15 {
                    let form = client.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
                    let user = format!("user{n}-{i}");
                    let r = client.post(format!("{url}/login")).form(&[("csrf", csrf(&form).as_str()), ("username", &user), ("password", "guess")]).send().await.unwrap();
                    match r.status().as_u16() {
                        401 => checked += 1,
                        429 | 503 => {}
                        other => panic!("a flooding login got {other}"),
                    }
                }
                checked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let r = try_login(&h, &client_at(40), &user, &password).await;
    let took = started.elapsed();
    assert_eq!((r.status().as_u16(), r.headers().get("location").map(|l| l.to_str().unwrap().to_string())), (303, Some("/servers".into())));
    assert!(took < Duration::from_secs(5), "a real login took {took:?} during the flood");
    let mut checked = 0;
    for f in flood {
        checked += f.await.unwrap();
    }
    assert!(checked <= 12 * 5, "the flood got {checked} password checks; at most 5 per client");
}

#[tokio::test]
async fn sign_out_everywhere_and_a_password_change_end_the_other_sessions() {
    let h = Harness::start().await;
    let (user, password) = h.admin();
    let csrf_token = h.login().await;
    let laptop = client_at(3);
    assert_eq!(try_login(&h, &laptop, &user, &password).await.status(), 303);
    assert_eq!(laptop.get(h.url("/servers")).send().await.unwrap().status(), 200);
    let page = h.get("/account").await.1;
    assert!(page.contains(r#"<span id="session-count">2</span>"#), "{page}");

    let (status, _, loc) = h.post("/account/sessions/end", &[("csrf", &csrf_token)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account")));
    assert_eq!(laptop.get(h.url("/servers")).send().await.unwrap().status(), 303, "the other session ended");
    assert_eq!(h.get("/servers").await.0, 200, "this one stays");

    // A password change: the current password is checked, every other session ends.
    assert_eq!(try_login(&h, &laptop, &user, &password).await.status(), 303);
    let new = "a brand new password";
    let (status, page, _) = h.post("/account/password", &[("csrf", &csrf_token), ("current", "not it at all"), ("new", new), ("confirm", new)]).await;
    assert_eq!(status, 422);
    assert!(page.contains("current password: that is not your current password"), "{page}");
    let (status, page, _) = h.post("/account/password", &[("csrf", &csrf_token), ("current", &password), ("new", new), ("confirm", "something else")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("the two new passwords differ"), "{page}");
    assert_eq!(laptop.get(h.url("/servers")).send().await.unwrap().status(), 200, "refused changes end nothing");
    let (status, _, loc) = h.post("/account/password", &[("csrf", &csrf_token), ("current", &password), ("new", new), ("confirm", new)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account")));
    assert_eq!(laptop.get(h.url("/servers")).send().await.unwrap().status(), 303);
    assert_eq!(h.get("/servers").await.0, 200);
    assert_eq!(try_login(&h, &client_at(4), &user, &password).await.status(), 401);
    assert_eq!(try_login(&h, &client_at(4), &user, new).await.status(), 303);
    // Without the CSRF token, nothing happens.
    assert_eq!(h.post("/account/sessions/end", &[("csrf", "forged")]).await.0, 403);
}

#[tokio::test]
async fn api_tokens_are_made_listed_and_revoked_in_the_ui() {
    let h = Harness::start().await;
    let csrf_token = h.login().await;
    let (status, page, _) = h.post("/account/tokens", &[("csrf", &csrf_token), ("name", "hr-feed"), ("expires_in_days", "30")]).await;
    assert_eq!(status, 200);
    let start = page.find(r#"id="new-token">"#).expect("the new token is shown once") + 15;
    let token = page[start..].split('<').next().unwrap().to_string();
    assert!(token.starts_with("rh_"));
    let api = |token: String| {
        let url = h.url("/api/v1/people");
        async move { reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(api(token.clone()).await, 200);
    let page = h.get("/account").await.1;
    assert!(page.contains("hr-feed") && page.contains("tok-active") && !page.contains(&token), "listed, never shown again");
    let (status, page, _) = h.post("/account/tokens", &[("csrf", &csrf_token), ("name", "hr-feed")]).await;
    assert_eq!(status, 409);
    assert!(page.contains("already exists"), "{page}");
    let (status, page, _) = h.post("/account/tokens", &[("csrf", &csrf_token), ("name", "x"), ("expires_in_days", "-3")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("expires after: use 1 to 3650 days"), "{page}");

    let (status, _, loc) = h.post("/account/tokens/revoke", &[("csrf", &csrf_token), ("name", "hr-feed")]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account")));
    assert_eq!(api(token).await, 401, "a revoked token gets 401");
    assert!(h.get("/account").await.1.contains("tok-revoked"));
    let expired = h.host.store.create_api_token("old", Some(registry_host::store::now_ms() - 1)).await.unwrap();
    assert_eq!(api(expired).await, 401, "an expired token gets 401");
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_surplus_connections_wait() {
    let limits = registry_host::web::WebLimits { header_read_timeout: Duration::from_secs(1), request_timeout: Duration::from_secs(5), max_connections: 2 };
    let h = Harness::with(common::demo_host_with(limits).await);
    let addr = h.host.addr;
    // One header every 300 ms: cut off after the 1 s allowed for all of them.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /login HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            // Closed (0), or a 408 before closing.
            closed = n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408");
            if closed {
                break;
            }
        }
    }
    assert!(closed, "a connection sending one header every 300 ms was still open after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(slow);

    // Two connections are the cap: a third waits until one closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let b = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = || reqwest::Client::builder().redirect(Policy::none()).pool_max_idle_per_host(0).build().unwrap();
    let held = fresh().get(h.url("/login")).timeout(Duration::from_millis(500)).send().await;
    assert!(held.is_err(), "a third connection was served beside two open ones");
    drop((a, b));
    let served = fresh().get(h.url("/login")).timeout(Duration::from_secs(5)).send().await.unwrap();
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn other_host_names_are_refused_and_not_found_pages_do_not_echo_the_path() {
    let h = Harness::start().await;
    let port = h.host.addr.port();
    // A DNS name rebound to loopback by a page on another site.
    let r = h.http.get(h.url("/login")).header("host", format!("evil.example:{port}")).send().await.unwrap();
    assert_eq!(r.status(), 421);
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(h.http.get(h.url("/login")).header("host", host).send().await.unwrap().status(), 200);
    }
    h.login().await;
    let r = h.http.get(h.url("/nowhere/%3Cscript%3Ealert(1)%3C/script%3E")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("There is no such page.") && !page.contains("nowhere") && !page.contains("<script"), "{page}");
    let page = h.http.get(h.url("/people/%3Cb%3Ebold")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("&lt;b&gt;bold") && !page.contains("<b>bold"), "a missing id is escaped: {page}");
}

#[tokio::test]
async fn a_login_returns_to_the_page_asked_for_on_this_site_only() {
    let h = Harness::start().await;
    let (user, password) = h.admin();
    let (status, _, loc) = h.get("/people?q=ada").await;
    assert_eq!((status, loc.as_deref()), (303, Some("/login?next=/people%3Fq%3Dada")));
    let form = h.get(loc.as_deref().unwrap()).await.1;
    assert!(form.contains(r#"name="next" value="/people?q=ada""#), "{form}");
    let r = h.post("/login", &[("csrf", &csrf(&form)), ("username", &user), ("password", &password), ("next", "/people?q=ada")]).await;
    assert_eq!((r.0, r.2.as_deref()), (303, Some("/people?q=ada")));
    h.post("/logout", &[("csrf", &csrf(&h.get("/people").await.1))]).await;
    for elsewhere in ["https://evil.example/", "//evil.example/", "/\\evil.example"] {
        let form = h.get("/login").await.1;
        let r = h.post("/login", &[("csrf", &csrf(&form)), ("username", &user), ("password", &password), ("next", elsewhere)]).await;
        assert_eq!((r.0, r.2.as_deref()), (303, Some("/servers")), "{elsewhere}");
        h.post("/logout", &[("csrf", &csrf(&h.get("/servers").await.1))]).await;
    }
}
