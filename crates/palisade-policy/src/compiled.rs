//! Compiled forms of pods' ports and policies' rules, held by the index.

use crate::labels::{CompiledSelector, Interner, Sym};
use crate::model::{ContainerPort, IpBlock, Peer, PortTarget, Protocol, Rule};

/// A declared container port with its name interned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CompiledPort {
    pub(crate) name: Option<Sym>,
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
}

impl CompiledPort {
    pub(crate) fn compile_all(ports: &[ContainerPort], interner: &mut Interner) -> Box<[CompiledPort]> {
        ports
            .iter()
            .map(|p| CompiledPort {
                name: p.name.as_deref().map(|n| interner.intern(n)),
                port: p.port,
                protocol: p.protocol,
            })
            .collect()
    }
}

/// Namespaces a pod peer covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NamespaceMatch {
    /// The policy's own namespace (no `namespaceSelector`).
    Own,
    /// Namespaces whose labels match.
    Selector(CompiledSelector),
}

/// A compiled `from`/`to` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CompiledPeer {
    Pods { namespaces: NamespaceMatch, pods: Option<CompiledSelector> },
    Block(IpBlock),
}

/// A compiled port target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompiledTarget {
    Any,
    Range(u16, u16),
    Named(Sym),
}

/// A compiled rule port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompiledRulePort {
    pub(crate) protocol: Protocol,
    pub(crate) target: CompiledTarget,
}

impl CompiledRulePort {
    /// Whether this rule port admits `port`/`protocol` towards a destination
    /// declaring `dst_ports` (`None`: not a pod, so named ports never match).
    pub(crate) fn admits(self, port: u16, protocol: Protocol, dst_ports: Option<&[CompiledPort]>) -> bool {
        if self.protocol != protocol {
            return false;
        }
        match self.target {
            CompiledTarget::Any => true,
            CompiledTarget::Range(start, end) => (start..=end).contains(&port),
            CompiledTarget::Named(name) => dst_ports.is_some_and(|ports| {
                ports.iter().any(|p| p.name == Some(name) && p.port == port && p.protocol == protocol)
            }),
        }
    }
}

/// A compiled rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompiledRule {
    pub(crate) peers: Box<[CompiledPeer]>,
    pub(crate) ports: Box<[CompiledRulePort]>,
}

impl CompiledRule {
    pub(crate) fn compile(rule: &Rule, interner: &mut Interner) -> Self {
        let peers = rule
            .peers
            .iter()
            .map(|peer| match peer {
                Peer::Pods { namespace_selector, pod_selector } => CompiledPeer::Pods {
                    namespaces: namespace_selector.as_ref().map_or(NamespaceMatch::Own, |s| {
                        NamespaceMatch::Selector(CompiledSelector::compile(s, interner))
                    }),
                    pods: pod_selector.as_ref().map(|s| CompiledSelector::compile(s, interner)),
                },
                Peer::IpBlock(block) => CompiledPeer::Block(block.clone()),
            })
            .collect();
        let ports = rule
            .ports
            .iter()
            .map(|p| CompiledRulePort {
                protocol: p.protocol,
                target: match &p.target {
                    PortTarget::Any => CompiledTarget::Any,
                    PortTarget::Range { start, end } => CompiledTarget::Range(*start, *end),
                    PortTarget::Named(name) => CompiledTarget::Named(interner.intern(name)),
                },
            })
            .collect();
        CompiledRule { peers, ports }
    }
}
