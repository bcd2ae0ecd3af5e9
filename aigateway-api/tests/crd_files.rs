//! `deploy/crds/` must hold exactly the CRDs generated from the types.

use std::path::PathBuf;

use aigateway_api::crds;

const REGENERATE: &str = "UPDATE_GOLDEN=1 cargo test -p aigateway-api --test crd_files";

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
}

#[test]
fn deploy_crds_are_up_to_date() {
    let dir = crd_dir();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut expected_files = Vec::new();
    let mut stale = Vec::new();
    for crd in crds::all() {
        let file = crds::file_name(&crd);
        let text = crds::to_yaml(&crd).expect("a CRD serialises to YAML");
        let path = dir.join(&file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(file.clone());
        }
        expected_files.push(file);
    }
    let mut extra: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| {
                    name.ends_with(".runtime.agentic-layer.ai.yaml")
                        && !expected_files.contains(name)
                })
                .collect()
        })
        .unwrap_or_default();
    extra.sort();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "deploy/crds is stale (changed or missing: {stale:?}; no longer generated: {extra:?}).\nRegenerate with:\n    {REGENERATE}"
    );
}

#[test]
fn the_generated_files_parse_back_into_the_same_crds() {
    for crd in crds::all() {
        let text = crds::to_yaml(&crd).unwrap();
        let back: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, crd);
    }
}
