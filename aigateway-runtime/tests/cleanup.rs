//! A class that releases something outside the cluster: declaring a cleanup is what
//! puts the finalizer on its gateways; a failing cleanup keeps the gateway until it
//! succeeds; a class without one leaves no finalizer behind.

mod fixtures;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigateway_api::AiGateway;
use aigateway_runtime::implementation::GatewayCleanup;
use aigateway_runtime::{
    Context, DesiredState, GatewayImplementation, ImplementationError, Operator,
};
use fixtures::*;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};

const FINALIZER: &str = "aigateway.agentic-layer.ai/cleanup";

/// [`Minimal`] plus a cleanup that records the gateways it released and fails while
/// `failing` is set.
struct Registered {
    inner: Minimal,
    record: Arc<Record>,
}

#[derive(Default)]
struct Record {
    released: Mutex<Vec<String>>,
    attempts: AtomicUsize,
    failing: AtomicBool,
}

#[async_trait::async_trait]
impl GatewayImplementation for Registered {
    fn controller_name(&self) -> &str {
        self.inner.controller_name()
    }

    async fn desired_state(
        &self,
        gateway: &AiGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        self.inner.desired_state(gateway, ctx).await
    }

    fn cleanup(&self) -> Option<&dyn GatewayCleanup> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl GatewayCleanup for Registered {
    async fn cleanup(&self, gateway: &AiGateway, _: &Context) -> Result<(), ImplementationError> {
        self.record.attempts.fetch_add(1, Ordering::SeqCst);
        if self.record.failing.load(Ordering::SeqCst) {
            return Err(ImplementationError::transient(std::io::Error::other(
                "the registry is down",
            )));
        }
        self.record
            .released
            .lock()
            .unwrap()
            .push(gateway.name_any());
        Ok(())
    }
}

async fn finalizers(gateways: &Api<AiGateway>, name: &str) -> Option<Vec<String>> {
    gateways
        .get(name)
        .await
        .ok()
        .map(|g| g.finalizers().to_vec())
}

#[tokio::test]
async fn a_declared_cleanup_holds_the_gateway_until_it_succeeded() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let registered = Arc::new(Record::default());
    registered.failing.store(true, Ordering::SeqCst);
    let running = start(Operator::new(client.clone()).gateway(Registered {
        inner: Minimal::default(),
        record: registered.clone(),
    }));
    create_gateway(&client, &gateway("gw", None, &["m"])).await;
    wait_condition(&client, "gw", "Ready", "True").await;
    let gateways: Api<AiGateway> = Api::namespaced(client.clone(), NS);
    assert!(
        finalizers(&gateways, "gw")
            .await
            .unwrap()
            .contains(&FINALIZER.to_owned())
    );

    gateways
        .delete("gw", &DeleteParams::default())
        .await
        .unwrap();
    // The cleanup fails: the gateway stays, Terminating, and the cleanup is retried.
    eventually_within(Duration::from_secs(20), "two failed attempts", || async {
        (registered.attempts.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert!(
        finalizers(&gateways, "gw").await.is_some(),
        "gone before cleanup"
    );
    assert!(registered.released.lock().unwrap().is_empty());

    registered.failing.store(false, Ordering::SeqCst);
    eventually_within(Duration::from_secs(60), "the gateway gone", || async {
        finalizers(&gateways, "gw").await.is_none().then_some(())
    })
    .await;
    assert_eq!(*registered.released.lock().unwrap(), vec!["gw".to_owned()]);
    running.stop().await;
}

#[tokio::test]
async fn a_class_without_cleanup_puts_no_finalizer_on_its_gateways() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let running = start(operator(client.clone(), Minimal::default()));
    create_gateway(&client, &gateway("gw", None, &["m"])).await;
    wait_condition(&client, "gw", "Ready", "True").await;
    let gateways: Api<AiGateway> = Api::namespaced(client.clone(), NS);
    assert!(
        !finalizers(&gateways, "gw")
            .await
            .unwrap()
            .contains(&FINALIZER.to_owned())
    );
    gateways
        .delete("gw", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within(Duration::from_secs(10), "the gateway gone", || async {
        finalizers(&gateways, "gw").await.is_none().then_some(())
    })
    .await;
    running.stop().await;
}
