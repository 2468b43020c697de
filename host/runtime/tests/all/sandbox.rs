//! The sandbox against real components: the Salesforce plugin and the four
//! hostile fixtures. Each hostile call must be stopped with the right error,
//! within the deadline, and the host must keep serving good calls.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use registry_plugin_runtime::cache::CacheOutcome;
use registry_plugin_runtime::PolicyError;
use registry_plugin_runtime::{CallError, Failure, HttpAllowlist, LoadError, Plugin, Runtime, RuntimeConfig};

/// Deadline used by these tests; short so the loop test is quick.
const DEADLINE: Duration = Duration::from_secs(1);
/// Slack for stopping a call after its deadline (epoch tick, scheduling on a
/// loaded 2-core CI machine).
const MARGIN: Duration = Duration::from_millis(750);

fn runtime() -> Runtime {
    // The loopback test servers speak plain http, which needs the opt-in.
    Runtime::new(RuntimeConfig { deadline: DEADLINE, insecure_loopback: true, ..RuntimeConfig::default() }).unwrap()
}

async fn load(runtime: &Runtime, path: &Path) -> Plugin {
    runtime.load_file(path).await.unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Calls `validate-settings` (every non-info export of a fixture misbehaves)
/// and returns the call error and how long it took.
async fn misbehave(plugin: &Plugin, pairs: &[(&str, &str)], allow: &HttpAllowlist) -> (CallError, Duration) {
    let started = Instant::now();
    let result = plugin.validate_settings(&settings(pairs), allow).await;
    let elapsed = started.elapsed();
    (result.expect_err("the hostile call must fail"), elapsed)
}

/// Loads a hostile fixture, makes it misbehave, checks it was stopped in
/// time, that its error names it and the export, and that the host still
/// serves a good plugin; returns the error for the caller's own checks.
async fn stopped(path: &Path, name: &str, pairs: &[(&str, &str)], allow: &HttpAllowlist) -> CallError {
    let runtime = runtime();
    let plugin = load(&runtime, path).await;
    let (error, elapsed) = misbehave(&plugin, pairs, allow).await;
    assert!(elapsed <= DEADLINE + MARGIN, "stopped after {elapsed:?}");
    let text = error.to_string();
    assert!(text.contains(name), "{text}");
    assert!(text.contains("provisioning-target.validate-settings"), "{text}");
    good_call_succeeds(&runtime).await;
    error
}

/// The good plugin still answers on the same runtime.
async fn good_call_succeeds(runtime: &Runtime) {
    let plugin = load(runtime, test_guests::salesforce_plugin()).await;
    let info = plugin.info().await.expect("a good plugin keeps working");
    assert_eq!(info.name, "salesforce");
    let verdict = plugin.validate_settings(&[], &HttpAllowlist::none()).await.unwrap();
    assert_eq!(verdict, Ok(()));
}

#[tokio::test]
async fn salesforce_plugin_describes_itself_and_validates_settings() {
    let runtime = runtime();
    let plugin = load(&runtime, test_guests::salesforce_plugin()).await;
    assert_eq!(plugin.name(), "salesforce");
    let names: Vec<&str> = plugin.metadata().settings.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "object",
        "api_version",
        "external_id_field",
        "profile_id",
        "username_template",
        "time_zone",
        "locale",
        "email_encoding",
        "language",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }

    let errors = plugin
        .validate_settings(&settings(&[("object", "User"), ("api_version", "20.0")]), &HttpAllowlist::none())
        .await
        .unwrap()
        .expect_err("bad settings are refused");
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["api_version", "profile_id"]);
    assert!(errors[0].message.contains("retired"), "{}", errors[0].message);
}

#[tokio::test]
async fn runaway_loop_is_stopped_at_the_deadline() {
    let started = Instant::now();
    let error = stopped(test_guests::hostile_loop(), "hostile-loop-forever", &[], &HttpAllowlist::none()).await;
    assert!(matches!(error.failure, Failure::Timeout(d) if d == DEADLINE), "{error}");
    assert!(started.elapsed() >= DEADLINE, "it ran for its whole deadline");
    assert!(error.to_string().contains("deadline"), "{error}");
}

#[tokio::test]
async fn a_busy_plugin_does_not_starve_other_calls() {
    // Single-threaded executor: the good call can only progress if the loop
    // yields at every epoch tick.
    let runtime = runtime();
    let looping = load(&runtime, test_guests::hostile_loop()).await;
    let good = load(&runtime, test_guests::salesforce_plugin()).await;
    let hostile = tokio::spawn(async move { misbehave(&looping, &[], &HttpAllowlist::none()).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let good_result = good.info().await;
    assert!(!hostile.is_finished(), "the good call finished while the loop was still running");
    assert_eq!(good_result.unwrap().name, "salesforce");
    let (error, _) = hostile.await.unwrap();
    assert!(matches!(error.failure, Failure::Timeout(_)), "{error}");
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_cap() {
    let error = stopped(test_guests::hostile_alloc(), "hostile-alloc-unbounded", &[], &HttpAllowlist::none()).await;
    match &error.failure {
        Failure::MemoryLimit { limit, requested } => {
            assert_eq!(*limit, 64 << 20);
            assert!(*requested > *limit);
        }
        other => panic!("expected a memory limit failure, got {other:?}"),
    }
    assert!(error.to_string().contains("limit of 67108864 bytes"), "{error}");
}

#[tokio::test]
async fn request_to_a_host_off_the_allowlist_is_denied() {
    let allow = HttpAllowlist::none().allow_url("https://login.salesforce.com").unwrap();
    let error = stopped(test_guests::hostile_http(), "hostile-forbidden-host", &[], &allow).await;
    match &error.failure {
        Failure::HttpDenied(denied) => {
            assert_eq!(denied.request, "GET https://exfiltrate.example.com/steal");
            assert_eq!(
                denied.reason,
                PolicyError::NotAllowed { origin: "https://exfiltrate.example.com:443".into() }
            );
        }
        other => panic!("expected a denied request, got {other:?}"),
    }
    assert!(error.to_string().contains("exfiltrate.example.com"), "{error}");
}

/// Serves `200 ok` to every connection, on a loopback port.
fn loopback_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn allowed_loopback_requests_go_through_and_others_do_not() {
    let runtime = runtime();
    let plugin = load(&runtime, test_guests::hostile_http()).await;
    let server = loopback_server();
    let url = format!("{server}/ping");
    let allow = HttpAllowlist::none().allow_url(&server).unwrap();
    let verdict = plugin.validate_settings(&settings(&[("url", &url)]), &allow).await;
    assert_eq!(verdict.expect("an allowed request is not a violation"), Ok(()));

    let (error, _) = misbehave(&plugin, &[("url", &url)], &HttpAllowlist::none()).await;
    assert!(matches!(&error.failure, Failure::HttpDenied(d) if d.request == format!("GET {url}")), "{error}");

    // Plain http to a non-loopback host is refused whatever the list says.
    let (error, _) = misbehave(&plugin, &[("url", "http://example.com/")], &allow).await;
    assert!(
        matches!(&error.failure, Failure::HttpDenied(d) if matches!(d.reason, PolicyError::PlainHttp(_))),
        "{error}"
    );
}

#[tokio::test]
async fn panic_is_reported_with_its_message() {
    let error = stopped(test_guests::hostile_panic(), "hostile-panics", &[], &HttpAllowlist::none()).await;
    match &error.failure {
        Failure::Panic { message, stderr } => {
            assert!(message.starts_with("hostile fixture panicked on purpose (at ") && message.contains("src/lib.rs:"), "{message}");
            assert_eq!(stderr.text(), None, "a Rust panic is all in its message");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[tokio::test]
async fn precompiled_cache_is_used_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let path = test_guests::salesforce_plugin();
    let first = load(&runtime, path).await;
    assert_eq!(first.load_stats().cache, CacheOutcome::Miss);
    let second = load(&runtime, path).await;
    assert_eq!(second.load_stats().cache, CacheOutcome::Hit);
    assert_eq!(second.info().await.unwrap().name, "salesforce");

    // A damaged artifact is replaced, not trusted.
    let wasm = std::fs::read(path).unwrap();
    let cache = registry_plugin_runtime::cache::ComponentCache::new(Some(dir.path().to_path_buf()), [0; 32]);
    let entry = cache.entry_path(runtime.engine(), &registry_plugin_runtime::cache::wasm_digest(&wasm)).unwrap();
    std::fs::write(&entry, b"garbage").unwrap();
    let third = load(&runtime, path).await;
    assert_eq!(third.load_stats().cache, CacheOutcome::Miss);
    assert_eq!(load(&runtime, path).await.load_stats().cache, CacheOutcome::Hit);
}

/// A precompiled artifact is native code: it is loaded only when its MAC,
/// under the cache's key, checks out for this very wasm.
#[tokio::test]
async fn cached_artifacts_are_authenticated_before_they_are_loaded() {
    use registry_plugin_runtime::cache::{ComponentCache, wasm_digest};
    let dir = tempfile::tempdir().unwrap();
    let key = [42; 32];
    let config = || RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()), cache_key: key, ..RuntimeConfig::default() };
    let runtime = Runtime::new(config()).unwrap();
    let (salesforce, example) = (test_guests::salesforce_plugin(), test_guests::example_plugin());
    assert_eq!(load(&runtime, salesforce).await.load_stats().cache, CacheOutcome::Miss);
    assert_eq!(load(&runtime, example).await.load_stats().cache, CacheOutcome::Miss);

    // The Salesforce artifact copied under the example's digest: refused,
    // recompiled, and the example is what runs.
    let cache = ComponentCache::new(Some(dir.path().to_path_buf()), key);
    let entry = |p: &Path| cache.entry_path(runtime.engine(), &wasm_digest(&std::fs::read(p).unwrap())).unwrap();
    std::fs::copy(entry(salesforce), entry(example)).unwrap();
    let swapped = load(&runtime, example).await;
    assert_eq!((swapped.load_stats().cache, swapped.name()), (CacheOutcome::Miss, "example-contacts"));
    assert_eq!(load(&runtime, example).await.load_stats().cache, CacheOutcome::Hit, "rewritten, authenticated");

    // Another process with the same key reuses the cache; one with another
    // key (it could have been written by anyone) does not trust it.
    assert_eq!(load(&Runtime::new(config()).unwrap(), salesforce).await.load_stats().cache, CacheOutcome::Hit);
    let stranger = Runtime::new(RuntimeConfig { cache_key: [7; 32], ..config() }).unwrap();
    assert_eq!(load(&stranger, salesforce).await.load_stats().cache, CacheOutcome::Miss);

    // A cache directory others may write to is not used at all.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let open_runtime = Runtime::new(config()).unwrap();
        assert_eq!(load(&open_runtime, salesforce).await.load_stats().cache, CacheOutcome::Miss);
        assert_eq!(load(&open_runtime, salesforce).await.load_stats().cache, CacheOutcome::Miss, "never read, never written");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

#[tokio::test]
async fn files_that_are_not_plugins_get_a_clear_error() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    let error = runtime.load_file(&junk).await.err().expect("junk is refused");
    assert!(matches!(error, LoadError::Compile { .. }), "{error}");
    assert!(error.to_string().contains("is not a valid WebAssembly component"), "{error}");

    let missing = dir.path().join("missing.wasm");
    let error = runtime.load_file(&missing).await.err().expect("a missing file is refused");
    assert!(matches!(error, LoadError::Read { .. }), "{error}");
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert_eq!(chain.matches("No such file or directory").count(), 1, "the cause once: {chain}");

    // A component that does not implement the world's exports.
    let empty_component = b"\0asm\x0d\0\x01\0";
    let error = runtime.load("empty", empty_component).await.err().expect("refused");
    assert!(matches!(error, LoadError::Contract { .. }), "{error}");
}

#[tokio::test]
async fn the_pooling_allocator_keeps_every_limit() {
    let runtime = Runtime::new(RuntimeConfig { pooling: Some(4), deadline: Duration::from_secs(1), ..RuntimeConfig::default() }).unwrap();
    let plugin = load(&runtime, test_guests::salesforce_plugin()).await;
    // As many calls at once as there are slots, three times over: slots are reused.
    for _ in 0..3 {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let p = plugin.clone();
                tokio::spawn(async move { p.validate_settings(&[], &HttpAllowlist::none()).await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap().unwrap();
        }
    }
    let alloc = load(&runtime, test_guests::hostile_alloc()).await;
    let error = alloc.validate_settings(&[], &HttpAllowlist::none()).await.unwrap_err();
    assert!(matches!(error.failure, Failure::MemoryLimit { limit, .. } if limit == 64 << 20), "{error}");
    let looping = load(&runtime, test_guests::hostile_loop()).await;
    let error = looping.validate_settings(&[], &HttpAllowlist::none()).await.unwrap_err();
    assert!(matches!(error.failure, Failure::Timeout(_)), "{error}");
    // The pool still serves after the failures.
    plugin.validate_settings(&[], &HttpAllowlist::none()).await.unwrap().unwrap();
}

/// More calls at once than the pool has slots: the extra ones wait for a
/// slot and then run (before, they failed to instantiate). The calls loop
/// until their deadline, so they really are in flight together; each must
/// end by its own deadline, none for want of an instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_of_n_serves_n_plus_three_calls_at_once() {
    const SLOTS: u32 = 2;
    let runtime = Runtime::new(RuntimeConfig { pooling: Some(SLOTS), deadline: Duration::from_millis(200), ..RuntimeConfig::default() }).unwrap();
    let looping = load(&runtime, test_guests::hostile_loop()).await;
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..SLOTS + 3)
        .map(|_| {
            let p = looping.clone();
            tokio::spawn(async move { p.validate_settings(&[], &HttpAllowlist::none()).await })
        })
        .collect();
    for c in calls {
        let error = c.await.unwrap().unwrap_err();
        assert!(matches!(error.failure, Failure::Timeout(_)), "waited for a slot, then ran: {error}");
    }
    // Five 200 ms calls through two slots take at least three rounds.
    assert!(started.elapsed() >= Duration::from_millis(600), "{:?}", started.elapsed());
    let plugin = load(&runtime, test_guests::salesforce_plugin()).await;
    plugin.validate_settings(&[], &HttpAllowlist::none()).await.unwrap().unwrap();
}

/// A loopback HTTP/1.1 server that answers every request on a connection
/// until the client closes it; counts (connections, requests).
fn keep_alive_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (connections, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, r) = (connections.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            c.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stream.read(&mut chunk) {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        r.fetch_add(1, Ordering::SeqCst);
                        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), connections, requests)
}

#[tokio::test]
async fn connections_are_kept_alive_across_calls() {
    use std::sync::atomic::Ordering;
    let (server, connections, requests) = keep_alive_server();
    let runtime = runtime();
    let plugin = load(&runtime, test_guests::hostile_http()).await;
    let allow = HttpAllowlist::none().allow_url(&server).unwrap();
    for _ in 0..5 {
        let verdict = plugin.validate_settings(&settings(&[("url", &format!("{server}/ping"))]), &allow).await;
        assert_eq!(verdict.unwrap(), Ok(()));
    }
    assert_eq!(requests.load(Ordering::SeqCst), 5);
    assert_eq!(connections.load(Ordering::SeqCst), 1, "five calls, one kept-alive connection");
}

#[tokio::test]
async fn a_closed_kept_alive_connection_is_replaced_not_reused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        // One request per connection, then the server hangs up (without
        // saying so in a header, as idle timeouts do).
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    let runtime = runtime();
    let plugin = load(&runtime, test_guests::hostile_http()).await;
    let server = format!("http://{addr}");
    let allow = HttpAllowlist::none().allow_url(&server).unwrap();
    for i in 0..4 {
        let verdict = plugin.validate_settings(&settings(&[("url", &format!("{server}/ping"))]), &allow).await;
        assert_eq!(verdict.unwrap(), Ok(()), "request {i}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each hang-up was noticed and a new connection made. (The retry for a
    // hang-up that races the request is not reached here: it cannot be
    // timed reliably from a test.)
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn plain_http_to_loopback_needs_the_operators_opt_in() {
    let runtime = Runtime::new(RuntimeConfig { deadline: DEADLINE, ..RuntimeConfig::default() }).unwrap();
    let plugin = load(&runtime, test_guests::hostile_http()).await;
    let server = loopback_server();
    let allow = HttpAllowlist::none().allow_url(&server).unwrap();
    let error = plugin.validate_settings(&settings(&[("url", &format!("{server}/ping"))]), &allow).await.unwrap_err();
    match &error.failure {
        Failure::HttpDenied(d) => assert!(matches!(d.reason, PolicyError::InsecureLoopback(_)), "{error}"),
        other => panic!("expected a denied request, got {other:?}"),
    }
    assert!(error.to_string().contains("--allow-insecure-loopback"), "{error}");
}

#[tokio::test]
async fn each_runtime_keeps_its_own_connections() {
    use std::sync::atomic::Ordering;
    let (server, connections, _) = keep_alive_server();
    let allow = HttpAllowlist::none().allow_url(&server).unwrap();
    let (first, second) = (runtime(), runtime());
    for rt in [&first, &second, &first, &second] {
        let plugin = load(rt, test_guests::hostile_http()).await;
        let verdict = plugin.validate_settings(&settings(&[("url", &format!("{server}/ping"))]), &allow).await;
        assert_eq!(verdict.unwrap(), Ok(()));
    }
    // No process-wide pool: each runtime made one connection and reused it.
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_plugins_first_byte_timeout_is_honoured() {
    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let runtime = runtime();
    let plugin = load(&runtime, test_guests::hostile_http()).await;
    let server = format!("http://{addr}");
    let allow = HttpAllowlist::none().allow_url(&server).unwrap();
    let started = Instant::now();
    let verdict = plugin
        .validate_settings(&settings(&[("url", &format!("{server}/slow")), ("first_byte_ms", "200")]), &allow)
        .await
        .expect("the call completes: the plugin's own timeout fires before the call's deadline");
    let elapsed = started.elapsed();
    let problems = verdict.expect_err("the request timed out");
    assert!(problems[0].message.contains("ConnectionReadTimeout"), "{problems:?}");
    assert!(elapsed < DEADLINE, "took {elapsed:?}, the deadline is {DEADLINE:?}");
}

/// Rebuilt plugins (new wasm, new artifact) do not pile up: the cache
/// stays under its cap, evicting the least recently used, and a plugin in
/// use stays.
#[tokio::test]
async fn the_cache_stays_under_its_cap_across_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let cap: u64 = 1 << 20;
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()), cache_max_bytes: cap, ..RuntimeConfig::default() }).unwrap();
    let builds = [
        test_guests::hostile_loop(),
        test_guests::hostile_alloc(),
        test_guests::hostile_http(),
        test_guests::hostile_panic(),
        test_guests::hostile_poison(),
        test_guests::hostile_hoarder(),
        test_guests::example_plugin(),
        test_guests::example_plugin_v0_1_0(),
        test_guests::salesforce_plugin(),
        test_guests::hostile_loop(),
    ];
    for (i, build) in builds.iter().enumerate() {
        load(&runtime, build).await;
        let entries = registry_plugin_runtime::cache::entries(dir.path());
        let total: u64 = entries.iter().map(|e| e.bytes).sum();
        let newest = entries.iter().map(|e| e.bytes).max().unwrap_or(0);
        assert!(total <= cap.max(newest), "after build {i}: {total} bytes in the cache, cap {cap}");
    }
    let kept = registry_plugin_runtime::cache::entries(dir.path());
    assert!(kept.len() <= 3, "older builds were evicted: {} kept", kept.len());
    // The plugin loaded last is the most recently used, so it stays.
    let digest = registry_plugin_runtime::cache::wasm_digest(&std::fs::read(test_guests::hostile_loop()).unwrap());
    assert!(kept.iter().any(|e| e.path.to_string_lossy().contains(&digest)));
}
