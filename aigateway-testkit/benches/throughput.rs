//! Throughput and memory figures with 10,000 objects stored (`cargo bench -p aigateway-testkit`).
//!
//! Prints numbers; asserts nothing about speed. Memory is measured with a counting
//! global allocator: live heap bytes after storing the objects, minus before, divided by
//! the object count (this includes the watch-history entries that reference them).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use aigateway_testkit::ApiServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates every call to the system allocator and only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const OBJECTS: usize = 10_000;

fn object(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i:05}"), "namespace": "default",
            "labels": {"app": "bench", "shard": (i % 10).to_string()}},
        "data": {"config.yaml": format!("key: value-{i}\nother: {}\n", i * 7)},
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let server = ApiServer::new();
    let before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    for i in 0..OBJECTS {
        server.put_object(object(i)).expect("store object");
    }
    let store_time = start.elapsed();
    let after = LIVE.load(Ordering::Relaxed);
    let per_object = (after - before) as f64 / OBJECTS as f64;
    let json_size = serde_json::to_vec(&object(1234)).unwrap().len();
    println!("objects stored:            {OBJECTS}");
    println!(
        "direct store rate:         {:.0} objects/s",
        OBJECTS as f64 / store_time.as_secs_f64()
    );
    println!(
        "memory per object:         {per_object:.0} bytes (JSON size {json_size} bytes, incl. watch history)"
    );

    let client = server.client();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());

    // Full lists through the in-process kube::Client.
    let rounds = 5;
    let start = Instant::now();
    for _ in 0..rounds {
        let l = api.list(&ListParams::default()).await.expect("list");
        assert_eq!(l.items.len(), OBJECTS);
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "list (in-process client):  {:.1} lists/s, {:.0} objects/s",
        rounds as f64 / t,
        (rounds * OBJECTS) as f64 / t
    );

    // Paged lists with a label selector.
    let start = Instant::now();
    let mut lp = ListParams::default().labels("shard=3").limit(250);
    let mut seen = 0;
    loop {
        let page = api.list(&lp).await.expect("list page");
        seen += page.items.len();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    println!(
        "selector list (1/10 match, pages of 250): {seen} objects in {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );

    // Over HTTP.
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .expect("serve");
    let cfg = kube::Config::new(http.url().parse().unwrap());
    let http_client = kube::Client::try_from(cfg).expect("client");
    let http_api: Api<ConfigMap> = Api::default_namespaced(http_client);
    let start = Instant::now();
    for _ in 0..rounds {
        let l = http_api.list(&ListParams::default()).await.expect("list");
        assert_eq!(l.items.len(), OBJECTS);
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "list (HTTP client):        {:.1} lists/s, {:.0} objects/s",
        rounds as f64 / t,
        (rounds * OBJECTS) as f64 / t
    );

    // Initial watch: 10,000 synthetic ADDED events.
    let start = Instant::now();
    let stream = api
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .expect("watch");
    let n = stream.take(OBJECTS).count().await;
    let t = start.elapsed().as_secs_f64();
    println!(
        "watch initial events:      {:.0} events/s ({n} events)",
        n as f64 / t
    );

    // Live watch events: patches observed by a watcher.
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap();
    let stream = api
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .expect("watch");
    let writes = 2_000;
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        stream
            .filter(|e| futures::future::ready(matches!(e, Ok(WatchEvent::Modified(_)))))
            .take(writes)
            .count()
            .await
    });
    for i in 0..writes {
        api.patch(
            &format!("cm-{:05}", i % OBJECTS),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": i.to_string()}})),
        )
        .await
        .expect("patch");
    }
    let write_t = start.elapsed().as_secs_f64();
    let got = reader.await.expect("reader");
    let t = start.elapsed().as_secs_f64();
    println!(
        "merge patches:             {:.0} writes/s ({writes} writes)",
        writes as f64 / write_t
    );
    println!(
        "watch live events:         {:.0} events/s end to end ({got} events)",
        got as f64 / t
    );
    http.shutdown().await;
}
