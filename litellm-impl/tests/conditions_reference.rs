//! `docs/reference/conditions.md` names every reason the runtime and the LiteLLM
//! implementation can write into a condition: the runtime's, the LiteLLM readiness and
//! reference reasons, every ToolRoute refusal, and the Go operator's reasons on its
//! condition types (`AiGatewayConfigured`, `AiGatewayReady`, `ToolGatewayConfigured`,
//! `ToolGatewayReady`).

use aigateway_api::conditions::Reason;
use aigateway_runtime::{GatewayImplementation, ToolGatewayKind};
use litellm_impl::implementation::REPLICA_FAILURE;
use litellm_impl::tool_gateway::RouteProblemReason;
use litellm_impl::{LiteLlmGateway, LiteLlmToolGateway, ProblemReason};

fn reference() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/reference/conditions.md"
    );
    std::fs::read_to_string(path).expect("docs/reference/conditions.md exists")
}

/// Exhaustive, so a new variant does not compile until it is listed in `ALL` too.
fn route_index(reason: RouteProblemReason) -> usize {
    match reason {
        RouteProblemReason::UpstreamUnresolved => 0,
        RouteProblemReason::InvalidToolFilter => 1,
        RouteProblemReason::InvalidRoute => 2,
        RouteProblemReason::RemovedByPatch => 3,
        RouteProblemReason::RefNotPermitted => 4,
        RouteProblemReason::RouteTooLarge => 5,
        RouteProblemReason::ConfigTooLarge => 6,
    }
}

/// See [`route_index`].
fn problem_index(reason: ProblemReason) -> usize {
    match reason {
        ProblemReason::RefNotFound => 0,
        ProblemReason::InvalidRef => 1,
        ProblemReason::Unsupported => 2,
        ProblemReason::Unauthenticated => 3,
        ProblemReason::InvalidSpec => 4,
        ProblemReason::SuspiciousConfig => 5,
        ProblemReason::PerReplicaLimits => 6,
    }
}

#[test]
fn the_lists_of_reasons_hold_every_variant() {
    let mut routes: Vec<usize> = RouteProblemReason::ALL.map(route_index).into();
    routes.sort();
    assert_eq!(
        routes,
        (0..RouteProblemReason::ALL.len()).collect::<Vec<_>>()
    );
    let mut problems: Vec<usize> = ProblemReason::ALL.map(problem_index).into();
    problems.sort();
    assert_eq!(problems, (0..ProblemReason::ALL.len()).collect::<Vec<_>>());
}

#[test]
fn every_reason_the_code_can_write_is_in_the_conditions_reference() {
    let mut written: Vec<&str> = aigateway_api::conditions::reasons::ALL.to_vec();
    written.push(REPLICA_FAILURE);
    written.extend(RouteProblemReason::ALL.map(RouteProblemReason::as_str));
    // The problems that make ResolvedRefs False; the others are warnings in a message.
    written.extend(
        ProblemReason::ALL
            .into_iter()
            .filter(|r| r.is_unresolved_ref())
            .map(ProblemReason::as_str),
    );
    let ai = GatewayImplementation::condition_aliases(&LiteLlmGateway::default());
    let tool = <LiteLlmToolGateway as GatewayImplementation<ToolGatewayKind>>::condition_aliases(
        &LiteLlmToolGateway::default(),
    );
    assert_eq!(ai.len() + tool.len(), 4, "{ai:?} {tool:?}");
    for alias in ai.iter().chain(&tool) {
        assert!(
            alias.reasons.is_some(),
            "{} has the Go operator's reasons",
            alias.type_
        );
    }

    let doc = reference();
    // Our reasons in a table's `reason` column; the Go operator's in the columns of its
    // condition types.
    let ours = table_column_tokens(&doc, |header| header == "reason");
    let go = table_column_tokens(&doc, |header| {
        header.contains("`AiGatewayConfigured`") || header.contains("`AiGatewayReady`")
    });
    let mut missing: Vec<&str> = written
        .iter()
        .copied()
        .filter(|reason| !ours.contains(*reason))
        .collect();
    for alias in ai.iter().chain(&tool) {
        let reasons = alias.reasons.as_ref().expect("checked above");
        missing.extend(
            reasons
                .all()
                .into_iter()
                .map(Reason::as_str)
                .filter(|r| !go.contains(*r)),
        );
    }
    assert!(
        missing.is_empty(),
        "docs/reference/conditions.md's tables do not name these reasons: {missing:?}"
    );
    for alias in ai.iter().chain(&tool) {
        assert!(
            doc.contains(&format!("`{}`", alias.type_)),
            "{} is not documented",
            alias.type_
        );
    }
}

/// Every `code` span in the cells of the markdown tables' columns whose header cell
/// `column` accepts.
fn table_column_tokens(
    doc: &str,
    column: impl Fn(&str) -> bool,
) -> std::collections::BTreeSet<String> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let mut tokens = std::collections::BTreeSet::new();
    let mut columns: Vec<usize> = Vec::new();
    let mut previous_was_table = false;
    for line in doc.lines() {
        let is_table = line.trim_start().starts_with('|');
        if !is_table {
            previous_was_table = false;
            continue;
        }
        let row = cells(line);
        if !previous_was_table {
            columns = (0..row.len()).filter(|i| column(&row[*i])).collect();
        } else if !row
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            for &i in &columns {
                let Some(cell) = row.get(i) else { continue };
                tokens.extend(cell.split('`').skip(1).step_by(2).map(str::to_owned));
            }
        }
        previous_was_table = true;
    }
    tokens
}
