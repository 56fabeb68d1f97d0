//! What the running kernel offers the sandbox: Landlock (and which parts) and seccomp filters.

use landlock::{Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetError, Scope, ABI};
use serde::{Deserialize, Serialize};

/// The sandbox layers the running kernel supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelSupport {
    /// Highest Landlock ABI the kernel supports among those this sandbox uses (1 to 6; 0: no
    /// Landlock). 6 is the newest the sandbox needs, so a newer kernel also reports 6.
    pub landlock_abi: u32,
    /// Landlock restricts TCP bind/connect (ABI 4).
    pub landlock_network: bool,
    /// Landlock scopes signals and abstract unix sockets to the sandbox (ABI 6).
    pub landlock_scopes: bool,
    /// The kernel can install seccomp BPF filters that return an errno.
    pub seccomp_filter: bool,
}

impl KernelSupport {
    /// The reasons untrusted code may not run here; empty when every required layer exists.
    pub fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.landlock_abi == 0 {
            out.push("the kernel has no Landlock (needs Linux 5.13+ with landlock in the lsm= list)".to_string());
        }
        if !self.seccomp_filter {
            out.push("the kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER)".to_string());
        }
        out
    }

    /// Whether both required layers (Landlock and seccomp) exist.
    pub fn sandbox_possible(&self) -> bool {
        self.missing().is_empty()
    }
}

/// Asks the running kernel which sandbox layers it supports. Cheap: it creates (and closes)
/// a few Landlock rulesets and reads `/proc`; it restricts nothing.
pub fn probe() -> KernelSupport {
    let fs = |abi: ABI| supported(|r| r.handle_access(AccessFs::from_all(abi)));
    let mut landlock_abi = 0;
    for (n, abi) in [(1, ABI::V1), (2, ABI::V2), (3, ABI::V3), (5, ABI::V5)] {
        if fs(abi) {
            landlock_abi = n;
        }
    }
    let landlock_network = supported(|r| r.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp));
    if landlock_network && landlock_abi >= 3 {
        landlock_abi = landlock_abi.max(4);
    }
    let landlock_scopes = supported(|r| r.scope(Scope::Signal | Scope::AbstractUnixSocket));
    if landlock_scopes {
        landlock_abi = 6;
    }
    KernelSupport { landlock_abi, landlock_network, landlock_scopes, seccomp_filter: seccomp_filter_available() }
}

fn supported(f: impl FnOnce(Ruleset) -> Result<Ruleset, RulesetError>) -> bool {
    let ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    match f(ruleset) {
        Ok(r) => r.create().is_ok(),
        Err(_) => false,
    }
}

fn seccomp_filter_available() -> bool {
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    actions.split_whitespace().any(|a| a == "errno") && status.contains("Seccomp_filters:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_layers_are_named() {
        let none = KernelSupport { landlock_abi: 0, landlock_network: false, landlock_scopes: false, seccomp_filter: false };
        let missing = none.missing();
        assert_eq!(missing.len(), 2);
        assert!(missing[0].contains("Landlock") && missing[1].contains("seccomp"));
        assert!(!none.sandbox_possible());
        let full = KernelSupport { landlock_abi: 6, landlock_network: true, landlock_scopes: true, seccomp_filter: true };
        assert!(full.sandbox_possible());
    }
}
