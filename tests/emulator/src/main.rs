//! `salesforce-emulator`: runs the emulator until interrupted and prints how
//! to reach it.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use salesforce_emulator::{Emulator, Options, Seed};

/// An offline Salesforce (login host + REST instance host) for tests and demos.
#[derive(Debug, Parser)]
#[command(name = "salesforce-emulator", version)]
struct Args {
    /// JSON seed file with orgs, users and connected apps (default: the demo org).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Login host port (0: any free port).
    #[arg(long, default_value_t = 0)]
    login_port: u16,
    /// Instance host port (0: any free port).
    #[arg(long, default_value_t = 0)]
    instance_port: u16,
    /// A callback URL to allow on the first connected app (repeatable).
    #[arg(long = "callback-url")]
    callback_urls: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut seed = match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading seed file {}", path.display()))?;
            Seed::from_json(&text).map_err(anyhow::Error::msg).with_context(|| format!("in {}", path.display()))?
        }
        None => Seed::demo(vec![]),
    };
    if let Some(app) = seed.orgs.iter_mut().flat_map(|o| o.connected_apps.iter_mut()).next() {
        app.callback_urls.extend(args.callback_urls.iter().cloned());
    }
    let emulator = Emulator::start_with(Options { seed: seed.clone(), bind_ip: args.bind, login_port: args.login_port, instance_port: args.instance_port })?;
    println!("Salesforce emulator running (Ctrl-C to stop)");
    println!("  login URL:      {}", emulator.login_url());
    for o in emulator.orgs() {
        println!("  org:            {} ({})", o.name, o.id);
        println!("  instance URL:   {}", o.instance_url);
    }
    println!("  admin/faults:   {}/_emulator", emulator.login_url());
    for a in emulator.apps() {
        println!("  connected app:  {}", a.name);
        println!("    consumer key:    {}", a.consumer_key);
        println!("    consumer secret: {}", a.consumer_secret);
        let cbs = if a.callback_urls.is_empty() { "(none: add with --callback-url)".to_string() } else { a.callback_urls.join(", ") };
        println!("    callback URLs:   {cbs}");
    }
    for o in &seed.orgs {
        for u in &o.users {
            println!("  login user:     {} / {}", u.username, u.password);
        }
    }
    loop {
        std::thread::park();
    }
}
