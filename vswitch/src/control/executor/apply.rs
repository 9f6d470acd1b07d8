//! Whole-configuration requests: apply, export, and the host's interfaces.
//!
//! `apply` checks the desired configuration in full (`config::apply`),
//! plans the steps from the running one (`config::plan`), checks what only
//! this host can tell (the interfaces new ports bind exist), and only then
//! runs the steps one by one through the same code as the single requests,
//! each saved before it reaches the datapath. Ports that do not change are
//! never touched, so they keep forwarding throughout. Every other client
//! waits while a plan runs (requests go through the executor one at a
//! time). If a step fails, the reply says which steps were applied and
//! which were not; the file and the switch agree at every step.

use super::{Executor, Outcome};
use crate::config::{apply, plan, Config, PortSpec};
use crate::control::protocol::{PlanStep, Reply, Request};
use crate::port::PortKind;

impl Executor {
    pub(super) async fn apply(&mut self, target: Config, dry_run: bool) -> Outcome {
        apply::validate(&target).map_err(|e| format!("invalid configuration: {e}"))?;
        let steps = plan::plan(&self.config, &target);
        self.preflight(&steps)?;
        let report: Vec<PlanStep> = steps
            .iter()
            .map(|r| PlanStep {
                step: plan::step_text(r),
                request: r.clone(),
            })
            .collect();
        if dry_run || steps.is_empty() {
            return Ok(Reply::ok(&report));
        }
        tracing::info!(steps = steps.len(), "applying a configuration");
        for (i, step) in steps.into_iter().enumerate() {
            if let Err(e) = self.run_step(step).await {
                let done: Vec<&str> = report[..i].iter().map(|s| s.step.as_str()).collect();
                let left: Vec<&str> = report[i + 1..].iter().map(|s| s.step.as_str()).collect();
                tracing::warn!(step = %report[i].step, "apply stopped: {e}");
                return Err(format!(
                    "step {} of {} failed: {}: {e}\napplied: {}\nnot applied: {}",
                    i + 1,
                    report.len(),
                    report[i].step,
                    if done.is_empty() {
                        "none".to_string()
                    } else {
                        done.join("; ")
                    },
                    if left.is_empty() {
                        "none".to_string()
                    } else {
                        left.join("; ")
                    },
                ));
            }
        }
        // The steps leave the same configuration in another order (new
        // bridges and ports last); keep the operator's order, so `export`
        // gives back what was applied.
        if plan::plan(&self.config, &target).is_empty() && self.config != target {
            match target.save(&self.state_dir) {
                Ok(()) => self.config = target,
                Err(e) => tracing::warn!("saving the applied order: {e}"),
            }
        }
        Ok(Reply::ok(&report))
    }

    /// What only this host can tell, checked before any step runs: the
    /// interfaces that new afpacket ports and bonds bind are there.
    fn preflight(&self, steps: &[Request]) -> Result<(), String> {
        for step in steps {
            let Request::PortAdd {
                bridge,
                port,
                options,
            } = step
            else {
                continue;
            };
            let spec = PortSpec::parse(port, options).map_err(|e| format!("port {port:?}: {e}"))?;
            if spec.kind != PortKind::Afpacket && spec.kind != PortKind::Bond {
                continue;
            }
            for iface in spec.ifaces() {
                if !std::path::Path::new("/sys/class/net").join(iface).exists() {
                    let what = if spec.bond.is_some() {
                        "members"
                    } else {
                        "iface"
                    };
                    return Err(format!(
                        "invalid configuration: bridge {bridge:?} port {port:?}: {what}: no interface {iface:?} on this host"
                    ));
                }
            }
        }
        Ok(())
    }

    /// One step of a plan, through the same code as the request.
    /// Runs one step; a step that succeeds is a `config` event for
    /// monitors, like the same request sent alone.
    async fn run_step(&mut self, step: Request) -> Outcome {
        let change = self
            .events
            .as_ref()
            .and_then(|_| crate::events::config_change(&step));
        let outcome = self.run_plan_step(step).await;
        if let (Some(hub), Some(change), Ok(_)) = (&self.events, change, &outcome) {
            hub.publish(change);
        }
        outcome
    }

    async fn run_plan_step(&mut self, step: Request) -> Outcome {
        match step {
            Request::BridgeAdd { bridge, options } => self.bridge_add(bridge, options).await,
            Request::BridgeSet { bridge, options } => self.bridge_set(bridge, options).await,
            Request::BridgeDel { bridge } => self.bridge_del(bridge).await,
            Request::PortAdd {
                bridge,
                port,
                options,
            } => self.port_add(bridge, port, options).await,
            Request::PortDel { bridge, port } => self.port_del(bridge, port).await,
            Request::PortSet { port, options } => self.port_set(port, options).await,
            Request::FdbAdd {
                bridge,
                mac,
                port,
                vlan,
                remote,
            } => self.fdb_add(bridge, mac, port, vlan, remote).await,
            Request::FdbDel { bridge, mac, vlan } => self.fdb_del(bridge, mac, vlan).await,
            Request::EvpnSet { bridge, options } => self.evpn_set(bridge, options).await,
            Request::EvpnDel { bridge } => self.evpn_del(bridge).await,
            other => Err(format!("not a plan step: {other:?}")),
        }
    }

    pub(super) fn export(&self) -> Outcome {
        Ok(Reply::ok(&self.config))
    }

    /// The host's interfaces, each with the bridge and port that use it.
    pub(super) async fn iface_list(&self) -> Outcome {
        let mut rows = tokio::task::spawn_blocking(crate::hostnic::list)
            .await
            .map_err(|e| format!("listing interfaces: {e}"))??;
        for b in &self.config.bridges {
            for p in &b.ports {
                let Ok(spec) = PortSpec::parse(&p.name, &p.options) else {
                    continue;
                };
                let role = if spec.bond.is_some() {
                    "bond member"
                } else {
                    "iface"
                };
                for iface in spec.ifaces() {
                    if let Some(row) = rows.iter_mut().find(|r| r.name == iface) {
                        row.bridge = Some(b.name.clone());
                        row.port = Some(p.name.clone());
                        row.role = Some(role.to_string());
                    }
                }
            }
        }
        Ok(Reply::ok(&rows))
    }
}
