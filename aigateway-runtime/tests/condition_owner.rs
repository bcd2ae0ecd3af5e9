//! Which conditions are ours is recorded structurally, never read from messages. Each
//! scenario runs against the testkit and against a real control plane (named
//! `real_cluster_*`, see `aigateway_testkit::real_cluster`).

mod fixtures;

use std::time::Duration;

use aigateway_api::AiGateway;
use aigateway_testkit::ApiServer;
use aigateway_testkit::real_cluster::RealCluster;
use fixtures::*;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};

const SECOND: Duration = Duration::from_secs(1);
const V2: &str = "example.com/minimal-v2";

fn accepted_message(gateway: &AiGateway) -> Option<String> {
    gateway
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Accepted")
        .map(|c| c.message.clone())
}

/// Where a scenario runs.
enum Cluster {
    Testkit(ApiServer),
    Real(RealCluster, Client),
}

impl Cluster {
    async fn testkit() -> Self {
        Cluster::Testkit(server(Duration::ZERO).await)
    }

    /// A fresh real control plane with our CRDs established.
    async fn real() -> Self {
        let cluster = tokio::task::block_in_place(|| RealCluster::start().unwrap());
        let crds: Vec<serde_json::Value> = aigateway_api::crds::all()
            .iter()
            .map(|crd| serde_json::to_value(crd).unwrap())
            .collect();
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": crds});
        let kubectl = |args: &[&str], stdin: Option<&str>| {
            let mut child = cluster
                .kubectl()
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("kubectl is installed");
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                use std::io::Write;
                input.write_all(text.as_bytes()).unwrap();
            }
            drop(input);
            child.wait_with_output().unwrap()
        };
        let applied = kubectl(
            &["apply", "--server-side", "-f", "-"],
            Some(&list.to_string()),
        );
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
        // `kubectl wait` fails at once on a CRD whose status is not written yet: retried.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let waited = kubectl(
                &[
                    "wait",
                    "--for=condition=Established",
                    "crd",
                    "--all",
                    "--timeout=60s",
                ],
                None,
            );
            if waited.status.success() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "CRDs not Established: {}",
                String::from_utf8_lossy(&waited.stderr)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let client = cluster.admin_client().await.unwrap();
        Cluster::Real(cluster, client)
    }

    fn client(&self) -> Client {
        match self {
            Cluster::Testkit(server) => server.client(),
            Cluster::Real(_, client) => client.clone(),
        }
    }

    /// The writes anybody makes during `window`, one line each.
    async fn writes_during(&self, window: Duration) -> Vec<String> {
        match self {
            Cluster::Testkit(server) => {
                server.reset_stats();
                tokio::time::sleep(window).await;
                let stats = server.stats();
                if stats.writes() == 0 {
                    Vec::new()
                } else {
                    vec![format!("{:?}", stats.counts)]
                }
            }
            Cluster::Real(cluster, _) => {
                let mark = cluster.audit_log().mark();
                tokio::time::sleep(window).await;
                cluster
                    .audit_log()
                    .writes_since(mark)
                    .unwrap()
                    .into_iter()
                    // The operators run as the admin; the control plane's own
                    // controllers and kwok (user `kwok`) write pods and nodes.
                    .filter(|e| e.user == "admin")
                    .map(|e| {
                        format!(
                            "{} {} {}/{} {}",
                            e.verb, e.resource, e.namespace, e.name, e.subresource
                        )
                    })
                    .collect()
            }
        }
    }
}

#[tokio::test]
async fn controllers_whose_names_share_a_prefix_do_not_fight() {
    prefix_sharing_controllers(Cluster::testkit().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_controllers_whose_names_share_a_prefix_do_not_fight() {
    let _one_at_a_time = RealCluster::exclusive();
    prefix_sharing_controllers(Cluster::real().await).await;
}

async fn prefix_sharing_controllers(cluster: Cluster) {
    let client = cluster.client();
    create_class(&client, "v1", CONTROLLER, false).await;
    create_class(&client, "v2", V2, false).await;
    let _v1 = start(operator(client.clone(), Minimal::default()));
    let _v2 = start(operator(
        client.clone(),
        Minimal {
            controller: Some(V2),
            ..Default::default()
        },
    ));
    create_gateway(&client, &gateway("a", Some("v1"), &["m"])).await;
    create_gateway(&client, &gateway("b", Some("v2"), &["m"])).await;
    wait_condition(&client, "a", "Ready", "True").await;
    wait_condition(&client, "b", "Ready", "True").await;
    tokio::time::sleep(SECOND).await;
    let writes = cluster.writes_during(2 * SECOND).await;
    assert!(writes.is_empty(), "the operators fight: {writes:#?}");
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    let b = gateways.get("b").await.unwrap();
    assert!(accepted_message(&b).unwrap().contains(V2));
    assert_eq!(
        b.annotations()
            .get("aigateway.agentic-layer.ai/conditions-owner"),
        Some(&V2.to_owned())
    );
}

#[tokio::test]
async fn a_long_invalid_message_still_lets_us_remove_our_conditions() {
    long_invalid_message(Cluster::testkit().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_a_long_invalid_message_still_lets_us_remove_our_conditions() {
    let _one_at_a_time = RealCluster::exclusive();
    long_invalid_message(Cluster::real().await).await;
}

async fn long_invalid_message(cluster: Cluster) {
    let client = cluster.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    create_class(&client, "other", "example.com/other", false).await;
    let _running = start(operator(client.clone(), Minimal::default()));
    let mut long = gateway("long", Some("minimal"), &["invalid-model"]);
    long.metadata.annotations = Some([(PADDING_ANNOTATION.to_owned(), "5000".to_owned())].into());
    create_gateway(&client, &long).await;
    wait_condition(&client, "long", "Accepted", "False").await;
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    let message = accepted_message(&gateways.get("long").await.unwrap()).unwrap();
    assert!(
        message.ends_with("(truncated)") && !message.contains(CONTROLLER),
        "the message is cut before it could name the controller"
    );

    gateways
        .patch(
            "long",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"aiGatewayClassName": "other"}})),
        )
        .await
        .unwrap();
    eventually_within(10 * SECOND, "our conditions removed", || async {
        let gateway = gateways.get("long").await.ok()?;
        let conditions = gateway
            .status
            .clone()
            .map(|s| s.conditions)
            .unwrap_or_default();
        (conditions.is_empty()
            && !gateway
                .annotations()
                .contains_key("aigateway.agentic-layer.ai/conditions-owner"))
        .then_some(())
    })
    .await;
}
