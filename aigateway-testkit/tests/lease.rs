//! Leader election with kube-lease-manager, which relies on server-side apply conflicts
//! on `coordination.k8s.io/v1` Leases.

use std::time::Duration;

use aigateway_testkit::ApiServer;
use kube_lease_manager::LeaseManagerBuilder;

#[tokio::test]
async fn only_one_lease_manager_leads() {
    let server = ApiServer::new();
    let client = server.client();
    let a = LeaseManagerBuilder::new(client.clone(), "leader")
        .with_identity("a")
        .with_duration(2)
        .with_grace(1)
        .build()
        .await
        .unwrap();
    let b = LeaseManagerBuilder::new(client.clone(), "leader")
        .with_identity("b")
        .with_duration(2)
        .with_grace(1)
        .build()
        .await
        .unwrap();
    assert!(a.changed().await.unwrap(), "a acquires the free lease");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), b.changed())
            .await
            .is_err(),
        "b must not become leader while a holds the lease"
    );
    a.release().await.unwrap();
    let b_leads = tokio::time::timeout(Duration::from_secs(10), b.changed())
        .await
        .expect("b acquires the released lease")
        .unwrap();
    assert!(b_leads);
    let lease = server
        .get_object("coordination.k8s.io/v1", "Lease", Some("default"), "leader")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
}
