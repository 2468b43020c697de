//! The admin's whole "Obtain New Token" in a real browser: headless Chromium
//! (Debian's) driven through chromedriver with fantoccini. Log in, add a
//! server, paste its Redirect URI into the connected app, click Obtain New
//! Token, log in and Allow at the emulator, and see "Set"; then add a
//! provisioning target and a person, see the person provisioned with their
//! Salesforce id, delete them and see the Contact gone. Screenshots go to
//! `<target>/tmp/browser/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use salesforce_emulator::seed::{DEMO_CONSUMER_KEY, DEMO_CONSUMER_SECRET, DEMO_PASSWORD, DEMO_USERNAME};

use crate::common;

struct Driver(Child);
impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn find(var: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!("{} not found: install Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`) or set {var}", candidates[0])
    })
}

async fn shot(client: &fantoccini::Client, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    path
}

/// The element's text. Pages that follow provisioning reload themselves,
/// so an element can go stale between finding and reading it: look again.
async fn text_of(client: &fantoccini::Client, css: &str) -> String {
    let started = Instant::now();
    loop {
        let el = client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        match el.text().await {
            Ok(t) => return t,
            Err(_) if started.elapsed() < Duration::from_secs(10) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

async fn fill(client: &fantoccini::Client, css: &str, value: &str) {
    let el = client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

async fn click(client: &fantoccini::Client, css: &str) {
    let started = Instant::now();
    loop {
        let el = client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        match el.click().await {
            Ok(_) => return,
            // Stale after a self-reload: find it again.
            Err(_) if started.elapsed() < Duration::from_secs(10) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

#[tokio::test]
async fn an_admin_obtains_a_token_in_a_real_browser() {
    let chromium = find("CHROMIUM", &["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let chromedriver = find("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    let port = free_port();
    let _driver = Driver(Command::new(&chromedriver).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("chromedriver starts"));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Notifications go to an SMTP server started here.
    let (smtp_port, mail) = crate::notifications::smtp_sink().await;
    let mut engine = common::fast_engine();
    engine.notify.smtp_url = Some(format!("smtp://127.0.0.1:{smtp_port}"));
    engine.notify.to = vec!["ops@example.org".into()];
    let (host, _data) = common::demo_host_config(Default::default(), engine).await;
    let emu = host.emulator.as_ref().unwrap();
    let (admin, password) = host.created_admin.clone().unwrap();
    let password = password.expect("the demo generates the admin password");

    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                     format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromedriver session");

    // Log in to the registry.
    client.goto(&format!("{}/servers", host.public_url)).await.unwrap();
    assert!(client.current_url().await.unwrap().path().ends_with("/login"));
    fill(&client, "#username", &admin).await;
    fill(&client, "#password", &password).await;
    click(&client, "#login").await;
    assert!(text_of(&client, "h1").await.contains("OAuth2 Servers"));

    // Add a server through the form.
    click(&client, "#add-server").await;
    fill(&client, "#name", "Salesforce (browser)").await;
    // The Server URL is picked from the plugin's choices (Production first);
    // My Domain asks for its name, in the plugin's words; Custom takes a URL.
    let choice = client.find(Locator::Css("#server_url_choice")).await.unwrap();
    assert_eq!(choice.prop("value").await.unwrap().as_deref(), Some("https://login.salesforce.com"));
    let displayed = |css: &'static str| {
        let client = client.clone();
        async move { client.find(Locator::Css(css)).await.unwrap().is_displayed().await.unwrap() }
    };
    assert!(!displayed("[data-url-name]").await && !displayed("[data-url-custom]").await);
    choice.clone().select_by_value("https://{name}.my.salesforce.com").await.unwrap();
    assert!(displayed("[data-url-name]").await && !displayed("[data-url-custom]").await);
    assert!(text_of(&client, "[data-url-name-label]").await.starts_with("My Domain name"));
    choice.select_by_value("custom").await.unwrap();
    assert!(displayed("[data-url-custom]").await);
    fill(&client, "#server_url", &emu.login_url()).await;
    fill(&client, "#client_id", DEMO_CONSUMER_KEY).await;
    fill(&client, "#client_secret", DEMO_CONSUMER_SECRET).await;
    fill(&client, "#scope", "api refresh_token").await;
    // The emulator's instance is on loopback, which no plugin can declare:
    // the admin names it as the server's API host.
    fill(&client, "#api_hosts", emu.instance_url().trim_start_matches("http://")).await;
    click(&client, "#save").await;
    assert!(text_of(&client, "#notice").await.contains("Server added"));
    assert_eq!(text_of(&client, "#token-status").await, "Not Set");
    let redirect_uri = client.find(Locator::Css("#redirect-uri")).await.unwrap().attr("value").await.unwrap().unwrap();
    assert!(redirect_uri.starts_with(&format!("{}/oauth2/callback/", host.public_url)));
    shot(&client, "1-server-added").await;
    // What the admin does in Salesforce Setup: paste the Redirect URI into the connected app.
    emu.add_callback_url(DEMO_CONSUMER_KEY, &redirect_uri).unwrap();

    // Obtain New Token opens the emulator's login page in a popup window,
    // and the server page stays where it is (a marker survives only if it
    // is never reloaded).
    client.execute("window.registryMarker = 'never reloaded'; return null;", vec![]).await.unwrap();
    let main = client.window().await.unwrap();
    click(&client, "#obtain").await;
    let started = Instant::now();
    let popup = loop {
        if let Some(w) = client.windows().await.unwrap().into_iter().find(|w| *w != main) {
            break w;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no popup opened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    client.switch_to_window(popup).await.unwrap();
    fill(&client, "#username", DEMO_USERNAME).await;
    fill(&client, "#password", DEMO_PASSWORD).await;
    shot(&client, "2-salesforce-login").await;
    click(&client, "#Login").await;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#oaapprove")).await.unwrap();
    shot(&client, "3-salesforce-allow").await;
    click(&client, "#oaapprove").await;
    // The popup comes back to the registry, tells the page, and closes.
    let started = Instant::now();
    while client.windows().await.unwrap().len() > 1 {
        if started.elapsed() > Duration::from_secs(10) {
            let url = client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let body = client.source().await.unwrap_or_default();
            panic!("the popup did not close: at {url}\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.switch_to_window(main).await.unwrap();

    // The server page, updated in place: "Set".
    assert_eq!(text_of(&client, "#notice").await, "Access Token Obtained.");
    assert_eq!(text_of(&client, "#token-status").await, "Set");
    assert_eq!(client.execute("return window.registryMarker || null;", vec![]).await.unwrap(), serde_json::json!("never reloaded"));
    assert_eq!(text_of(&client, "#instance-url").await, emu.instance_url());
    shot(&client, "4-token-set").await;

    click(&client, "#test").await;
    assert_eq!(text_of(&client, "#conn-user").await, DEMO_USERNAME);
    let last = shot(&client, "5-test-connection").await;
    assert!(std::fs::metadata(last).unwrap().len() > 10_000, "a real screenshot");

    // A provisioning target on that server, its form rendered from the plugin's settings.
    let server_id = host.store.servers().await.unwrap().into_iter().find(|s| s.name == "Salesforce (browser)").unwrap().id;
    let server_id = server_id;
    click(&client, "#nav-targets").await;
    click(&client, "#add-target").await;
    fill(&client, "#name", "Salesforce Contacts (browser)").await;
    client.find(Locator::Css("#server_id")).await.unwrap().select_by_value(&server_id.to_string()).await.unwrap();
    fill(&client, "[name='setting.external_id_field']", "Registry_ID__c").await;
    // Only the fields that apply to the chosen object show (the plugin declares which).
    let profile = client.find(Locator::Css("[name='setting.profile_id']")).await.unwrap();
    assert!(!profile.is_displayed().await.unwrap(), "a User-only field is hidden for a Contact target");
    client.find(Locator::Css("[name='setting.object']")).await.unwrap().select_by_value("User").await.unwrap();
    assert!(profile.is_displayed().await.unwrap(), "and shown for a User target");
    client.find(Locator::Css("[name='setting.object']")).await.unwrap().select_by_value("Contact").await.unwrap();
    assert!(!profile.is_displayed().await.unwrap());
    shot(&client, "6-target-form").await;
    click(&client, "#save").await;
    assert!(text_of(&client, "#notice").await.contains("Target added"));
    let target = host.store.targets().await.unwrap().into_iter().find(|t| t.name == "Salesforce Contacts (browser)").unwrap().id;

    // Add a person; the page follows their provisioning until Salesforce has them.
    click(&client, "#nav-people").await;
    click(&client, "#add-person").await;
    fill(&client, "#id", "BROWSER1").await;
    fill(&client, "#given", "Margaret").await;
    fill(&client, "#family", "Hamilton").await;
    fill(&client, "#email_0_address", "margaret@example.org").await;
    // A second email through "Add email"; a blank row added and removed.
    click(&client, "#add-email").await;
    fill(&client, "#email_1_address", "mh@personal.example").await;
    fill(&client, "#email_1_type", "personal").await;
    click(&client, "#add-identifier").await;
    let rows = client.find_all(Locator::Css("[data-row='ident'] [data-remove-row]")).await.unwrap();
    rows.last().unwrap().click().await.unwrap();
    assert_eq!(client.find_all(Locator::Css("[data-row='ident']")).await.unwrap().len(), 1);
    fill(&client, "#role_0_affiliation", "staff").await;
    click(&client, "#add-role").await;
    fill(&client, "#role_1_affiliation", "member").await;
    fill(&client, "#role_1_organization", "Apollo Guidance").await;
    click(&client, "#save").await;
    assert!(text_of(&client, "#notice").await.contains("Person added"));
    let state = format!("#state-{target}");
    let started = Instant::now();
    while text_of(&client, &state).await != "Provisioned" {
        assert!(started.elapsed() < Duration::from_secs(30), "never provisioned");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let contact = emu.live_records("Contact").into_iter().find(|c| c["Registry_ID__c"] == "BROWSER1").expect("the Contact in Salesforce");
    assert_eq!(contact["LastName"], "Hamilton");
    let emails: Vec<String> = host.store.person("BROWSER1").await.unwrap().emails.into_iter().map(|e| format!("{}:{}", e.kind, e.address)).collect();
    assert_eq!(emails, ["official:margaret@example.org", "personal:mh@personal.example"]);
    let roles: Vec<String> = host.store.person("BROWSER1").await.unwrap().roles.into_iter().map(|r| r.affiliation).collect();
    assert_eq!(roles, ["staff", "member"]);
    assert_eq!(text_of(&client, &format!("#remote-{target}")).await, format!("Contact {}", contact["Id"].as_str().unwrap()));
    shot(&client, "7-person-provisioned").await;

    // Preview: what would be sent, field by field, and no write went out.
    emu.clear_request_log();
    click(&client, &format!("#preview-{target}")).await;
    assert!(text_of(&client, "h1").await.starts_with("Preview: Hamilton, Margaret"));
    let steps = text_of(&client, "#steps").await;
    assert!(steps.contains("PATCH /services/data/v62.0/sobjects/Contact/Registry_ID__c/BROWSER1") && steps.contains("Hamilton"), "{steps}");
    assert!(emu.request_log().iter().all(|r| r.method == "GET" || r.method == "HEAD"), "a preview wrote: {:?}", emu.request_log());
    shot(&client, "8-preview").await;
    click(&client, "#provision-now").await;
    client.accept_alert().await.unwrap();
    assert!(text_of(&client, "#notice").await.contains("Provisioned now"));

    // The dashboard's numbers are the database's.
    click(&client, "#nav-dashboard").await;
    let provisioned = host.store.target_counts(target).await.unwrap().into_iter().find(|(s, _)| *s == registry_host::domain::ProvState::Provisioned).map_or(0, |(_, n)| n);
    assert_eq!(text_of(&client, &format!("#provisioned-{target}")).await, provisioned.to_string());
    assert!(client.find(Locator::Css("#activity-chart")).await.is_ok());
    shot(&client, "9-dashboard").await;

    // The log, filtered to this target's successes.
    click(&client, "#nav-log").await;
    client.find(Locator::Css("#target")).await.unwrap().select_by_value(&target.to_string()).await.unwrap();
    client.find(Locator::Css("#outcome")).await.unwrap().select_by_value("ok").await.unwrap();
    click(&client, "#filter").await;
    let log = text_of(&client, "#log").await;
    assert!(log.contains("Hamilton, Margaret") && log.contains("created Contact") && !log.contains("failed:"), "{log}");
    shot(&client, "10-log").await;

    // The audit trail lists what was just done.
    click(&client, "#nav-audit").await;
    let audit = text_of(&client, "#audit").await;
    for action in ["admin.login", "server.create", "server.obtain-token", "server.test-connection", "target.create", "person.provision-now"] {
        assert!(audit.contains(action), "{action} in {audit}");
    }
    shot(&client, "11-audit").await;

    // At 390 px no page scrolls sideways.
    client.set_window_size(390, 844).await.unwrap();
    let pages = [
        "/".to_string(), "/people".into(), "/people/BROWSER1".into(), format!("/people/BROWSER1/preview/{target}"), "/targets".into(),
        format!("/targets/{target}"), format!("/targets/{target}/edit"), "/servers".into(), format!("/servers/{server_id}"), "/log".into(), "/audit".into(), "/account".into(),
    ];
    for path in &pages {
        client.goto(&format!("{}{path}", host.public_url)).await.unwrap();
        let widths = client.execute("return [document.documentElement.scrollWidth, window.innerWidth]", vec![]).await.unwrap();
        let (scroll, inner) = (widths[0].as_i64().unwrap(), widths[1].as_i64().unwrap());
        assert!(scroll <= inner, "{path} scrolls sideways at 390 px: {scroll} > {inner}");
    }
    client.goto(&format!("{}/people/BROWSER1", host.public_url)).await.unwrap();
    shot(&client, "12-person-390px").await;
    client.set_window_size(1280, 1000).await.unwrap();

    // Delete (confirming the dialog): the Contact stays in Salesforce, no
    // longer managed (the demo target keeps Contacts).
    click(&client, "#delete").await;
    client.accept_alert().await.unwrap();
    let started = Instant::now();
    while text_of(&client, &state).await != "Removed" {
        assert!(started.elapsed() < Duration::from_secs(30), "never removed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(emu.live_records("Contact").iter().any(|c| c["Registry_ID__c"] == "BROWSER1"), "kept in Salesforce");
    shot(&client, "8-person-removed").await;

    // More than two pages of people: the list pages through them.
    for i in 0..120 {
        host.store.create_person(common::person(&format!("PAGE{i:03}"), &format!("P{i:03}"), "Pagewise", &format!("page{i}@example.org"))).await.unwrap();
    }
    client.goto(&format!("{}/people?q=pagewise", host.public_url)).await.unwrap();
    assert!(text_of(&client, "#people-count").await.starts_with("120 people"));
    click(&client, "#next").await;
    click(&client, "#next").await;
    assert!(text_of(&client, ".pager").await.contains("Page 3 of 3"));
    assert_eq!(client.find_all(Locator::Css("#people tbody tr")).await.unwrap().len(), 20);

    // The server's refresh token dies in Salesforce: the next provisioning
    // finds out, and the admin gets a mail saying what to do.
    let server = host.store.servers().await.unwrap().into_iter().find(|s| s.name == "Salesforce (browser)").unwrap().id;
    emu.revoke_refresh_token(&host.store.tokens(server).await.unwrap().unwrap().refresh_token.unwrap()).unwrap();
    emu.expire_access_tokens();
    host.store.reprovision_person("PAGE000").await.unwrap();
    host.engine.wake();
    let started = Instant::now();
    loop {
        let got = mail.lock().unwrap().clone();
        if let Some(m) = got.iter().find(|m| m.contains("Subject: [registry] OAuth2 server 'Salesforce (browser)' needs a new token")) {
            assert!(m.contains("To: ops@example.org") && m.contains("Obtain New Token"), "{m}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no mail arrived: {got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.close().await.unwrap();
}
