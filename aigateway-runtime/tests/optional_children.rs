//! Child kinds whose CRD may be missing (prometheus-operator's ServiceMonitor is the
//! example users ask for): the operator serves its gateways without the kind,
//! `Context::serves` says so, and once the CRD is installed every gateway is rendered
//! again and gets its child, owned by it; once the CRD is removed, every gateway is
//! rendered again without it, and the operator stays ready.

mod fixtures;

use std::collections::BTreeMap;
use std::time::Duration;

use aigateway_api::{AiGateway, AiGatewaySpec, AiModel};
use aigateway_runtime::{
    AiGatewayKind, Context, DesiredState, GatewayImplementation, ImplementationError, Operator,
    Readiness,
};
use fixtures::{Cluster, create_class, eventually_within, http_get};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, PostParams};
use kube::{Client, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const CONTROLLER: &str = "example.com/widgets";
const NS: &str = "default";

/// The optional child kind: a stand-in for a ServiceMonitor.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "widgets.example.com",
    version = "v1",
    kind = "Widget",
    namespaced
)]
struct WidgetSpec {
    gateway: String,
}

/// A ConfigMap per gateway saying whether widgets are served, and a Widget when they are.
struct Widgets;

#[async_trait::async_trait]
impl GatewayImplementation<AiGatewayKind> for Widgets {
    fn controller_name(&self) -> &str {
        CONTROLLER
    }

    fn optional_child_kinds(&self) -> Vec<ApiResource> {
        vec![ApiResource::erase::<Widget>(&())]
    }

    fn readiness(
        &self,
        _gateway: &AiGateway,
        _observed: &aigateway_runtime::Observed,
    ) -> Readiness {
        Readiness::Ready("configured".into())
    }

    async fn desired_state(
        &self,
        gateway: &AiGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        let served = ctx.serves(&ApiResource::erase::<Widget>(&()));
        let note = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("{}-note", gateway.name_any())),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("widgets".into(), served.to_string())])),
            ..Default::default()
        };
        let mut desired = DesiredState::new().with(&note);
        if served {
            desired = desired.with(&Widget::new(
                &gateway.name_any(),
                WidgetSpec {
                    gateway: gateway.name_any(),
                },
            ));
        }
        Ok(desired)
    }
}

async fn create_gateway(client: &Client, name: &str) {
    let mut gateway = AiGateway::new(
        name,
        AiGatewaySpec {
            ai_gateway_class_name: Some("widgets".into()),
            ai_models: vec![AiModel::new("openai", "gpt")],
            ..Default::default()
        },
    );
    gateway.metadata.namespace = Some(NS.into());
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &gateway)
        .await
        .expect("create gateway");
}

async fn note(client: &Client, gateway: &str) -> Option<String> {
    let map = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get_opt(&format!("{gateway}-note"))
        .await
        .ok()??;
    map.data?.get("widgets").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_child_kind_is_made_once_its_crd_is_installed_and_let_go_once_removed() {
    let cluster = Cluster::testkit().await;
    let client = cluster.client();
    create_class(&client, "widgets", CONTROLLER, false).await;
    create_gateway(&client, "gw").await;
    let running = (Operator::new(client.clone()).gateway(Widgets))
        .admin("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .expect("the operator starts");
    let admin = running.admin_addr().expect("the admin server is bound");
    eventually_within(
        Duration::from_secs(20),
        "the gateway rendered without widgets",
        || async { (note(&client, "gw").await.as_deref() == Some("false")).then_some(()) },
    )
    .await;

    let Cluster::Testkit(server) = &cluster else {
        unreachable!("a testkit cluster")
    };
    server
        .install_crd(Widget::crd())
        .await
        .expect("install CRD");
    // The list is retried with a growing delay while the kind is missing (at most 20 s);
    // no gateway event follows, yet the gateway is rendered again.
    let widgets = Api::<Widget>::namespaced(client.clone(), NS);
    let widget = eventually_within(
        Duration::from_secs(60),
        "the widget made once its CRD is installed",
        || async { widgets.get_opt("gw").await.ok()? },
    )
    .await;
    let gateway = Api::<AiGateway>::namespaced(client.clone(), NS)
        .get("gw")
        .await
        .unwrap();
    let owner = widget.metadata.owner_references.unwrap_or_default();
    assert!(
        owner
            .iter()
            .any(|o| Some(&o.uid) == gateway.metadata.uid.as_ref() && o.controller == Some(true)),
        "the widget is the gateway's child"
    );
    assert_eq!(note(&client, "gw").await.as_deref(), Some("true"));

    // The CRD is removed (its objects go with it): no gateway event follows, yet every
    // gateway is rendered again without the kind, and the operator neither applies it
    // (404s, an error on every gateway) nor reports the kind's watch as failing.
    Api::<CustomResourceDefinition>::all(client.clone())
        .delete("widgets.widgets.example.com", &DeleteParams::default())
        .await
        .expect("delete CRD");
    eventually_within(
        Duration::from_secs(60),
        "the gateway rendered without widgets again",
        || async { (note(&client, "gw").await.as_deref() == Some("false")).then_some(()) },
    )
    .await;
    eventually_within(
        Duration::from_secs(60),
        "ready without the kind",
        || async { (http_get(admin, "/readyz").await.0 == 200).then_some(()) },
    )
    .await;
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    eventually_within(
        Duration::from_secs(60),
        "the gateway Programmed without the kind",
        || async {
            let gateway = gateways.get("gw").await.ok()?;
            let conditions = gateway.status?.conditions;
            let programmed = conditions.iter().find(|c| c.type_ == "Programmed")?;
            (programmed.status == "True"
                && programmed.observed_generation == gateway.metadata.generation)
                .then_some(())
        },
    )
    .await;
    running.stop().await.expect("the operator stops");
}

#[test]
fn optional_child_kinds_get_the_child_verbs() {
    let rules = aigateway_runtime::rbac::ClusterRules::new().gateway(&Widgets);
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        assert!(
            rules.allows("widgets.example.com", "widgets", verb),
            "{verb}"
        );
    }
}
