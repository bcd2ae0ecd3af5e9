#!/usr/bin/env python3
"""Turn the published upstream CRDs and samples into this project's own test fixtures.

Run once when upstream changes (needs PyYAML and the reference checkout at ../shared):

    python3 scripts/import-upstream.py [path/to/shared/upstream]

It writes, and the tests read only these outputs (a clone without ../shared still tests):
- aigateway-api/tests/fixtures/upstream-crds/<plural>.runtime.agentic-layer.ai.json:
  the published CRDs of the kinds we implement, reduced to structure (every schema
  `description` removed), keys sorted.
- aigateway-api/tests/fixtures/samples/<name>.yaml: the sample manifests users apply,
  one file per upstream sample, comments dropped, documents kept in order: the Go
  LiteLLM operator's, and agent-runtime-operator's (prefixed `agent-runtime-`: a
  ToolRoute with glob tool filters, a ToolServer, Guards and GuardrailProviders).

The Agent CRD is imported too (not a kind we implement): agent-runtime-operator's
ToolRoute sample declares an Agent, and tests apply that sample unchanged.
"""
import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
UPSTREAM = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "upstream"
KINDS = [
    "aigateways",
    "aigatewayclasses",
    "guards",
    "guardrailproviders",
    "toolgateways",
    "toolgatewayclasses",
    "toolroutes",
    "toolservers",
    "agentgateways",
    "agentgatewayclasses",
    "agents",
]
SAMPLES = {
    "samples_aigateway.yaml": "aigateway.yaml",
    "samples_aigateway_guarded.yaml": "aigateway-guarded.yaml",
    "samples_aigateway_with_patch.yaml": "aigateway-with-patch.yaml",
    "install_aigatewayclass.yaml": "aigatewayclass.yaml",
    "install_toolgatewayclass.yaml": "toolgatewayclass.yaml",
    "samples_toolgateway.yaml": "toolgateway.yaml",
    "samples_toolgateway_guarded.yaml": "toolgateway-guarded.yaml",
    "samples_toolgateway_with_patch.yaml": "toolgateway-with-patch.yaml",
    "samples_backends_tool-server.yaml": "backends-tool-server.yaml",
}
RUNTIME_SAMPLES = {
    "runtime_v1alpha1_toolroute.yaml": "agent-runtime-toolroute.yaml",
    "runtime_v1alpha1_toolserver.yaml": "agent-runtime-toolserver.yaml",
    "runtime_v1alpha1_guard.yaml": "agent-runtime-guard.yaml",
    "runtime_v1alpha1_guardrailprovider.yaml": "agent-runtime-guardrailprovider.yaml",
}


def strip(node):
    """Drop schema descriptions (string values); keep a property *named* description."""
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main():
    crd_dir = ROOT / "aigateway-api/tests/fixtures/upstream-crds"
    crd_dir.mkdir(parents=True, exist_ok=True)
    for plural in KINDS:
        source = UPSTREAM / f"agent-runtime-operator/crds/runtime.agentic-layer.ai_{plural}.yaml"
        crd = strip(yaml.safe_load(source.read_text()))
        crd["metadata"].pop("annotations", None)
        target = crd_dir / f"{plural}.runtime.agentic-layer.ai.json"
        target.write_text(json.dumps(crd, indent=2, sort_keys=True) + "\n")
        print(f"wrote {target.relative_to(ROOT)}")

    sample_dir = ROOT / "aigateway-api/tests/fixtures/samples"
    sample_dir.mkdir(parents=True, exist_ok=True)
    for project, samples in (
        ("ai-gateway-litellm-operator", SAMPLES),
        ("agent-runtime-operator", RUNTIME_SAMPLES),
    ):
        for source_name, target_name in samples.items():
            source = UPSTREAM / project / "samples" / source_name
            documents = [d for d in yaml.safe_load_all(source.read_text()) if d]
            target = sample_dir / target_name
            target.write_text(yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True))
            print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
