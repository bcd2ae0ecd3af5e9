//! The real loop against the in-memory API server.

mod fixtures;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aigateway_api::{AiGateway, AiGatewayClass};
use aigateway_runtime::Operator;
use aigateway_testkit::RequestMatch;
use fixtures::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

const SECOND: Duration = Duration::from_secs(1);

async fn exists<K>(client: &Client, name: &str) -> bool
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_gateway_is_programmed_then_ready_when_its_deployment_is_available() {
    let server = server(Duration::from_millis(1500)).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    let running = start(operator(client.clone(), Minimal::default()));
    create_gateway(&client, &gateway("gw", Some("minimal"), &["gpt-4o"])).await;

    wait_condition(&client, "gw", "Programmed", "True").await;
    let (ready, reason, _) = condition(&client, "gw", "Ready")
        .await
        .expect("Ready is set");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "RollingOut"),
        "not ready before the Deployment is available"
    );
    wait_condition(&client, "gw", "Ready", "True").await;
    wait_condition(&client, "gw", "MinimalReady", "True").await;
    for type_ in ["Accepted", "ResolvedRefs"] {
        assert_eq!(
            condition(&client, "gw", type_).await.unwrap().0,
            "True",
            "{type_}"
        );
    }

    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("gw")
        .await
        .unwrap();
    let owner = &deployment.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("AiGateway", "gw", Some(true))
    );
    assert_eq!(
        deployment
            .labels()
            .get("app.kubernetes.io/managed-by")
            .unwrap(),
        MANAGER
    );
    assert_eq!(
        deployment
            .labels()
            .get("aigateway.agentic-layer.ai/gateway")
            .unwrap(),
        "gw"
    );
    assert_eq!(
        deployment
            .labels()
            .get("app.kubernetes.io/part-of")
            .unwrap(),
        "aigateway"
    );
    let gateway = Api::<AiGateway>::namespaced(client.clone(), NS)
        .get("gw")
        .await
        .unwrap();
    assert_eq!(
        gateway.status.unwrap().url.unwrap(),
        "http://gw.default.svc.cluster.local.:80"
    );

    let class = Api::<AiGatewayClass>::all(client.clone())
        .get("minimal")
        .await
        .unwrap();
    let accepted = &class.status.unwrap().conditions[0];
    assert_eq!(
        (
            accepted.type_.as_str(),
            accepted.status.as_str(),
            accepted.observed_generation
        ),
        ("Accepted", "True", Some(1))
    );
    running.stop().await;
}

#[tokio::test]
async fn spec_changes_update_children_dropped_children_are_pruned_and_deletion_collects() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    let implementation = Minimal::default();
    let skip = implementation.skip_config_map.clone();
    let _running = start(operator(client.clone(), implementation));
    create_gateway(&client, &gateway("gw", Some("minimal"), &["gpt-4o"])).await;
    wait_condition(&client, "gw", "Ready", "True").await;

    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    let patch = serde_json::json!({"spec": {"aiModels": [{"name": "gpt-4o", "provider": "openai"}, {"name": "o3", "provider": "openai"}]}});
    gateways
        .patch("gw", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), NS);
    eventually_within(10 * SECOND, "the ConfigMap lists both models", || async {
        let cm = config_maps.get("gw-models").await.ok()?;
        (cm.data?.get("models")? == "openai/gpt-4o\nopenai/o3").then_some(())
    })
    .await;
    eventually_within(10 * SECOND, "generation 2 observed", || async {
        let (_, _, generation) = condition(&client, "gw", "Programmed").await?;
        (generation == Some(2)).then_some(())
    })
    .await;

    skip.store(true, Ordering::SeqCst);
    // Any change re-runs reconcile; a label is enough.
    gateways
        .patch(
            "gw",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"labels": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    eventually_within(10 * SECOND, "the dropped ConfigMap is pruned", || async {
        (!exists::<ConfigMap>(&client, "gw-models").await).then_some(())
    })
    .await;
    assert!(
        exists::<Deployment>(&client, "gw").await,
        "the still-desired Deployment stays"
    );

    gateways
        .delete("gw", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within(10 * SECOND, "children garbage-collected", || async {
        (!exists::<Deployment>(&client, "gw").await).then_some(())
    })
    .await;
}

#[tokio::test]
async fn invalid_specs_are_reported_without_retry_loops() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    let _running = start(operator(client.clone(), Minimal::default()));
    create_gateway(
        &client,
        &gateway("bad", Some("minimal"), &["invalid-model"]),
    )
    .await;
    wait_condition(&client, "bad", "Accepted", "False").await;
    let (_, reason, _) = condition(&client, "bad", "Programmed").await.unwrap();
    assert_eq!(reason, "Invalid");
    assert!(!exists::<Deployment>(&client, "bad").await);
    server.reset_stats();
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(
        server.stats().writes_by_manager(MANAGER)
            + server
                .stats()
                .writes_by_manager(&aigateway_runtime::names::status_field_manager(
                    MANAGER, CONTROLLER
                )),
        0,
        "an invalid gateway is not retried in a loop"
    );
}

#[tokio::test]
async fn default_class_rules() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    let _running = start(operator(client.clone(), Minimal::default()));

    // No default class: a class-less gateway is left alone. A gateway naming our class,
    // created after it, reaching Ready shows the operator has been at work meanwhile.
    create_class(&client, "plain", CONTROLLER, false).await;
    create_gateway(&client, &gateway("no-class", None, &["m"])).await;
    create_gateway(&client, &gateway("sentinel-1", Some("plain"), &["m"])).await;
    wait_condition(&client, "sentinel-1", "Ready", "True").await;
    assert_eq!(condition(&client, "no-class", "Accepted").await, None);

    // Our default class: claimed.
    create_class(&client, "ours-default", CONTROLLER, true).await;
    wait_condition(&client, "no-class", "Ready", "True").await;

    // A second default class of another controller: ambiguous, so a new class-less
    // gateway is left alone (and the one we already serve is not torn down).
    create_class(&client, "theirs-default", "example.com/other", true).await;
    create_gateway(&client, &gateway("late", None, &["m"])).await;
    create_gateway(&client, &gateway("sentinel-2", Some("plain"), &["m"])).await;
    wait_condition(&client, "sentinel-2", "Ready", "True").await;
    assert!(
        exists::<Deployment>(&client, "no-class").await,
        "ambiguity does not delete what we serve"
    );
    assert_eq!(
        condition(&client, "late", "Accepted").await,
        None,
        "ambiguous default: no status from us"
    );
    let theirs = Api::<AiGatewayClass>::all(client.clone())
        .get("theirs-default")
        .await
        .unwrap();
    assert!(
        theirs.status.is_none_or(|s| s.conditions.is_empty()),
        "a foreign class is never written"
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.resource == "aigatewayclasses"
                && r.name == "theirs-default"
                && aigateway_testkit::WRITE_VERBS.contains(&r.verb.as_str()))
            .count(),
        0
    );
}

#[tokio::test]
async fn foreign_and_unknown_classes_get_nothing_and_switching_away_cleans_up() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    create_class(&client, "other", "example.com/other", false).await;
    let _running = start(operator(client.clone(), Minimal::default()));
    create_gateway(&client, &gateway("foreign", Some("other"), &["m"])).await;
    create_gateway(&client, &gateway("unknown", Some("missing"), &["m"])).await;
    create_gateway(&client, &gateway("switcher", Some("minimal"), &["m"])).await;
    wait_condition(&client, "switcher", "Ready", "True").await;
    assert_eq!(condition(&client, "foreign", "Accepted").await, None);
    assert_eq!(condition(&client, "unknown", "Accepted").await, None);
    assert!(!exists::<Deployment>(&client, "foreign").await);

    // Another writer's condition must survive our cleanup.
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    let mut current = gateways.get_status("switcher").await.unwrap();
    let mut conditions = current.status.take().unwrap().conditions;
    conditions.push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: "example.com/Audited".into(),
        status: "True".into(),
        reason: "Audited".into(),
        message: String::new(),
        observed_generation: None,
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ),
    });
    gateways
        .patch_status(
            "switcher",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"status": {"conditions": conditions}})),
        )
        .await
        .unwrap();

    gateways
        .patch(
            "switcher",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"aiGatewayClassName": "other"}})),
        )
        .await
        .unwrap();
    eventually_within(
        10 * SECOND,
        "children deleted after the class switch",
        || async {
            (!exists::<Deployment>(&client, "switcher").await
                && !exists::<ConfigMap>(&client, "switcher-models").await)
                .then_some(())
        },
    )
    .await;
    eventually_within(
        10 * SECOND,
        "our conditions removed, theirs kept",
        || async {
            let status = gateways.get_status("switcher").await.ok()?.status?;
            let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
            (types == ["example.com/Audited"]).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_converged_cluster_sees_zero_writes_on_resync() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let (resync, resyncs) = futures::channel::mpsc::unbounded::<()>();
    let _running = start(operator(client.clone(), Minimal::default()).resync_on(resyncs));
    for i in 0..5 {
        create_gateway(&client, &gateway(&format!("gw-{i}"), None, &["m"])).await;
    }
    for i in 0..5 {
        wait_condition(&client, &format!("gw-{i}"), "Ready", "True").await;
    }
    tokio::time::sleep(SECOND).await;
    server.reset_stats();
    for _ in 0..3 {
        resync.unbounded_send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stats = server.stats();
    assert_eq!(
        stats.writes(),
        0,
        "writes after forced resyncs: {:?}",
        stats.counts
    );
}

#[tokio::test]
async fn a_related_object_in_another_namespace_retriggers_the_right_gateway() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    server
        .apply_manifests("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shared\n")
        .unwrap();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let _running = start(operator(client.clone(), Minimal::default()));
    let mut watching = gateway("watching", None, &["m"]);
    watching.metadata.annotations =
        Some([(SETTINGS_ANNOTATION.to_owned(), "shared/settings".to_owned())].into());
    create_gateway(&client, &watching).await;
    create_gateway(&client, &gateway("bystander", None, &["m"])).await;
    wait_condition(&client, "watching", "ResolvedRefs", "False").await;
    wait_condition(&client, "bystander", "Ready", "True").await;

    server.reset_stats();
    let settings: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "settings", "namespace": "shared"}, "data": {"replicas": "3"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "shared")
        .create(&PostParams::default(), &settings)
        .await
        .unwrap();
    wait_condition(&client, "watching", "ResolvedRefs", "True").await;
    eventually_within(
        10 * SECOND,
        "replicas follow the related ConfigMap",
        || async {
            let d = Api::<Deployment>::namespaced(client.clone(), NS)
                .get("watching")
                .await
                .ok()?;
            (d.spec?.replicas == Some(3)).then_some(())
        },
    )
    .await;
    let bystander_writes = server
        .requests()
        .iter()
        .filter(|r| {
            r.name.starts_with("bystander")
                && aigateway_testkit::WRITE_VERBS.contains(&r.verb.as_str())
        })
        .count();
    assert_eq!(
        bystander_writes, 0,
        "only the referencing gateway is touched"
    );
}

/// Over HTTP, with an API server that answers writes 5 ms late (as the scale benchmark
/// models one), a reconcile often starts before the watch has delivered our own last
/// write of the gateway. It used to patch with the resourceVersion our own write had
/// replaced: one 409 per gateway. None now, and each gateway gets no metadata write
/// (which conditions are ours is the API server's record of our status writes), two
/// status writes and one Event on its way to Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_no_write_of_ours_conflicts_with_our_own_previous_write() {
    const GATEWAYS: usize = 40;
    let server = aigateway_testkit::ApiServer::builder()
        .request_latency(Duration::from_millis(1), Duration::from_millis(5))
        .build();
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await.unwrap();
    }
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let over_http = Client::try_from(kube::Config::new(http.url().parse().unwrap())).unwrap();
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    for i in 0..GATEWAYS {
        create_gateway(&client, &gateway(&format!("gw-{i:02}"), None, &["m"])).await;
    }
    // Every status each gateway had, to say what a write too many wrote.
    let seen: Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>> =
        Arc::default();
    let recorder = {
        let seen = seen.clone();
        let events = kube::runtime::watcher(
            Api::<AiGateway>::namespaced(client.clone(), NS),
            Default::default(),
        );
        tokio::spawn(
            kube::runtime::WatchStreamExt::applied_objects(events).for_each(move |gateway| {
                if let Ok(gateway) = gateway {
                    let conditions: Vec<String> = (gateway.status.iter())
                        .flat_map(|s| &s.conditions)
                        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                        .collect();
                    let mut seen = seen.lock().unwrap();
                    let history = seen.entry(gateway.name_any()).or_default();
                    let now = conditions.join("; ");
                    if history.last() != Some(&now) {
                        history.push(now);
                    }
                }
                futures::future::ready(())
            }),
        )
    };
    let _running = start(operator(over_http, Minimal::default()));
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    eventually_within(Duration::from_secs(60), "all gateways Ready", || async {
        let list = gateways.list(&Default::default()).await.ok()?;
        let ready = list
            .items
            .iter()
            .filter(|g| {
                g.status
                    .as_ref()
                    .is_some_and(|s| aigateway_api::conditions::is_true(&s.conditions, "Ready"))
            })
            .count();
        (ready == GATEWAYS).then_some(())
    })
    .await;
    // Late writes (an Event, a status) would land within this second.
    tokio::time::sleep(SECOND).await;

    let requests = server.requests();
    let status_manager = aigateway_runtime::names::status_field_manager(MANAGER, CONTROLLER);
    let ours = |r: &&aigateway_testkit::RequestRecord| {
        r.field_manager == MANAGER || r.field_manager == status_manager
    };
    let conflicts: Vec<String> = requests
        .iter()
        .filter(ours)
        .filter(|r| r.status == 409)
        .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.subresource, r.name))
        .collect();
    assert_eq!(conflicts, Vec::<String>::new(), "409s on our writes");
    let gateway_writes = |subresource: &str| {
        requests
            .iter()
            .filter(ours)
            .filter(|r| r.resource == "aigateways" && r.subresource == subresource)
            .filter(|r| aigateway_testkit::WRITE_VERBS.contains(&r.verb.as_str()))
            .count()
    };
    assert_eq!(gateway_writes(""), 0, "no metadata write");
    // The testkit makes a Deployment available just after answering its apply, so the
    // first status says RollingOut and the Deployment's next watch event brings Ready.
    // A reconcile that sees the Deployment between the two (its status not written yet)
    // says the same RollingOut message: no third write.
    let mut status_writes: std::collections::BTreeMap<String, usize> = Default::default();
    for r in requests.iter().filter(ours).filter(|r| {
        r.resource == "aigateways"
            && r.subresource == "status"
            && aigateway_testkit::WRITE_VERBS.contains(&r.verb.as_str())
    }) {
        *status_writes.entry(r.name.clone()).or_default() += 1;
    }
    assert_eq!(status_writes.len(), GATEWAYS);
    let outside: Vec<(&String, &usize)> = status_writes.iter().filter(|(_, n)| **n != 2).collect();
    recorder.abort();
    let histories: Vec<(&String, Vec<String>)> = (outside.iter())
        .map(|(name, _)| {
            (
                *name,
                seen.lock().unwrap().get(*name).cloned().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        outside.is_empty(),
        "status writes per gateway, 2 (rolling out, Ready) expected: {outside:?}; their statuses: {histories:#?}"
    );
    let events = requests
        .iter()
        .filter(|r| r.resource == "events" && r.verb == "create")
        .count();
    assert_eq!(events, GATEWAYS, "one Event per gateway (Ready)");

    server.reset_stats();
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(
        server.stats().writes(),
        0,
        "writes once converged: {:?}",
        server.stats().counts
    );
}

#[tokio::test]
async fn fifty_gateways_converge_through_failing_writes_and_cut_watches() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    for verb in ["create", "update", "patch", "delete"] {
        server
            .faults()
            .fail_fraction(0.2, RequestMatch::any().verb(verb), 500);
    }
    let _running = start(operator(client.clone(), Minimal::default()));
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    for i in 0..50 {
        let gw = gateway(&format!("gw-{i:02}"), None, &["m"]);
        // Our own creates may fail too: retry them like a user would.
        while gateways.create(&PostParams::default(), &gw).await.is_err() {}
    }
    let cutter = {
        let server = server.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                server.faults().cut_watches();
            }
        })
    };
    // A convergence bound, not a speed claim; it follows from the retry schedule. Each
    // write fails with probability 0.2, and a gateway's retry delay doubles (1, 2, 4, ...
    // s) only while the same step keeps failing (see `reconcile::error_policy`). So the
    // slowest gateway is the one whose single write (the marks, a child, a status) fails
    // most often in a row: k failures in a row wait 2^k - 1 s, up to 25 % more with
    // jitter, with probability 0.2^k per write. Over about 300 writes (50 gateways x 6),
    // seven in a row (127 s, up to 159 s) happen in about 0.4 % of runs and eight (255 s,
    // up to 319 s) in 0.08 %: 240 s covers seven with jitter plus the time to work
    // through 50 gateways on a loaded machine. Typical runs take 9 to 30 s. (When every failure of a gateway doubled its delay, whatever step failed, and
    // each gateway's first status write conflicted with its own marks write, half of all
    // reconciles failed and seven failures in a row were common: 9 to 125 s.)
    eventually_within(
        Duration::from_secs(240),
        "all 50 gateways Ready",
        || async {
            let list = gateways.list(&Default::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|g| {
                    g.status
                        .as_ref()
                        .is_some_and(|s| aigateway_api::conditions::is_true(&s.conditions, "Ready"))
                })
                .count();
            (ready == 50).then_some(())
        },
    )
    .await;
    cutter.await.unwrap();
    server.faults().clear();
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=minimal"))
        .await
        .unwrap();
    assert_eq!(
        deployments.items.len(),
        50,
        "one Deployment per gateway, nothing left over"
    );
    assert_eq!(
        config_maps.items.len(),
        50,
        "one ConfigMap per gateway, nothing left over"
    );
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let election = |id: &str| {
        aigateway_runtime::LeaderElection::new("minimal", NS)
            .identity(id)
            .timing(3, 1)
    };
    let first = start(
        Operator::new(client.clone())
            .gateway(Minimal::default())
            .leader_election(election("first")),
    );
    wait_lease_holder(&client, "first").await;
    let standby = Operator::new(client.clone())
        .gateway(Minimal::default())
        .leader_election(election("second"));
    let standby_metrics = standby.metrics();
    let second = start(standby);
    create_gateway(&client, &gateway("gw", None, &["m"])).await;
    wait_condition(&client, "gw", "Ready", "True").await;
    assert_eq!(lease_holder(&client).await.as_deref(), Some("first"));
    assert!(
        standby_metrics
            .encode()
            .contains("aigateway_reconciles_total 0"),
        "the standby reconciled (and could have written) while not leading"
    );

    first.stop().await;
    // The standby takes over and serves new gateways.
    create_gateway(&client, &gateway("after", None, &["m"])).await;
    wait_condition(&client, "after", "Ready", "True").await;
    assert_eq!(lease_holder(&client).await.as_deref(), Some("second"));
    assert!(
        !standby_metrics
            .encode()
            .contains("aigateway_reconciles_total 0"),
        "the new leader reconciles"
    );
    second.stop().await;
}

async fn lease_holder(client: &Client) -> Option<String> {
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), NS)
        .get_opt("minimal")
        .await
        .ok()??;
    lease.spec?.holder_identity
}

async fn wait_lease_holder(client: &Client, id: &str) {
    eventually_within(
        Duration::from_secs(15),
        &format!("{id} holds the lease"),
        || async { (lease_holder(client).await.as_deref() == Some(id)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn two_implementations_side_by_side_never_touch_each_others_gateways() {
    // Same last path segment, so the same field manager and managed-by label: only the
    // controller label tells their children apart.
    const OTHER: &str = "example.org/minimal";
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "ours", CONTROLLER, false).await;
    create_class(&client, "theirs", OTHER, false).await;
    let _ours = start(operator(client.clone(), Minimal::default()));
    let _theirs = start(operator(
        client.clone(),
        Minimal {
            controller: Some(OTHER),
            ..Default::default()
        },
    ));
    create_gateway(&client, &gateway("a", Some("ours"), &["m"])).await;
    create_gateway(&client, &gateway("b", Some("theirs"), &["m"])).await;
    wait_condition(&client, "a", "Ready", "True").await;
    wait_condition(&client, "b", "Ready", "True").await;
    tokio::time::sleep(SECOND).await;
    server.reset_stats();
    tokio::time::sleep(2 * SECOND).await;
    let stats = server.stats();
    assert_eq!(
        stats.writes(),
        0,
        "the two operators fight: {:?}",
        stats.counts
    );
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    let accepted = |g: AiGateway| {
        g.status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Accepted")
            .unwrap()
            .message
    };
    assert!(accepted(gateways.get("a").await.unwrap()).contains(CONTROLLER));
    assert!(accepted(gateways.get("b").await.unwrap()).contains(OTHER));

    // Switching a gateway from theirs to ours moves it cleanly: their children go, ours come.
    gateways
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"aiGatewayClassName": "ours"}})),
        )
        .await
        .unwrap();
    eventually_within(10 * SECOND, "b accepted by us", || async {
        let message = accepted(gateways.get("b").await.ok()?);
        (message.contains(CONTROLLER) && !message.contains(OTHER)).then_some(())
    })
    .await;
    wait_condition(&client, "b", "Ready", "True").await;
    tokio::time::sleep(SECOND).await;
    server.reset_stats();
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(
        server.stats().writes(),
        0,
        "no fight after the switch: {:?}",
        server.stats().counts
    );
    assert!(exists::<Deployment>(&client, "b").await);
}

#[tokio::test]
async fn a_gateway_without_spec_is_reported_and_blocks_nobody() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    // Straight to the store, as a client of upstream's CRD (spec not required) could.
    server
        .put_object(serde_json::json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
            "metadata": {"name": "empty", "namespace": NS}
        }))
        .unwrap();
    let _running = start(operator(client.clone(), Minimal::default()));
    create_gateway(&client, &gateway("fine", None, &["m"])).await;
    wait_condition(&client, "fine", "Ready", "True").await;
    // It is read (as a gateway with no models) and reconciled like any other; what it
    // deserves is the implementation's call (LiteLLM reports it as invalid).
    wait_condition(&client, "empty", "Accepted", "True").await;
}

/// An API server without streaming lists (the WatchList feature is off by default in
/// Kubernetes 1.33) answers a watch with `sendInitialEvents` 422: the metadata cache then
/// lists in small pages instead, and a gateway still reads its related ConfigMap.
#[tokio::test]
async fn metadata_caches_list_in_pages_where_lists_cannot_stream() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let settings: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "settings", "namespace": NS}, "data": {"replicas": "3"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &settings)
        .await
        .unwrap();
    // The first two ConfigMap watches: the related cache's streaming list (it starts with
    // a watch) and at most the child cache's first watch (it lists first, then retries).
    server.faults().fail_next(
        2,
        RequestMatch::any().verb("watch").resource("configmaps"),
        422,
    );
    let _running = start(operator(client.clone(), Minimal::default()));
    let mut reader = gateway("reader", None, &["m"]);
    reader.metadata.annotations =
        Some([(SETTINGS_ANNOTATION.to_owned(), format!("{NS}/settings"))].into());
    create_gateway(&client, &reader).await;
    wait_condition(&client, "reader", "Ready", "True").await;
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("reader")
        .await
        .unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(3));
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.resource == "configmaps"
            && r.verb == "watch"
            && r.status == 422
            && r.uri.contains("sendInitialEvents=true")),
        "the streaming list was not refused"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.resource == "configmaps" && r.verb == "list" && r.uri.contains("limit=10")),
        "no paged metadata list: {:?}",
        requests
            .iter()
            .filter(|r| r.resource == "configmaps")
            .map(|r| &r.uri)
            .collect::<Vec<_>>()
    );
}
