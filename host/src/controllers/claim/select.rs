//! Which Servers a claim may bind (pure): taints against tolerations, the claimability rules
//! of metal-operator, label selectors, and the order in which a claim tries candidates.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::api::common::PowerState;
use crate::api::server::{Taint, TaintEffect};
use crate::api::server_claim::{LabelSelector, Toleration, TolerationOperator};
use crate::api::{Server, ServerClaim, ServerState};

/// A claim's identity as a Server's `spec.serverClaimRef` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimKey {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
}

impl ClaimKey {
    /// The key of `claim`.
    pub fn of(claim: &ServerClaim) -> Self {
        Self {
            namespace: claim.namespace().unwrap_or_default(),
            name: claim.name_any(),
        }
    }

    /// The claim `server` is bound to, if any.
    pub fn bound_to(server: &Server) -> Option<Self> {
        server.spec.server_claim_ref.as_ref().map(|r| Self {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })
    }
}

impl std::fmt::Display for ClaimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a Server cannot be bound by a claim (one reason: the first rule it breaks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Bound to another claim.
    ClaimedByAnother(ClaimKey),
    /// Not in state `Available` (the state it is in).
    NotAvailable(Option<ServerState>),
    /// Powered on, or its power state is not known yet.
    NotPoweredOff(Option<PowerState>),
    /// `spec.unclaimable` is true.
    Unclaimable,
    /// Taints the claim does not tolerate (their keys).
    TaintsNotTolerated(Vec<String>),
    /// Being deleted.
    Deleting,
    /// It changed every time this claim tried to bind it (others are binding it).
    Contended,
}

impl Refusal {
    /// A short phrase for one Server's refusal, for a condition message.
    pub fn describe(&self) -> String {
        match self {
            Self::ClaimedByAnother(claim) => format!("bound to claim {claim}"),
            Self::NotAvailable(Some(state)) => format!("in state {state:?}, not Available"),
            Self::NotAvailable(None) => String::from("not discovered yet"),
            Self::NotPoweredOff(Some(power)) => {
                format!("powered {power:?}; only a powered-off server is claimed")
            }
            Self::NotPoweredOff(None) => String::from("power state not known yet"),
            Self::Unclaimable => String::from("marked unclaimable"),
            Self::TaintsNotTolerated(keys) => {
                format!("tainted {} (not tolerated)", keys.join(", "))
            }
            Self::Deleting => String::from("being deleted"),
            Self::Contended => String::from("changed while being bound; tried again later"),
        }
    }

    /// The kind of refusal, for counting refusals of many Servers in one message.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ClaimedByAnother(_) => "bound to other claims",
            Self::NotAvailable(_) => "not Available",
            Self::NotPoweredOff(_) => "not powered off",
            Self::Unclaimable => "unclaimable",
            Self::TaintsNotTolerated(_) => "tainted",
            Self::Deleting => "being deleted",
            Self::Contended => "contended",
        }
    }
}

/// The keys of `taints` that keep a claim with `tolerations` away: taints with effect
/// `NoBind` (the default) that no toleration matches. `Evict` taints keep nothing away (as in
/// metal-operator, the effect is reserved).
pub fn untolerated(taints: &[Taint], tolerations: &[Toleration]) -> Vec<String> {
    taints
        .iter()
        .filter(|taint| taint.effect.unwrap_or(TaintEffect::NoBind) == TaintEffect::NoBind)
        .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
        .map(|taint| taint.key.clone())
        .collect()
}

/// Whether `toleration` matches `taint`: same key, same effect when the toleration names one,
/// and the same value unless the operator is `Exists`.
fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.key != taint.key {
        return false;
    }
    if let Some(effect) = toleration.effect
        && effect != taint.effect.unwrap_or(TaintEffect::NoBind)
    {
        return false;
    }
    match toleration.operator.unwrap_or(TolerationOperator::Equal) {
        TolerationOperator::Exists => true,
        TolerationOperator::Equal => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
    }
}

/// Whether `claim` may bind `server` now. A Server already bound to this claim passes the
/// claim-reference rule (the claim finishes a binding it started).
pub fn claimability(
    server: &Server,
    claim: &ClaimKey,
    tolerations: &[Toleration],
) -> Result<(), Refusal> {
    if server.metadata.deletion_timestamp.is_some() {
        return Err(Refusal::Deleting);
    }
    if let Some(bound) = ClaimKey::bound_to(server) {
        if &bound != claim {
            return Err(Refusal::ClaimedByAnother(bound));
        }
        // Ours already: the remaining rules were judged when it was bound.
        return Ok(());
    }
    let status = server.status.as_ref();
    let state = status.and_then(|s| s.state);
    if state != Some(ServerState::Available) {
        return Err(Refusal::NotAvailable(state));
    }
    if server.spec.unclaimable == Some(true) {
        return Err(Refusal::Unclaimable);
    }
    let power = status.and_then(|s| s.power_state);
    if power != Some(PowerState::Off) {
        return Err(Refusal::NotPoweredOff(power));
    }
    let keys = untolerated(&server.spec.taints, tolerations);
    if !keys.is_empty() {
        return Err(Refusal::TaintsNotTolerated(keys));
    }
    Ok(())
}

/// A claim's label selector in the form that matches labels.
///
/// # Errors
/// The selector's message when it is invalid (an unknown operator, `In` without values).
pub fn selector(selector: &LabelSelector) -> Result<Selector, String> {
    let value = serde_json::to_value(selector).map_err(|e| e.to_string())?;
    let selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
        serde_json::from_value(value).map_err(|e| e.to_string())?;
    Selector::try_from(selector).map_err(|e| e.to_string())
}

/// Whether `selector` selects `labels`.
pub fn selects(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    selector.matches(labels)
}

/// The order in which a claim tries candidate Servers: by a hash of claim and Server
/// (rendezvous hashing), so that many claims with the same selector spread over the Servers
/// instead of all racing for the first one, and each claim's order is stable.
pub fn order<S: std::borrow::Borrow<Server>>(claim_uid: &str, servers: &mut [S]) {
    servers.sort_by_cached_key(|server| {
        let name = server.borrow().name_any();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (claim_uid, &name).hash(&mut hasher);
        (hasher.finish(), name)
    });
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::api::common::ObjectReference;
    use crate::api::{ServerSpec, ServerStatus};

    fn taint(key: &str, value: Option<&str>, effect: Option<TaintEffect>) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect,
        }
    }

    fn toleration(
        key: &str,
        operator: Option<TolerationOperator>,
        value: Option<&str>,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.into(),
            operator,
            value: value.map(Into::into),
            effect,
        }
    }

    // Ported from metal-operator's taints_test.go cases, plus the defaults.
    #[rstest]
    #[case::no_taints(vec![], vec![], true)]
    #[case::untolerated(vec![taint("gpu", Some("true"), None)], vec![], false)]
    #[case::equal_value(vec![taint("gpu", Some("true"), None)], vec![toleration("gpu", Some(TolerationOperator::Equal), Some("true"), None)], true)]
    #[case::equal_is_the_default(vec![taint("gpu", Some("true"), None)], vec![toleration("gpu", None, Some("true"), None)], true)]
    #[case::other_value(vec![taint("gpu", Some("true"), None)], vec![toleration("gpu", None, Some("false"), None)], false)]
    #[case::exists_ignores_value(vec![taint("gpu", Some("a"), None)], vec![toleration("gpu", Some(TolerationOperator::Exists), None, None)], true)]
    #[case::other_key(vec![taint("gpu", None, None)], vec![toleration("fpga", Some(TolerationOperator::Exists), None, None)], false)]
    #[case::effect_must_match(vec![taint("gpu", None, Some(TaintEffect::NoBind))], vec![toleration("gpu", Some(TolerationOperator::Exists), None, Some(TaintEffect::Evict))], false)]
    #[case::effect_named(vec![taint("gpu", None, None)], vec![toleration("gpu", Some(TolerationOperator::Exists), None, Some(TaintEffect::NoBind))], true)]
    #[case::evict_keeps_nothing_away(vec![taint("gpu", None, Some(TaintEffect::Evict))], vec![], true)]
    #[case::every_taint_needs_one(vec![taint("a", None, None), taint("b", None, None)], vec![toleration("a", Some(TolerationOperator::Exists), None, None)], false)]
    fn taints_keep_away_claims_that_do_not_tolerate_them(
        #[case] taints: Vec<Taint>,
        #[case] tolerations: Vec<Toleration>,
        #[case] bindable: bool,
    ) {
        assert_eq!(untolerated(&taints, &tolerations).is_empty(), bindable);
    }

    fn server(name: &str) -> Server {
        let spec: ServerSpec = serde_json::from_value(serde_json::json!({})).expect("empty spec");
        let mut server = Server::new(name, spec);
        server.status = Some(ServerStatus {
            state: Some(ServerState::Available),
            power_state: Some(PowerState::Off),
            ..Default::default()
        });
        server
    }

    fn key(name: &str) -> ClaimKey {
        ClaimKey {
            namespace: "metal".into(),
            name: name.into(),
        }
    }

    #[test]
    fn an_available_powered_off_untainted_server_is_claimable() {
        assert_eq!(claimability(&server("s"), &key("c"), &[]), Ok(()));
    }

    #[test]
    fn each_rule_refuses_with_its_own_reason() {
        let mut bound = server("s");
        bound.spec.server_claim_ref = Some(ObjectReference {
            namespace: "metal".into(),
            name: "other".into(),
        });
        assert_eq!(
            claimability(&bound, &key("c"), &[]),
            Err(Refusal::ClaimedByAnother(key("other")))
        );
        assert_eq!(claimability(&bound, &key("other"), &[]), Ok(()));

        let mut discovering = server("s");
        discovering.status.as_mut().expect("status").state = Some(ServerState::Discovery);
        assert_eq!(
            claimability(&discovering, &key("c"), &[]),
            Err(Refusal::NotAvailable(Some(ServerState::Discovery)))
        );

        let mut on = server("s");
        on.status.as_mut().expect("status").power_state = Some(PowerState::On);
        assert_eq!(
            claimability(&on, &key("c"), &[]),
            Err(Refusal::NotPoweredOff(Some(PowerState::On)))
        );

        let mut unclaimable = server("s");
        unclaimable.spec.unclaimable = Some(true);
        assert_eq!(
            claimability(&unclaimable, &key("c"), &[]),
            Err(Refusal::Unclaimable)
        );

        let mut tainted = server("s");
        tainted.spec.taints = vec![taint("burn-in", None, None)];
        assert_eq!(
            claimability(&tainted, &key("c"), &[]),
            Err(Refusal::TaintsNotTolerated(vec!["burn-in".into()]))
        );
        let exists = toleration("burn-in", Some(TolerationOperator::Exists), None, None);
        assert_eq!(claimability(&tainted, &key("c"), &[exists]), Ok(()));
    }

    #[test]
    fn selectors_match_labels_and_name_what_is_invalid() {
        let by_label = selector(&LabelSelector {
            match_labels: [("pool".to_owned(), "gpu".to_owned())].into(),
            match_expressions: Vec::new(),
        })
        .expect("valid");
        assert!(selects(&by_label, &[("pool".into(), "gpu".into())].into()));
        assert!(!selects(&by_label, &[("pool".into(), "cpu".into())].into()));
        let invalid = selector(&LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![crate::api::server_claim::LabelSelectorRequirement {
                key: "pool".into(),
                operator: "Near".into(),
                values: vec![],
            }],
        });
        assert!(invalid.is_err(), "{invalid:?}");
    }

    #[test]
    fn claims_spread_over_candidates_in_a_stable_order() {
        let servers: Vec<Server> = (0..30).map(|i| server(&format!("s{i}"))).collect();
        let firsts: std::collections::BTreeSet<String> = (0..50)
            .map(|claim| {
                let mut candidates: Vec<&Server> = servers.iter().collect();
                order(&format!("uid-{claim}"), &mut candidates);
                candidates[0].name_any()
            })
            .collect();
        // 50 claims do not all try the same Server first.
        assert!(firsts.len() > 15, "{firsts:?}");
        let mut once: Vec<&Server> = servers.iter().collect();
        let mut twice: Vec<&Server> = servers.iter().rev().collect();
        order("uid", &mut once);
        order("uid", &mut twice);
        let names = |list: &[&Server]| list.iter().map(|s| s.name_any()).collect::<Vec<_>>();
        assert_eq!(names(&once), names(&twice));
    }
}
