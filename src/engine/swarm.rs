//! Docker Swarm through the engine API: swarm state, services and their tasks, in plain types.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, HealthConfig, Limit, LocalNodeState, Mount,
    MountTmpfsOptions, MountType, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecPrivileges, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{ListTasksOptionsBuilder, UpdateServiceOptionsBuilder};

use super::{Credentials, Engine, classify, docker_credentials, status_of};
use crate::layout;

/// Is the engine part of a swarm, and can it manage services?
#[derive(Debug, Clone)]
pub(crate) struct SwarmState {
    /// "active", "inactive", "pending", "error", "locked".
    pub(crate) local_state: String,
    /// A manager node (services can only be managed there).
    pub(crate) manager: bool,
    /// Nodes in the swarm (managers and workers).
    pub(crate) nodes: u64,
    /// The engine API version in use, e.g. (1, 41).
    pub(crate) api: (u32, u32),
}

/// A replicated service that publishes one port through the routing mesh, with a health check
/// and a task-by-task start-first rollout that rolls back on failure.
#[derive(Debug, Clone)]
pub(crate) struct ServiceDef {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) labels: HashMap<String, String>,
    pub(crate) container_labels: HashMap<String, String>,
    pub(crate) replicas: u64,
    /// (published port on every node, container port).
    pub(crate) publish: (u16, u16),
    pub(crate) user: String,
    pub(crate) memory_bytes: i64,
    pub(crate) pids_limit: i64,
    /// Shell command run inside the task; exit 0 = healthy.
    pub(crate) health_cmd: String,
    pub(crate) health_interval: Duration,
    pub(crate) health_retries: i64,
    /// Time a started task gets before failed checks count.
    pub(crate) health_start_period: Duration,
    /// How long each updated task is watched for failure before the next one.
    pub(crate) monitor: Duration,
    /// SIGQUIT, then SIGKILL after this long.
    pub(crate) stop_grace: Duration,
}

/// What we need to know about a service.
#[derive(Debug, Clone)]
pub(crate) struct ServiceInfo {
    pub(crate) id: String,
    pub(crate) version: u64,
    pub(crate) labels: HashMap<String, String>,
    pub(crate) image: String,
    pub(crate) replicas: u64,
    /// "updating", "paused", "completed", "`rollback_started`", "`rollback_paused`",
    /// "`rollback_completed`"; None before the first update.
    pub(crate) update_state: Option<String>,
    pub(crate) update_message: Option<String>,
    pub(crate) published_port: Option<u16>,
}

impl ServiceInfo {
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// One task of a service.
#[derive(Debug, Clone)]
pub(crate) struct TaskInfo {
    pub(crate) image: String,
    /// "new", "pending", "starting", "running", "complete", "failed", "shutdown", …
    pub(crate) state: String,
    /// What the orchestrator wants: "running", "shutdown", …
    pub(crate) desired: String,
    pub(crate) error: Option<String>,
}

fn nanos(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

fn to_spec(def: &ServiceDef, api: (u32, u32)) -> ServiceSpec {
    let container = TaskSpecContainerSpec {
        image: Some(def.image.clone()),
        labels: Some(def.container_labels.clone()),
        user: Some(def.user.clone()),
        read_only: Some(true),
        capability_drop: Some(vec!["ALL".into()]),
        // API 1.46 (Docker 27) and later apply it; older engines ignore the field, which
        // `deploy::swarm` reports.
        privileges: (api >= (1, 46)).then(|| TaskSpecContainerSpecPrivileges {
            no_new_privileges: Some(true),
            ..Default::default()
        }),
        mounts: Some(vec![Mount {
            target: Some(layout::TMPFS.into()),
            typ: Some(MountType::TMPFS),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: Some(layout::SITE_TMPFS_BYTES),
                mode: Some(0o1777),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        stop_signal: Some(layout::STOP_SIGNAL.into()),
        stop_grace_period: Some(nanos(def.stop_grace)),
        health_check: Some(HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), def.health_cmd.clone()]),
            interval: Some(nanos(def.health_interval)),
            timeout: Some(nanos(Duration::from_secs(2))),
            retries: Some(def.health_retries),
            start_period: Some(nanos(def.health_start_period)),
            ..Default::default()
        }),
        ..Default::default()
    };
    ServiceSpec {
        name: Some(def.name.clone()),
        labels: Some(def.labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    memory_bytes: Some(def.memory_bytes),
                    pids: Some(def.pids_limit),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(nanos(Duration::from_secs(2))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(def.replicas as i64),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(nanos(def.monitor)),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(nanos(def.monitor)),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::VIP),
            ports: Some(vec![EndpointPortConfig {
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(i64::from(def.publish.1)),
                published_port: Some(i64::from(def.publish.0)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::INGRESS),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    }
}

impl Engine {
    /// The engine's swarm membership and API version.
    pub(crate) async fn swarm_state(&self) -> Result<SwarmState> {
        let info = self
            .docker
            .info()
            .await
            .with_context(|| format!("cannot read the engine's info from {}", self.host))?;
        let swarm = info.swarm.unwrap_or_default();
        let v = self.docker.client_version();
        Ok(SwarmState {
            local_state: match swarm.local_node_state {
                Some(LocalNodeState::EMPTY) | None => "inactive".into(),
                Some(s) => s.to_string(),
            },
            manager: swarm.control_available.unwrap_or(false),
            nodes: swarm.nodes.unwrap_or(0).max(0) as u64,
            api: (v.major_version as u32, v.minor_version as u32),
        })
    }

    /// The service, or None when there is none (or the engine is not a swarm manager).
    pub(crate) async fn service(&self, name: &str) -> Result<Option<ServiceInfo>> {
        let s = match self.docker.inspect_service(name, None).await {
            Ok(s) => s,
            // 503: not a swarm manager (no services at all).
            Err(e) if matches!(status_of(&e), Some(404 | 503)) => return Ok(None),
            Err(e) => {
                return Err(classify(e, name))
                    .with_context(|| format!("cannot inspect service {name}"));
            }
        };
        let spec = s.spec.unwrap_or_default();
        let status = s.update_status;
        Ok(Some(ServiceInfo {
            id: s.id.unwrap_or_default(),
            version: s.version.and_then(|v| v.index).unwrap_or(0),
            labels: spec.labels.unwrap_or_default(),
            image: spec
                .task_template
                .and_then(|t| t.container_spec)
                .and_then(|c| c.image)
                .unwrap_or_default(),
            replicas: spec
                .mode
                .and_then(|m| m.replicated)
                .and_then(|r| r.replicas)
                .unwrap_or(0)
                .max(0) as u64,
            update_state: status.as_ref().and_then(|u| u.state).map(|s| s.to_string()),
            update_message: status.and_then(|u| u.message),
            published_port: spec
                .endpoint_spec
                .and_then(|e| e.ports)
                .and_then(|p| p.into_iter().next())
                .and_then(|p| p.published_port)
                .map(|p| p as u16),
        }))
    }

    /// Create the service (the image must exist on every node that runs a task).
    /// `creds` go to the nodes that pull the image.
    pub(crate) async fn create_service(
        &self,
        def: &ServiceDef,
        api: (u32, u32),
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let resp = self
            .docker
            .create_service(to_spec(def, api), creds.map(docker_credentials))
            .await
            .map_err(|e| classify(e, &def.name))
            .with_context(|| format!("cannot create service {} from {}", def.name, def.image))?;
        Ok(resp.id.unwrap_or_default())
    }

    /// Replace the service's spec (a rolling update when the image changed). `version` is the
    /// one read by [`Engine::service`]; a concurrent change makes this fail with a conflict.
    pub(crate) async fn update_service(
        &self,
        def: &ServiceDef,
        version: u64,
        api: (u32, u32),
        creds: Option<&Credentials>,
    ) -> Result<Vec<String>> {
        let opts = UpdateServiceOptionsBuilder::new()
            .version(version as i32)
            .build();
        let resp = self
            .docker
            .update_service(
                &def.name,
                to_spec(def, api),
                opts,
                creds.map(docker_credentials),
            )
            .await
            .map_err(|e| classify(e, &def.name))
            .with_context(|| format!("cannot update service {} to {}", def.name, def.image))?;
        Ok(resp.warnings.unwrap_or_default())
    }

    /// Remove the service; false when there was none.
    pub(crate) async fn remove_service(&self, name: &str) -> Result<bool> {
        match self.docker.delete_service(name).await {
            Ok(()) => Ok(true),
            Err(e) if matches!(status_of(&e), Some(404 | 503)) => Ok(false),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot remove service {name}")),
        }
    }

    /// Every task of the service still known to the swarm (old ones included).
    pub(crate) async fn service_tasks(&self, service: &str) -> Result<Vec<TaskInfo>> {
        let filters: HashMap<&str, Vec<String>> =
            HashMap::from([("service", vec![service.to_string()])]);
        let opts = ListTasksOptionsBuilder::new().filters(&filters).build();
        let tasks = self
            .docker
            .list_tasks(Some(opts))
            .await
            .with_context(|| format!("cannot list the tasks of service {service}"))?;
        Ok(tasks
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                TaskInfo {
                    image: t
                        .spec
                        .and_then(|s| s.container_spec)
                        .and_then(|c| c.image)
                        .unwrap_or_default(),
                    state: status.state.map(|s| s.to_string()).unwrap_or_default(),
                    desired: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
                    error: status.err,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ServiceDef {
        ServiceDef {
            name: "blog".into(),
            image: "blog:abc".into(),
            labels: HashMap::new(),
            container_labels: HashMap::new(),
            replicas: 3,
            publish: (8080, 8080),
            user: "101:101".into(),
            memory_bytes: 1,
            pids_limit: 2,
            health_cmd: "true".into(),
            health_interval: Duration::from_secs(1),
            health_retries: 3,
            health_start_period: Duration::from_secs(5),
            monitor: Duration::from_secs(5),
            stop_grace: Duration::from_secs(10),
        }
    }

    #[test]
    fn spec_is_hardened_and_rolls_start_first() {
        let spec = to_spec(&def(), (1, 41));
        let json = serde_json::to_value(&spec).unwrap();
        let c = &json["TaskTemplate"]["ContainerSpec"];
        assert_eq!(c["ReadOnly"], true);
        assert_eq!(c["CapabilityDrop"][0], "ALL");
        assert_eq!(c["User"], "101:101");
        assert_eq!(c["StopSignal"], "SIGQUIT");
        assert!(
            c.get("Privileges").is_none(),
            "API 1.41 has no NoNewPrivileges"
        );
        assert_eq!(json["UpdateConfig"]["Order"], "start-first");
        assert_eq!(json["UpdateConfig"]["FailureAction"], "rollback");
        assert_eq!(json["UpdateConfig"]["Parallelism"], 1);
        assert_eq!(json["RollbackConfig"]["Order"], "start-first");
        assert_eq!(json["EndpointSpec"]["Ports"][0]["PublishMode"], "ingress");
        assert_eq!(json["Mode"]["Replicated"]["Replicas"], 3);
        let newer = serde_json::to_value(to_spec(&def(), (1, 47))).unwrap();
        assert_eq!(
            newer["TaskTemplate"]["ContainerSpec"]["Privileges"]["NoNewPrivileges"],
            true
        );
    }
}
