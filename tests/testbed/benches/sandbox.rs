//! What the sandbox costs: component load (cold and cached), instantiate +
//! one call, and one person's provisioning through the component against
//! the loopback emulator versus the same plugin logic compiled natively and
//! driven with a native keep-alive HTTP client. Prints figures; run with
//! `cargo bench -p registry-plugin-testbed --bench sandbox`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use registry_plugin_runtime::latest::provisioning_target::ProvisionRequest;
use registry_plugin_runtime::latest::types::ProvisioningAction;
use registry_plugin_testbed::{TestBed, person};
use registry_plugin_runtime::{Runtime, RuntimeConfig};
use salesforce_provisioner::http::{Request, Response, Transport};

const SAMPLES: usize = 300;
/// People in the side-by-side reprovision.
const RUN_PEOPLE: usize = 10_000;

/// HTTP/1.1 over loopback with one kept-alive connection, as a native
/// client would do it (and as the host's sender does).
#[derive(Default)]
struct NativeTransport {
    conn: Option<(String, TcpStream)>,
    /// Time from sending each request to its response's head, summed (what
    /// the runtime's `http_stats` counts for the sandbox).
    waiting: Duration,
}

impl Transport for NativeTransport {
    fn send(&mut self, req: Request) -> Result<Response, String> {
        let rest = req.url.strip_prefix("http://").ok_or("the bench speaks plain http to loopback only")?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        if self.conn.as_ref().is_none_or(|(a, _)| a != authority) {
            let stream = TcpStream::connect(authority).map_err(|e| e.to_string())?;
            stream.set_nodelay(true).ok();
            self.conn = Some((authority.to_string(), stream));
        }
        let stream = &mut self.conn.as_mut().expect("connected").1;
        let mut head = format!("{} {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-length: {}\r\n", req.method, req.body.len());
        for (k, v) in &req.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let sent = Instant::now();
        stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&req.body)).map_err(|e| e.to_string())?;
        // Read the head, then exactly the body its content-length names.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let split = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            raw.extend_from_slice(&buf[..n]);
        };
        self.waiting += sent.elapsed();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).ok_or("no status")?;
        let headers: Vec<(String, String)> =
            lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let length: Option<usize> = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok());
        loop {
            let complete = match (chunked, length) {
                (true, _) => body.ends_with(b"0\r\n\r\n"),
                (false, Some(n)) => body.len() >= n,
                (false, None) => true,
            };
            if complete {
                break;
            }
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        if chunked {
            body = dechunk(&body);
        }
        Ok(Response { status, headers, body })
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[end + 2..end + 2 + size]);
        b = &b[end + 4 + size..];
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let wasm_path = test_guests::salesforce_plugin();
    let wasm = std::fs::read(wasm_path)?;
    let cache = tempfile::tempdir()?;

    // Load: cold compile, then from the precompiled cache.
    // Plain http to the loopback emulator, as the test bed allows it.
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(cache.path().to_path_buf()), insecure_loopback: true, ..RuntimeConfig::default() })?;
    let mut cold = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        registry_plugin_runtime::wasmtime::component::Component::new(runtime.engine(), &wasm)?;
        cold.push(t.elapsed());
    }
    let plugin = runtime.load("bench", &wasm).await?;
    let mut cached = Vec::new();
    for _ in 0..50 {
        cached.push(runtime.load("bench", &wasm).await?.load_stats().compile_or_deserialize);
    }

    // Instantiate + one trivial call (settings validation of the defaults),
    // with instances from wasmtime's pooling allocator as the host runs
    // them (sized as for 16 workers), and allocated per call.
    let none = registry_plugin_runtime::HttpAllowlist::none();
    let pooled_runtime = Runtime::new(RuntimeConfig { cache_dir: Some(cache.path().to_path_buf()), pooling: Some(RuntimeConfig::pool_for(16)), ..RuntimeConfig::default() })?;
    let pooled = pooled_runtime.load("bench", &wasm).await?;
    let mut trivial_pooled = Vec::new();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        pooled.validate_settings(&[], &none).await?.ok();
        trivial_pooled.push(t.elapsed());
    }
    let mut trivial = Vec::new();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        plugin.validate_settings(&[], &none).await?.ok();
        trivial.push(t.elapsed());
    }
    // Without copy-on-write memory images (a cache of its own: artifacts
    // record the setting): what they save, i.e. whether they apply.
    let cow_off_cache = tempfile::tempdir()?;
    let copying_runtime = Runtime::new(RuntimeConfig { cache_dir: Some(cow_off_cache.path().to_path_buf()), memory_init_cow: false, ..RuntimeConfig::default() })?;
    let copying = copying_runtime.load("bench", &wasm).await?;
    let mut trivial_copying = Vec::new();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        copying.validate_settings(&[], &none).await?.ok();
        trivial_copying.push(t.elapsed());
    }
    let mut info = Vec::new();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        plugin.info().await?;
        info.push(t.elapsed());
    }

    // One person, sandboxed vs native, against the same emulator.
    let bed = TestBed::start(wasm_path).await?;
    let tokens = bed.client_credentials().await?;
    let settings = [("external_id_field", "Registry_ID__c")];
    let ctx = bed.context(&settings, &tokens);
    let request = ProvisionRequest { action: ProvisioningAction::PersonUpdated, person: person("BENCH-1", "Ada", "Lovelace"), current: None };
    bed.provision(&ctx, &request).await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let config = salesforce_provisioner::settings::Config::parse(&ctx.settings).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let native_tokens = salesforce_provisioner::oauth::Tokens {
        access_token: tokens.access_token.clone(),
        refresh_token: None,
        instance_url: tokens.instance_url.clone(),
        issued_at: None,
        expires_at: None,
        scope: None,
        token_type: "Bearer".into(),
        extra: vec![],
    };
    let native_request = salesforce_provisioner::provision::Request {
        action: salesforce_provisioner::provision::Action::Updated,
        person: native_person(),
        current: None,
    };
    let mut native_http = NativeTransport::default();
    let (mut sandboxed, mut native) = (Vec::new(), Vec::new());
    // Interleaved, so drift in the emulator (its growing log) hits both alike.
    for _ in 0..SAMPLES {
        let t = Instant::now();
        bed.provision(&ctx, &request).await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        sandboxed.push(t.elapsed());
        let t = Instant::now();
        tokio::task::block_in_place(|| salesforce_provisioner::provision::provision(&mut native_http, &config, &native_tokens, &native_request))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        native.push(t.elapsed());
    }
    let (s, n) = (median(sandboxed), median(native));

    // Where the difference goes: one bare GET through the sandbox (the
    // hostile fixture's validate-settings fetches its `url` setting) versus
    // the same GET natively, against the same loopback server.
    let fetcher = runtime.load("fetch", &std::fs::read(test_guests::hostile_http())?).await?;
    let url = format!("{}/services/data", bed.emulator.instance_url());
    let settings = [("url".to_string(), url.clone())];
    let allow = bed.allowlist(Some(&tokens));
    let (mut get_sandboxed, mut get_native) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let t = Instant::now();
        fetcher.validate_settings(&settings, &allow).await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        get_sandboxed.push(t.elapsed());
        let t = Instant::now();
        let r = tokio::task::block_in_place(|| native_http.send(Request { method: "GET", url: url.clone(), headers: vec![], body: vec![] }))
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(r.status == 200, "GET {url}: {}", r.status);
        get_native.push(t.elapsed());
    }
    let (gs, gn) = (median(get_sandboxed), median(get_native));

    // A whole reprovision's plugin work, side by side: 10,000 people in
    // batches of 1,000 (composite collections of 200), through the
    // component and through the same logic compiled natively, against the
    // same emulator; alternating rounds, after one round that creates them.
    let bulk_settings = [("external_id_field", "Registry_ID__c"), ("bulk_threshold", "0")];
    let batch_ctx = bed.context(&bulk_settings, &tokens);
    let batch_config = salesforce_provisioner::settings::Config::parse(&batch_ctx.settings).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let people: Vec<ProvisionRequest> = (0..RUN_PEOPLE)
        .map(|i| ProvisionRequest { action: ProvisioningAction::ReprovisionRequested, person: person(&format!("RUN-{i:05}"), "Ada", &format!("Person {i}")), current: None })
        .collect();
    let native_people: Vec<salesforce_provisioner::provision::Request> = (0..RUN_PEOPLE)
        .map(|i| {
            let mut p = native_person();
            p.id = format!("RUN-{i:05}");
            p.name.family = Some(format!("Person {i}"));
            salesforce_provisioner::provision::Request { action: salesforce_provisioner::provision::Action::Reprovision, person: p, current: None }
        })
        .collect();
    let allow = bed.allowlist(Some(&tokens));
    // The host's configuration: pooled instances, the runtime's own sender.
    let run_runtime = Runtime::new(RuntimeConfig { cache_dir: Some(cache.path().to_path_buf()), insecure_loopback: true, pooling: Some(RuntimeConfig::pool_for(16)), ..RuntimeConfig::default() })?;
    let run_plugin = run_runtime.load("bench", &wasm).await?;
    let sandboxed_run = async || -> anyhow::Result<(Duration, Duration)> {
        let before = run_runtime.http_stats().waiting;
        let t = Instant::now();
        for chunk in people.chunks(1000) {
            run_plugin.provision_batch(&batch_ctx, chunk, &allow).await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        Ok((t.elapsed(), run_runtime.http_stats().waiting - before))
    };
    sandboxed_run().await?;
    let (mut run_sandboxed, mut run_native) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        run_sandboxed.push(sandboxed_run().await?);
        let before = native_http.waiting;
        let t = Instant::now();
        for chunk in native_people.chunks(1000) {
            tokio::task::block_in_place(|| salesforce_provisioner::provision::provision_batch(&mut native_http, &batch_config, &native_tokens, chunk)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        run_native.push((t.elapsed(), native_http.waiting - before));
    }
    // The same side by side against Salesforce's latency as the emulator
    // models it (150 ms + 2 ms a record for each composite call): 2,000 of
    // the people, one round each (11 s).
    bed.emulator.set_latency_model(Duration::from_millis(150), Duration::from_millis(2));
    let t = Instant::now();
    for chunk in people[..2000].chunks(1000) {
        run_plugin.provision_batch(&batch_ctx, chunk, &allow).await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let latency_sandboxed = t.elapsed();
    let t = Instant::now();
    for chunk in native_people[..2000].chunks(1000) {
        tokio::task::block_in_place(|| salesforce_provisioner::provision::provision_batch(&mut native_http, &batch_config, &native_tokens, chunk)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let latency_native = t.elapsed();
    bed.emulator.set_latency_model(Duration::ZERO, Duration::ZERO);
    // The median round of each, with its own waiting time.
    let middle = |mut runs: Vec<(Duration, Duration)>| {
        runs.sort();
        runs[runs.len() / 2]
    };
    let ((rs, ws), (rn, wn)) = (middle(run_sandboxed), middle(run_native));

    println!("component size                     {:.1} KiB", wasm.len() as f64 / 1024.0);
    println!("cold compile (median of 3)         {:.1} ms", median(cold).as_secs_f64() * 1e3);
    println!("cached load (median of 50)         {:.2} ms", median(cached).as_secs_f64() * 1e3);
    println!("instantiate + trivial call         {:.1} µs (validate-settings, pooled as the host runs it, median of {SAMPLES})", us(median(trivial_pooled.clone())));
    println!("  without a pool                   {:.1} µs (instances allocated per call)", us(median(trivial.clone())));
    println!("  without copy-on-write images     {:.1} µs (no pool, memory_init_cow off: data segments copied)", us(median(trivial_copying)));
    println!("instantiate + info call            {:.1} µs (15 settings lifted, no pool, median of {SAMPLES})", us(median(info)));
    println!("one person, sandboxed              {:.1} µs (upsert through the component, no pool, median of {SAMPLES})", us(s));
    println!("one person, native                 {:.1} µs (same logic, native HTTP, median of {SAMPLES})", us(n));
    println!("sandboxed / native                 {:.2}", s.as_secs_f64() / n.as_secs_f64());
    println!("where it goes: one GET, sandboxed  {:.1} µs (instantiate + wasi-http request, median of {SAMPLES})", us(gs));
    println!("               one GET, native     {:.1} µs", us(gn));
    println!("               instantiate         {:.1} µs (the trivial call above, no pool)", us(median(trivial)));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("10,000 people, sandboxed           {:.0} ms (batches of 1,000 through the component, pooled, median of 7)", ms(rs));
    println!("  waiting on the emulator          {:.0} ms (from each request sent to its response's head)", ms(ws));
    println!("  the rest                         {:.0} ms (instantiation, requests read in, the plugin's code in wasm, wasi-http, results out)", ms(rs - ws));
    println!("10,000 people, native              {:.0} ms (the same batches, the same logic compiled natively)", ms(rn));
    println!("  waiting on the emulator          {:.0} ms", ms(wn));
    println!("  the rest                         {:.0} ms (the plugin's code, native HTTP)", ms(rn - wn));
    println!("sandboxed / native, 10,000 people  {:.2} (the rest alone: {:.2})", rs.as_secs_f64() / rn.as_secs_f64(), (rs - ws).as_secs_f64() / (rn - wn).as_secs_f64());
    println!("2,000 people, Salesforce's latency  {:.2} s sandboxed, {:.2} s native: {:.3} (150 ms + 2 ms a record a call, modelled)", latency_sandboxed.as_secs_f64(), latency_native.as_secs_f64(), latency_sandboxed.as_secs_f64() / latency_native.as_secs_f64());
    println!("build profile                      {}", if cfg!(debug_assertions) { "debug" } else { "release" });
    Ok(())
}

fn native_person() -> salesforce_provisioner::person::Person {
    use salesforce_provisioner::person::{Email, Name, Person, Status};
    Person {
        id: "BENCH-1".into(),
        status: Status::Active,
        name: Name { honorific: None, given: "Ada".into(), middle: None, family: Some("Lovelace".into()), suffix: None },
        emails: vec![Email { address: "ada@example.org".into(), kind: "official".into(), verified: true }],
        identifiers: vec![],
        roles: vec![],
    }
}
