//! `LiteLlmGateway` in the real loop against the in-memory API server: problems shown as
//! conditions, related objects in other namespaces re-rendering the right gateway, the
//! Go operator's condition names mirrored.

use std::time::Duration;

use aigateway_api::AiGateway;
use aigateway_api::conditions::find_condition;
use aigateway_runtime::Operator;
use aigateway_testkit::ApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use litellm_impl::{LiteLlmGateway, RenderSettings};

const CLASS: &str = include_str!("../../examples/manifests/litellm-class-default.yaml");

const GATEWAY: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: team
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata:
  name: gw
  namespace: team
spec:
  aiModels:
    - name: gpt-4o
      provider: openai
  guardrails:
    - name: pii
      namespace: guards
";

const GUARD: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: guards
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: GuardrailProvider
metadata:
  name: presidio
  namespace: guards
spec:
  type: presidio-api
  presidio:
    baseUrl: http://presidio.guards:80
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: Guard
metadata:
  name: pii
  namespace: guards
spec:
  mode: [pre_call]
  providerRef:
    name: presidio
";

fn secret(key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\n  namespace: team\nstringData:\n  OPENAI_API_KEY: {key}\n"
    )
}

async fn condition(gateways: &Api<AiGateway>, type_: &str) -> Option<(String, String, String)> {
    let gateway = gateways.get("gw").await.ok()?;
    let conditions = gateway.status?.conditions;
    find_condition(&conditions, type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Our CRDs and the default `litellm` AiGatewayClass.
async fn install_crds_and_class(server: &ApiServer) {
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await.unwrap();
    }
    server.apply_manifests(CLASS).unwrap();
}

type Stop = tokio::sync::oneshot::Sender<()>;
type Task = tokio::task::JoinHandle<Result<(), aigateway_runtime::OperatorError>>;

/// The LiteLLM AiGateway operator on `server`, until the sender is used.
fn spawn_operator(server: &ApiServer) -> (Stop, Task) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        Operator::new(server.client())
            .gateway(LiteLlmGateway::new(RenderSettings::default()))
            .shutdown_on(async move {
                let _ = stopped.await;
            })
            .run(),
    );
    (stop, task)
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn problems_become_conditions_and_related_objects_rerender_the_gateway() {
    let server = ApiServer::new();
    install_crds_and_class(&server).await;
    server.apply_manifests(GATEWAY).unwrap();
    let (stop, task) = spawn_operator(&server);
    let gateways: Api<AiGateway> = Api::namespaced(server.client(), "team");

    // Neither the Secret nor the Guard exists: the proxy still deploys, and status says why.
    wait_for("ResolvedRefs=False naming both", || async {
        condition(&gateways, "ResolvedRefs")
            .await
            .is_some_and(|(status, _, message)| {
                status == "False"
                    && message.contains("api-key-secrets")
                    && message.contains("guards/pii")
            })
    })
    .await;
    wait_for("Ready despite the missing references", || async {
        condition(&gateways, "Ready")
            .await
            .is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let (_, _, programmed) = condition(&gateways, "Programmed").await.unwrap();
    assert!(
        programmed.contains("warnings:") && programmed.contains("LITELLM_MASTER_KEY"),
        "{programmed}"
    );
    for (alias, source, reason) in [
        ("AiGatewayConfigured", "Programmed", "ConfigurationApplied"),
        ("AiGatewayReady", "Ready", "AiGatewayReady"),
    ] {
        let copy = condition(&gateways, alias).await.unwrap();
        let original = condition(&gateways, source).await.unwrap();
        assert_eq!((&copy.0, &copy.2), (&original.0, &original.2), "{alias}");
        assert_eq!(copy.1, reason, "the Go operator's reason on {alias}");
    }

    // The Guard (in another namespace) appears: the gateway re-renders with it. Only the
    // Guard and GuardrailProvider watches can trigger this.
    server.apply_manifests(GUARD).unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    let config_text = || async {
        config_maps
            .get("gw-config")
            .await
            .ok()
            .and_then(|c| c.data)
            .and_then(|mut d| d.remove("config.yaml"))
            .unwrap_or_default()
    };
    wait_for("the guard rendered", || async {
        config_text().await.contains("guardrail_name: pii")
    })
    .await;
    // Then the Secret: every reference resolves.
    server.apply_manifests(&secret("first")).unwrap();
    wait_for("ResolvedRefs=True", || async {
        condition(&gateways, "ResolvedRefs")
            .await
            .is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let config = config_text().await;
    assert!(config.contains("presidio"), "{config}");
    assert!(
        !config.contains("first"),
        "no secret value in the ConfigMap"
    );

    // A Secret change rolls the pods through the secret-hash annotation.
    let deployments: Api<Deployment> = Api::namespaced(server.client(), "team");
    let hash = |d: Deployment| {
        d.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()
            .remove("gateway.agentic-layer.ai/secret-hash")
            .unwrap()
    };
    let before = hash(deployments.get("gw").await.unwrap());
    server.apply_manifests(&secret("second")).unwrap();
    wait_for("a new secret hash", || async {
        hash(deployments.get("gw").await.unwrap()) != before
    })
    .await;

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A user's config-patch ConfigMap named like the generated `<gw>-config` is never
/// overwritten (nor deleted with the gateway): the gateway reports the name conflict.
#[tokio::test]
async fn a_patch_config_map_named_like_the_generated_one_is_never_overwritten() {
    let server = ApiServer::new();
    install_crds_and_class(&server).await;
    server
        .apply_manifests(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gw-config\n  namespace: team\ndata:\n  patch.yaml: |\n    router_settings:\n      routing_strategy: simple-shuffle\n---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw\n  namespace: team\n  annotations:\n    ai-gateway-litellm.agentic-layer.ai/config-patch: gw-config\nspec:\n  aiModels:\n    - name: gpt-4o\n      provider: openai\n",
        )
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    let before = config_maps.get("gw-config").await.unwrap();
    let (stop, task) = spawn_operator(&server);
    let gateways: Api<AiGateway> = Api::namespaced(server.client(), "team");
    wait_for("Programmed=False NameConflict naming gw-config", || async {
        condition(&gateways, "Programmed")
            .await
            .is_some_and(|(status, reason, message)| {
                status == "False"
                    && reason == "NameConflict"
                    && message.contains("ConfigMap team/gw-config")
            })
    })
    .await;
    // The Go operator's types carry its reason for a child it could not write.
    for alias in ["AiGatewayConfigured", "AiGatewayReady"] {
        let (status, reason, _) = condition(&gateways, alias).await.unwrap();
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "WorkloadFailed"),
            "{alias}"
        );
    }
    let after = config_maps.get("gw-config").await.unwrap();
    assert_eq!(
        after.data, before.data,
        "the user's ConfigMap was overwritten"
    );
    assert!(after.metadata.owner_references.is_none());
    let deployments: Api<Deployment> = Api::namespaced(server.client(), "team");
    assert!(deployments.get_opt("gw").await.unwrap().is_none());

    gateways.delete("gw", &Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        config_maps.get("gw-config").await.unwrap().data,
        before.data,
        "the user's ConfigMap went with the gateway"
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// The Go operator's reasons on its condition types follow the state: a missing
/// config-patch ConfigMap is its `ConfigPatchInvalid` (ours: `RefNotFound`), and once
/// the ConfigMap exists and the Deployment rolled out, `ConfigurationApplied` and
/// `AiGatewayReady`.
#[tokio::test]
async fn the_go_operators_condition_types_carry_its_reasons() {
    let server = ApiServer::builder()
        .deployment_ready_delay(Duration::from_millis(500))
        .build();
    install_crds_and_class(&server).await;
    server
        .apply_manifests(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw\n  namespace: team\n  annotations:\n    ai-gateway-litellm.agentic-layer.ai/config-patch: tuning\nspec:\n  aiModels:\n    - name: gpt-4o\n      provider: openai\n",
        )
        .unwrap();
    let (stop, task) = spawn_operator(&server);
    let gateways: Api<AiGateway> = Api::namespaced(server.client(), "team");
    wait_for("ConfigPatchInvalid on AiGatewayConfigured", || async {
        condition(&gateways, "AiGatewayConfigured")
            .await
            .is_some_and(|(status, reason, _)| status == "False" && reason == "ConfigPatchInvalid")
    })
    .await;
    let (_, ours, _) = condition(&gateways, "ResolvedRefs").await.unwrap();
    assert_eq!(ours, "RefNotFound");
    let (status, reason, _) = condition(&gateways, "AiGatewayReady").await.unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ConfigPatchInvalid")
    );

    server
        .apply_manifests(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tuning\n  namespace: team\ndata:\n  patch.yaml: |\n    router_settings:\n      num_retries: 2\n",
        )
        .unwrap();
    wait_for("AiGatewayReady=True", || async {
        condition(&gateways, "AiGatewayReady")
            .await
            .is_some_and(|(status, reason, _)| status == "True" && reason == "AiGatewayReady")
    })
    .await;
    let (status, reason, _) = condition(&gateways, "AiGatewayConfigured").await.unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "ConfigurationApplied")
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// LiteLLMModelPolicies through the real loop: a valid one reaches the model's entry in
/// the config (its key as an env var from its Secret), hostile or broken ones are refused
/// in their own status with what is wrong, and change nothing of the gateway.
#[tokio::test]
async fn model_policies_reach_the_config_and_hostile_ones_are_refused_in_their_status() {
    let server = ApiServer::new();
    install_crds_and_class(&server).await;
    for crd in litellm_impl::policy::crds() {
        server.install_crd(crd).await.unwrap();
    }
    let group = litellm_impl::policy::GROUP;
    let policy = |name: &str, target: &str, spec: &str| {
        format!(
            "apiVersion: {group}/v1alpha1\nkind: LiteLLMModelPolicy\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n  targetRefs:\n  - {{group: runtime.agentic-layer.ai, kind: AiGateway, name: gw{target}}}\n{spec}"
        )
    };
    let manifests = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n".to_owned(),
        secret("sk-provider"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: own-key\n  namespace: team\nstringData:\n  key: sk-own-value\n".to_owned(),
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw\n  namespace: team\nspec:\n  aiModels:\n  - {name: gpt-4o, provider: openai}\n  - {name: gpt-4o-mini, provider: openai}\n".to_owned(),
        policy("good", ", sectionName: gpt-4o", "  apiBase: https://team.openai.azure.com\n  credentials: {name: own-key, key: key}\n  timeoutSeconds: 30\n"),
        policy("hostile", "", "  apiBase: os.environ/AWS_SECRET_ACCESS_KEY\n"),
        policy("ghost", ", sectionName: nope", "  timeoutSeconds: 5\n"),
        policy("elsewhere", ", namespace: kube-system", "  timeoutSeconds: 5\n"),
    ];
    server.apply_manifests(&manifests.join("---\n")).unwrap();
    let (stop, task) = spawn_operator(&server);

    let policies: Api<litellm_impl::policy::LiteLlmModelPolicy> =
        Api::namespaced(server.client(), "team");
    let accepted = |name: &'static str| {
        let policies = policies.clone();
        async move {
            let policy = policies.get(name).await.ok()?;
            let entry = policy.status?.ancestors.into_iter().next()?;
            let c = entry
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Accepted")?;
            Some((c.status, c.reason, c.message))
        }
    };
    for (name, status, reason, says) in [
        ("good", "True", "Accepted", "in effect"),
        ("hostile", "False", "Invalid", "apiBase"),
        ("ghost", "False", "TargetNotFound", "no model \"nope\""),
        ("elsewhere", "False", "Invalid", "own namespace only"),
    ] {
        wait_for(&format!("policy {name}: {reason}"), || async {
            accepted(name)
                .await
                .is_some_and(|(s, r, m)| s == status && r == reason && m.contains(says))
        })
        .await;
    }
    let configs: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    let config = configs.get("gw-config").await.unwrap();
    let yaml = &config.data.unwrap()["config.yaml"];
    assert!(
        yaml.contains("api_base: https://team.openai.azure.com"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("AWS_SECRET") && !yaml.contains("sk-own-value"),
        "{yaml}"
    );
    assert_eq!(
        yaml.matches("timeout: 30").count(),
        1,
        "only gpt-4o: {yaml}"
    );

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// A routing policy reaches `router_settings` of the gateway it names, waits for its Redis
/// Secret (Accepted, `ResolvedRefs=False`) until it appears, and never rolls a gateway it
/// does not name; a hostile one is refused and changes nothing.
#[tokio::test]
async fn routing_policies_reach_only_their_gateway_and_wait_for_their_redis_secret() {
    let server = ApiServer::new();
    install_crds_and_class(&server).await;
    for crd in litellm_impl::policy::crds() {
        server.install_crd(crd).await.unwrap();
    }
    let group = litellm_impl::policy::GROUP;
    let gateway = |name: &str| {
        format!(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n  aiModels:\n  - {{name: gpt-4o, provider: openai}}\n  - {{name: gpt-4o-mini, provider: openai}}\n"
        )
    };
    let routing = |name: &str, target: &str, spec: &str| {
        format!(
            "apiVersion: {group}/v1alpha1\nkind: LiteLLMRoutingPolicy\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n  targetRefs:\n  - {{group: runtime.agentic-layer.ai, kind: AiGateway, name: {target}}}\n{spec}"
        )
    };
    let manifests = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n".to_owned(),
        secret("sk-provider"),
        gateway("gw"),
        gateway("other"),
        routing(
            "fallbacks",
            "gw",
            "  fallbacks:\n  - {model: gpt-4o, to: [gpt-4o-mini]}\n  retries: 1\n  sharedLimits: {redis: {secretName: redis}}\n",
        ),
        routing(
            "hostile",
            "other",
            "  fallbacks:\n  - {model: gpt-4o, to: [os.environ/AWS_SECRET_ACCESS_KEY]}\n",
        ),
    ];
    server.apply_manifests(&manifests.join("---\n")).unwrap();
    let (stop, task) = spawn_operator(&server);

    let policies: Api<litellm_impl::policy::LiteLlmRoutingPolicy> =
        Api::namespaced(server.client(), "team");
    let condition_of = |name: &'static str, type_: &'static str| {
        let policies = policies.clone();
        async move {
            let policy = policies.get(name).await.ok()?;
            let entry = policy.status?.ancestors.into_iter().next()?;
            let c = find_condition(&entry.conditions, type_)?;
            Some((c.status.clone(), c.reason.clone(), c.message.clone()))
        }
    };
    wait_for("the routing policy waits for its Redis Secret", || async {
        condition_of("fallbacks", "ResolvedRefs")
            .await
            .is_some_and(|(s, _, m)| s == "False" && m.contains("Secret team/redis not found"))
    })
    .await;
    wait_for("the hostile policy is refused", || async {
        condition_of("hostile", "Accepted")
            .await
            .is_some_and(|(s, r, m)| s == "False" && r == "Invalid" && m.contains("does not serve"))
    })
    .await;
    let configs: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    let yaml = |name: &'static str| {
        let configs = configs.clone();
        async move {
            let config = configs.get(&format!("{name}-config")).await.unwrap();
            config.data.unwrap()["config.yaml"].clone()
        }
    };
    let gw = yaml("gw").await;
    assert!(
        gw.contains("router_settings:") && gw.contains("- gpt-4o-mini"),
        "{gw}"
    );
    assert!(
        gw.contains("redis_password: os.environ/LITELLM_REDIS_PASSWORD"),
        "{gw}"
    );
    let other = yaml("other").await;
    assert!(
        !other.contains("router_settings") && !other.contains("AWS_SECRET"),
        "{other}"
    );

    // The Secret appears: the policy resolves, and only `gw` rolls.
    let deployments: Api<Deployment> = Api::namespaced(server.client(), "team");
    let other_before = deployments
        .get("other")
        .await
        .unwrap()
        .metadata
        .resource_version;
    server
        .apply_manifests("apiVersion: v1\nkind: Secret\nmetadata:\n  name: redis\n  namespace: team\nstringData:\n  host: redis.team.svc\n  port: '6379'\n  password: r3dis-pass\n")
        .unwrap();
    wait_for("the routing policy resolves", || async {
        condition_of("fallbacks", "ResolvedRefs")
            .await
            .is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let other_after = deployments
        .get("other")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(
        other_before, other_after,
        "a gateway no policy names never rolls"
    );
    assert!(!yaml("gw").await.contains("r3dis-pass"));

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn limits_on_an_autoscaled_gateway_warn_until_redis_shares_them() {
    let server = ApiServer::new();
    install_crds_and_class(&server).await;
    for crd in litellm_impl::policy::crds() {
        server.install_crd(crd).await.unwrap();
    }
    let group = litellm_impl::policy::GROUP;
    let policy = |kind: &str, name: &str, spec: &str| {
        format!(
            "apiVersion: {group}/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n  targetRefs:\n  - {{group: runtime.agentic-layer.ai, kind: AiGateway, name: gw}}\n{spec}"
        )
    };
    let manifests = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n".to_owned(),
        secret("sk-provider"),
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw\n  namespace: team\nspec:\n  aiModels:\n  - {name: gpt-4o, provider: openai}\n".to_owned(),
        policy("LiteLLMModelPolicy", "limits", "  rpm: 60\n"),
        policy(
            "LiteLLMAvailabilityPolicy",
            "scale",
            "  autoscaling: {minReplicas: 2, maxReplicas: 6}\n",
        ),
    ];
    server.apply_manifests(&manifests.join("---\n")).unwrap();
    let (stop, task) = spawn_operator(&server);
    let gateways: Api<AiGateway> = Api::namespaced(server.client(), "team");
    wait_for(
        "the gateway warns that its limits are per replica",
        || async {
            condition(&gateways, "Programmed")
                .await
                .is_some_and(|(s, _, m)| {
                    s == "True"
                        && m.contains("counted by each replica")
                        && m.contains("replicas set by an autoscaler")
                        && m.contains("gpt-4o")
                })
        },
    )
    .await;

    // Redis shares the limits: the warning goes.
    server
        .apply_manifests(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: redis\n  namespace: team\nstringData:\n  host: redis.team.svc\n  port: '6379'\n  password: r3dis-pass\n---\n{}",
            policy(
                "LiteLLMRoutingPolicy",
                "shared",
                "  sharedLimits: {redis: {secretName: redis}}\n"
            )
        ))
        .unwrap();
    wait_for("the warning goes once Redis shares the limits", || async {
        condition(&gateways, "Programmed")
            .await
            .is_some_and(|(s, _, m)| s == "True" && !m.contains("counted by each replica"))
    })
    .await;

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
