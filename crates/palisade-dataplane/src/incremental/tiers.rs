//! The cluster policies' part of an update: which of them a change made
//! stale, their sets brought up to date from the changed pods (or the
//! policy recompiled), patched element by element or re-rendered with the
//! pods whose list chains hold their rules.

use std::collections::BTreeSet;
use std::hash::BuildHasher;

use palisade_policy::{Changes, ClusterIndex, ObjectKey, PodId};

use super::{Incremental, Owner, UpdateStats};
use crate::compile::needed_tiers;
use crate::members::PodRef;
use crate::patch::patch_policy;
use crate::ruleset::Table;

impl<S: BuildHasher + Default> Incremental<S> {
    /// Brings the cluster policies some local pod lists up to date: those
    /// that changed, or whose sets a changed pod, namespace or Node can
    /// change, are recompiled, then patched element by element when their
    /// rules kept their shape and actions, else re-rendered (with the pods
    /// whose list chains inline them, for policies with Pass rules).
    pub(super) fn update_tiers(
        &mut self,
        index: &ClusterIndex,
        changes: &Changes,
        changed_pods: &[(PodRef, Option<PodId>)],
        dirty: &mut BTreeSet<Owner>,
        (patched_old, patched_new): (&mut Table, &mut Table),
        stats: &mut UpdateStats,
    ) {
        let needed = needed_tiers(&self.program.pods);
        let mut inlined_changed = BTreeSet::new();
        for name in &needed {
            let Some(id) = index.cluster_policy_id(name) else { continue };
            let stale = !self.program.tiers.contains_key(name)
                || changes.cluster_policies.contains(name)
                || !changes.namespaces.is_empty()
                || !changes.nodes.is_empty()
                || changed_pods.iter().any(|(key, pod)| {
                    self.deps.get(name).is_some_and(|d| d.contains(key))
                        || pod.is_some_and(|p| index.cluster_pod_may_affect(id, p))
                });
            if !stale {
                continue;
            }
            // Only pods changed for it: update its sets from the changed
            // pods alone; otherwise recompile it.
            let pods_only =
                !changes.cluster_policies.contains(name) && changes.namespaces.is_empty() && changes.nodes.is_empty();
            let program = match self.program.tiers.get(name) {
                Some(old) if pods_only => {
                    stats.policies_updated += 1;
                    let members = self.members.entry(name.clone()).or_default();
                    let deps = self.deps.entry(name.clone()).or_default();
                    crate::compile_tiers::update_tier_members(
                        index,
                        id,
                        &self.scope,
                        old.clone(),
                        (members, deps),
                        changed_pods,
                    )
                }
                _ => {
                    stats.policies_compiled += 1;
                    let (program, deps, members) =
                        crate::compile_tiers::compile_tier(index, id, &self.scope, &mut self.keys);
                    self.deps.insert(name.clone(), deps);
                    self.members.insert(name.clone(), members);
                    program
                }
            };
            match self.program.tiers.get(name) {
                Some(old) if *old == program => {}
                Some(old)
                    if old.actions == program.actions
                        && patch_policy(&mut self.rendered, &old.rules, &program.rules, patched_old, patched_new) =>
                {
                    stats.policies_patched += 1;
                }
                _ => {
                    inlined_changed.insert(name.clone());
                    dirty.insert(Owner::Tier(name.clone()));
                }
            }
            self.program.tiers.insert(name.clone(), program);
        }
        let gone: Vec<ObjectKey> = self.program.tiers.keys().filter(|n| !needed.contains(*n)).cloned().collect();
        for name in gone {
            self.program.tiers.remove(&name);
            self.deps.remove(&name);
            self.members.remove(&name);
            dirty.insert(Owner::Tier(name));
        }
        // List chains inline the rules of policies with Pass rules: the pods
        // whose lists name a re-rendered one get new list chains.
        if !inlined_changed.is_empty() {
            for (key, pod) in &self.program.pods {
                if pod.admin.iter().chain(&pod.baseline).flatten().any(|p| inlined_changed.contains(p)) {
                    dirty.insert(Owner::Pod(key.clone()));
                }
            }
        }
    }
}
