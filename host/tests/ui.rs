//! The fleet view in a real browser: headless Chromium (Debian's, through chromedriver)
//! against `ferrometal run` with a simulated fleet (the lab `make demo` runs), a real
//! control plane and real tokens.
//!
//! One test walks what a viewer relies on: a token that may not list Servers is refused with
//! a readable reason; a viewer's token gets in (through the `#token=` link `make demo`
//! prints); the counts per state equal the API server's; a Server's page shows its inventory
//! and discovery timeline as its status records them; a BMC that stops answering turns
//! unreachable on the page without a reload; and every request the page made went to the
//! operator's own origin. Screenshots (overview, a Server; the racks of 10,000) are saved under
//! `target/ui-screenshots/` (`FERROMETAL_UI_SCREENSHOTS` names another directory:
//! `make ui-screenshots` writes docs/ui/). `FERROMETAL_UI_SERVERS` sets the fleet's size
//! (12 by default; `make bench` runs 1000 and records the page's figures).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrometal::api::Server;
use ferrometal_sim::Faults;
use ferrometal_sim::lab::Lab;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use testenv::browser::Browser;

mod common;

fn servers_in_fleet() -> usize {
    std::env::var("FERROMETAL_UI_SERVERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12)
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("FERROMETAL_UI_SCREENSHOTS").map_or_else(
        || testenv::tools::workspace_root().join("target/ui-screenshots"),
        PathBuf::from,
    )
}

/// Servers per state as the API server has them.
async fn api_counts(lab: &Lab) -> BTreeMap<String, u64> {
    let servers: Api<Server> = Api::all(lab.client.clone());
    let mut counts = BTreeMap::new();
    for server in servers
        .list(&ListParams::default())
        .await
        .expect("list Servers")
    {
        *counts
            .entry(ferrometal::ui::view::state_name(&server))
            .or_default() += 1;
    }
    counts
}

/// The page's count tiles: filter key → number.
const PAGE_COUNTS: &str = "const tiles = document.querySelectorAll('#counts .tile'); \
    if (!tiles.length) return null; const out = {}; \
    for (const t of tiles) out[t.dataset.filter] = Number(t.querySelector('.n').textContent); \
    return out;";

/// What the page cost: bytes loaded (the stream's bytes are not counted until it ends), its
/// first render and the cost of its updates (`window.__ferrometal`, kept by the page).
const PAGE_FIGURES: &str = "const entries = [...performance.getEntriesByType('navigation'), \
    ...performance.getEntriesByType('resource')]; \
    return { weight: entries.reduce((n, e) => n + (e.transferSize || 0), 0), \
    firstRender: window.__ferrometal.firstRender, updates: window.__ferrometal.updates, \
    maxUpdateMs: window.__ferrometal.maxUpdateMs, lastUpdateMs: window.__ferrometal.lastUpdateMs };";

#[tokio::test]
async fn the_fleet_view_shows_the_fleet_live_to_those_who_may_list_servers() {
    let size = servers_in_fleet();
    let port = testenv::net::free_port().expect("a port");
    let mut options = common::lab_options("ui", size, 1, size / 2);
    options.operator_args.extend([
        String::from("--metrics-bind-address"),
        format!("127.0.0.1:{port}"),
    ]);
    options.operator_log = String::from("info");
    let lab = Lab::start(options, |line| eprintln!("lab: {line}"))
        .await
        .expect("the lab starts");
    let origin = format!("http://127.0.0.1:{port}");
    let viewer = lab
        .fleet_view_token("fleet-viewer", true)
        .expect("a viewer's token");
    let outsider = lab
        .fleet_view_token("outsider", false)
        .expect("an outsider's token");
    let browser = Browser::start(1400, 1000).await.expect("Chromium starts");
    let shots = screenshot_dir();

    // A token whose user may not list Servers is refused, saying why.
    browser
        .goto(&format!("{origin}/ui"))
        .await
        .expect("open /ui");
    browser
        .wait_for(
            "the login form",
            "return !document.getElementById('login').hidden",
            Duration::from_secs(30),
        )
        .await
        .expect("login form");
    browser
        .execute(
            "document.getElementById('token').value = arguments[0]; \
             document.getElementById('login-form').requestSubmit();",
            vec![json!(outsider)],
        )
        .await
        .expect("submit");
    let refusal = browser
        .wait_for(
            "the refusal",
            "const t = document.getElementById('login-error').textContent; return t || null;",
            Duration::from_secs(30),
        )
        .await
        .expect("refusal shown");
    assert!(
        refusal
            .as_str()
            .is_some_and(|t| t.contains("may not list servers.metal.ironcore.dev")),
        "{refusal}"
    );
    let app_hidden = browser
        .execute("return document.getElementById('app').hidden", Vec::new())
        .await
        .expect("read");
    assert_eq!(
        app_hidden,
        Value::Bool(true),
        "nothing shown to the outsider"
    );

    // The link `make demo` prints: the token in the fragment, gone from the address bar.
    browser
        .goto(&format!("{origin}/ui#token={viewer}"))
        .await
        .expect("open the viewer's link");
    browser
        .wait_for(
            "the live fleet",
            "return document.getElementById('connection').dataset.state === 'live'",
            Duration::from_secs(60),
        )
        .await
        .expect("live");
    let address = browser
        .execute("return location.href", Vec::new())
        .await
        .expect("read");
    assert_eq!(
        address,
        json!(format!("{origin}/ui")),
        "the token left the address bar"
    );
    let first_render = browser
        .execute("return window.__ferrometal.firstRender", Vec::new())
        .await
        .expect("read");

    // Counts per state equal the API server's, once the fleet is Available (and on the way:
    // the page follows without a reload).
    let limit = Duration::from_secs(180 + size as u64 / 5);
    let started = Instant::now();
    let (counts, page) = loop {
        let counts = api_counts(&lab).await;
        let page = browser
            .execute(PAGE_COUNTS, Vec::new())
            .await
            .expect("read counts");
        let matches = counts.values().sum::<u64>() == size as u64
            && counts.iter().all(|(state, n)| page[state] == json!(n))
            && counts.get("Available") == Some(&(size as u64));
        if matches {
            break (counts, page);
        }
        assert!(
            started.elapsed() < limit,
            "the page's counts {page} never matched the API server's {counts:?}; operator log:\n{}",
            lab.operator_log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("counts: API {counts:?}, page {page}");
    assert_eq!(page["Error"], json!(0));
    assert_eq!(page["stuck"], json!(0));
    assert_eq!(page["bmc-unreachable"], json!(0));

    // A Server's page: inventory and timeline as its status records them.
    let servers: Api<Server> = Api::all(lab.client.clone());
    let server = servers
        .list(&ListParams::default())
        .await
        .expect("list Servers")
        .items
        .into_iter()
        .min_by_key(ResourceExt::name_any)
        .expect("a Server");
    browser
        .execute(
            "location.hash = '#/server/' + encodeURIComponent(arguments[0])",
            vec![json!(server.name_any())],
        )
        .await
        .expect("open the Server");
    let steps = browser
        .wait_for(
            "the discovery timeline",
            "if (!document.querySelector('#detail-body h3')) return null; \
             const items = document.querySelectorAll('#timeline li'); \
             return [...items].map(li => [li.dataset.step, li.querySelector('time').getAttribute('datetime')]);",
            Duration::from_secs(30),
        )
        .await
        .expect("timeline");
    let steps: Vec<(String, String)> = serde_json::from_value(steps).expect("steps");
    let names: Vec<&str> = steps.iter().map(|(step, _)| step.as_str()).collect();
    assert_eq!(
        names,
        [
            "Discovery started (attempt 1)",
            "Network boot requested",
            "iPXE script fetched",
            "Ignition fetched",
            "Probe report received",
            "Available",
        ],
        "{steps:?}"
    );
    let status = server.status.clone().expect("status");
    let reported = status
        .conditions
        .iter()
        .find(|c| c.type_ == "ProbeReported")
        .expect("ProbeReported");
    assert_eq!(steps[4].1, reported.last_transition_time.0.to_string());
    let macs_on_page = browser
        .execute(
            "const rows = [...document.querySelectorAll('#detail-body table')]\
               .find(t => t.tHead.textContent.includes('MAC'))?.tBodies[0].rows || []; \
             return [...rows].map(r => r.cells[1].textContent).sort();",
            Vec::new(),
        )
        .await
        .expect("read NICs");
    let mut macs: Vec<String> = status
        .network_interfaces
        .iter()
        .map(|nic| nic.mac_address.clone())
        .collect();
    macs.sort();
    assert!(!macs.is_empty(), "the probe reported NICs");
    assert_eq!(macs_on_page, json!(macs));
    browser
        .screenshot(&shots.join("server.png"))
        .await
        .expect("screenshot");

    // A BMC stops answering: the page turns it unreachable without a reload.
    let killed = lab.fleet.bmcs().last().expect("a BMC");
    killed.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let cut = Instant::now();
    browser
        .wait_for(
            "the BMC unreachable",
            "return Number(document.querySelector('#counts .tile[data-filter=\"bmc-unreachable\"] .n').textContent) === 1",
            Duration::from_secs(60),
        )
        .await
        .expect("the BMC turns unreachable on the page");
    let unreachable_after = cut.elapsed().as_secs_f64();
    eprintln!(
        "a BMC cut off showed as unreachable after {unreachable_after:.1}s (BMC resync 3 s, view interval 1 s)"
    );
    let listed = browser
        .execute(
            "return [...document.querySelectorAll('#bmcs tbody tr')].map(r => [r.dataset.bmc, r.cells[1].textContent]);",
            Vec::new(),
        )
        .await
        .expect("read the BMCs that do not answer");
    let bmcs: Api<ferrometal::api::BMC> = Api::all(lab.client.clone());
    let down: Vec<(String, String)> = bmcs
        .list(&ListParams::default())
        .await
        .expect("list BMCs")
        .items
        .iter()
        .filter_map(|bmc| {
            let ready = bmc
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")?;
            (ready.status == "False").then(|| (bmc.name_any(), ready.reason.clone()))
        })
        .collect();
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(listed, json!(down), "the page lists the BMC and its reason");
    browser
        .execute(
            "history.pushState(null, '', location.pathname); window.dispatchEvent(new HashChangeEvent('hashchange'));",
            Vec::new(),
        )
        .await
        .expect("back to the overview");
    browser
        .wait_for(
            "the overview",
            "return document.getElementById('detail').hidden",
            Duration::from_secs(10),
        )
        .await
        .expect("overview");
    browser
        .screenshot(&shots.join("overview.png"))
        .await
        .expect("screenshot");

    // Every request the page made went to the operator (and the browser itself went
    // nowhere but loopback).
    let requests = browser.requests().await.expect("the network log");
    let page_requests: Vec<&str> = requests
        .iter()
        .filter(|r| r.document.starts_with(&format!("{origin}/")))
        .map(|r| r.url.as_str())
        .collect();
    assert!(page_requests.len() >= 4, "{requests:?}");
    let elsewhere: Vec<&&str> = page_requests
        .iter()
        .filter(|url| !url.starts_with(&format!("{origin}/")) && !url.starts_with("data:"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the page went elsewhere: {elsewhere:?}"
    );
    let off_machine: Vec<&str> = requests
        .iter()
        .map(|r| r.url.as_str())
        .filter(|url| url.starts_with("http") && !url.starts_with("http://127.0.0.1:"))
        .collect();
    assert!(
        off_machine.is_empty(),
        "the browser went elsewhere: {off_machine:?}"
    );
    let figures = browser
        .execute(PAGE_FIGURES, Vec::new())
        .await
        .expect("figures");
    eprintln!(
        "fleet view with {size} servers: {} requests, all to {origin}; first render {first_render} ms after opening; screenshots in {}",
        page_requests.len(),
        shots.display()
    );
    // For `make bench` (BENCHMARKS.md "Fleet view").
    eprintln!(
        "FLEET-VIEW-FIGURES {}",
        json!({
            "servers": size,
            "source": "ferrometal run with a simulated fleet",
            "firstRenderMs": figures["firstRender"],
            "maxUpdateMs": figures["maxUpdateMs"],
            "updates": figures["updates"],
            "weightBytes": figures["weight"],
            "unreachableAfterS": unreachable_after,
        })
    );
    browser.close().await.expect("close");
}

/// A synthetic Server in `state`, placed in rack `i / 40`, unit `i % 40`.
fn synthetic_server(i: usize, state: &str, version: u64) -> Server {
    serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1",
        "kind": "Server",
        "metadata": {
            "name": format!("server-{i:05}"),
            "resourceVersion": version.to_string(),
            "labels": {
                "metadata.metal.ironcore.dev/location": "fra1",
                "metadata.metal.ironcore.dev/rack": format!("r{:03}", i / 40),
                "metadata.metal.ironcore.dev/height": (i % 40).to_string(),
            },
        },
        "spec": { "systemUUID": format!("uuid-{i}"), "bmcRef": { "name": format!("bmc-{:04}", i / 8) } },
        "status": { "state": state, "powerState": "Off" },
    }))
    .expect("a Server")
}

/// The state synthetic Server `i` starts in: most Available, some Discovery, a few Error
/// and Initial.
fn synthetic_state(i: usize) -> &'static str {
    match i % 100 {
        0 => "Error",
        1..=2 => "Initial",
        3..=12 => "Discovery",
        _ => "Available",
    }
}

/// 10,000 Servers behind 1,250 BMCs in 250 racks, 1 % of them changing state every half
/// second: what the page costs at that size (first render, each update, what it loads),
/// printed for BENCHMARKS.md, and the counts it shows equal the caches'. The fleet view is
/// served by the same code as in `ferrometal run`, from caches filled here (a real fleet of
/// that size takes the control plane most of an hour to discover on this machine); tokens
/// are reviewed by a real API server.
#[tokio::test]
async fn the_fleet_view_keeps_up_with_ten_thousand_servers() {
    use std::sync::Arc;

    use ferrometal::api::BMC;
    use ferrometal::controllers::caches::Caches;
    use ferrometal::ui::{Ui, UiSettings};
    use kube::runtime::watcher;

    const SERVERS: usize = 10_000;
    let control_plane = testenv::ControlPlane::start().await.expect("control plane");
    let token = testenv::viewer::token(&control_plane, "fleet-viewer", true).expect("token");
    let (caches, mut writers) = Caches::new();
    writers.servers.apply_watcher_event(&watcher::Event::Init);
    for i in 0..SERVERS {
        writers
            .servers
            .apply_watcher_event(&watcher::Event::InitApply(synthetic_server(
                i,
                synthetic_state(i),
                1,
            )));
    }
    writers
        .servers
        .apply_watcher_event(&watcher::Event::InitDone);
    for b in 0..SERVERS / 8 {
        let bmc: BMC = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "BMC",
            "metadata": { "name": format!("bmc-{b:04}") },
            "spec": { "bmcSecretRef": { "name": "s" }, "protocol": { "name": "Redfish", "port": 443 } },
            "status": { "conditions": [{ "type": "Ready", "status": "True", "reason": "Connected",
                "message": "ok", "lastTransitionTime": "2026-12-01T00:00:00Z" }] },
        }))
        .expect("a BMC");
        writers
            .bmcs
            .apply_watcher_event(&watcher::Event::Apply(bmc));
    }
    let ui = Ui::new(
        caches.clone(),
        control_plane.client().await.expect("client"),
        Arc::new(|| true),
        UiSettings {
            interval: Duration::from_millis(500),
            ..UiSettings::default()
        },
    );
    tokio::spawn(ui.clone().run());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        axum::serve(listener, ferrometal::ui::router(ui))
            .await
            .expect("serve");
    });

    // What a viewer downloads first.
    let fleet_json = reqwest::Client::new()
        .get(format!("{origin}/ui/api/fleet"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /ui/api/fleet")
        .bytes()
        .await
        .expect("body");

    let browser = Browser::start(1400, 1000).await.expect("Chromium starts");
    let opened = Instant::now();
    browser
        .goto(&format!("{origin}/ui#token={token}"))
        .await
        .expect("open");
    browser
        .wait_for(
            "10,000 servers",
            "return document.querySelector('#counts .hint')?.textContent.startsWith('10000 servers') || null",
            Duration::from_secs(60),
        )
        .await
        .expect("the whole fleet on the page");
    let shown = opened.elapsed();

    // Churn: 1 % of the fleet (another 1 % each time) changes state every half second for
    // ten seconds.
    let mut version = 1;
    for round in 1..=20 {
        version += 1;
        for i in (0..SERVERS).filter(|i| (i + round) % 100 == 0) {
            writers
                .servers
                .apply_watcher_event(&watcher::Event::Apply(synthetic_server(
                    i,
                    // Each round moves its servers (chosen once in the run) out of the
                    // state they started in.
                    if synthetic_state(i) == "Available" {
                        "Discovery"
                    } else {
                        "Available"
                    },
                    version,
                )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for server in caches.servers.state() {
        *expected
            .entry(ferrometal::ui::view::state_name(&server))
            .or_default() += 1;
    }
    let page = browser
        .wait_for(
            "the counts after the churn",
            PAGE_COUNTS,
            Duration::from_secs(10),
        )
        .await
        .expect("counts");
    for (state, n) in &expected {
        assert_eq!(
            page[state],
            json!(n),
            "{state}: page {page}, caches {expected:?}"
        );
    }
    let more = browser
        .execute(
            "return document.getElementById('more').textContent",
            Vec::new(),
        )
        .await
        .expect("read");
    assert!(
        more.as_str().is_some_and(|t| t.contains("more")),
        "the list is cut at 200 rows: {more}"
    );
    let figures = browser
        .execute(PAGE_FIGURES, Vec::new())
        .await
        .expect("figures");
    browser
        .execute(
            "document.getElementById('rack').scrollIntoView()",
            Vec::new(),
        )
        .await
        .expect("scroll");
    browser
        .screenshot(&screenshot_dir().join("rack.png"))
        .await
        .expect("screenshot");
    eprintln!(
        "fleet view with {SERVERS} servers: whole fleet on the page {:.2} s after opening; first fleet document {} KiB; figures {figures}",
        shown.as_secs_f64(),
        fleet_json.len() / 1024,
    );
    eprintln!(
        "FLEET-VIEW-FIGURES {}",
        json!({
            "servers": SERVERS,
            "source": "synthetic caches, 1 % changing every 0.5 s",
            "wholeFleetS": shown.as_secs_f64(),
            "firstRenderMs": figures["firstRender"],
            "maxUpdateMs": figures["maxUpdateMs"],
            "updates": figures["updates"],
            "weightBytes": figures["weight"],
            "fleetDocumentBytes": fleet_json.len(),
        })
    );
    browser.close().await.expect("close");
}
