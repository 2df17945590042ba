//! The project's private network and the edge's volume.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow};
use bollard::models::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, VolumeCreateRequest,
};
use bollard::query_parameters::RemoveVolumeOptionsBuilder;

use super::{Engine, status_of};

impl Engine {
    /// Create the network if it does not exist.
    pub(crate) async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<()> {
        self.bounded(format!("create network {name}"), async {
            if self.docker.inspect_network(name, None).await.is_ok() {
                return Ok(());
            }
            let req = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            match self.docker.create_network(req).await {
                Ok(_) => Ok(()),
                Err(e) if status_of(&e) == Some(409) => Ok(()),
                Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot create network {name}")),
            }
        })
        .await
    }

    /// The gateway address of a network (the host's address on it), if it has one.
    pub(crate) async fn network_gateway(&self, name: &str) -> Result<Option<std::net::IpAddr>> {
        self.bounded(format!("inspect network {name}"), async {
            let net = self
                .docker
                .inspect_network(name, None)
                .await
                .with_context(|| format!("cannot inspect network {name}"))?;
            Ok(net
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .iter()
                .find_map(|c| c.gateway.as_ref()?.parse().ok()))
        })
        .await
    }

    /// Attach a container to a network (the shared edge to a project's network); nothing
    /// when it is attached already.
    pub(crate) async fn connect_network(&self, name: &str, container_id: &str) -> Result<()> {
        let net = self
            .docker
            .inspect_network(name, None)
            .await
            .with_context(|| format!("cannot inspect network {name}"))?;
        if net
            .containers
            .unwrap_or_default()
            .keys()
            .any(|id| id == container_id)
        {
            return Ok(());
        }
        let req = NetworkConnectRequest {
            container: container_id.to_string(),
            endpoint_config: None,
        };
        match self.docker.connect_network(name, req).await {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            Err(e) => Err(anyhow!(e))
                .with_context(|| format!("cannot connect {container_id} to network {name}")),
        }
    }

    /// Detach a container from a network; false when either is gone or it was not attached.
    pub(crate) async fn disconnect_network(&self, name: &str, container_id: &str) -> Result<bool> {
        let req = NetworkDisconnectRequest {
            container: container_id.to_string(),
            force: Some(true),
        };
        match self.docker.disconnect_network(name, req).await {
            Ok(()) => Ok(true),
            Err(e) if matches!(status_of(&e), Some(404 | 403)) => Ok(false),
            Err(e) => Err(anyhow!(e))
                .with_context(|| format!("cannot disconnect {container_id} from network {name}")),
        }
    }

    pub(crate) async fn remove_network(&self, name: &str) -> Result<bool> {
        self.bounded(format!("remove network {name}"), async {
            match self.docker.remove_network(name).await {
                Ok(()) => Ok(true),
                Err(e) if status_of(&e) == Some(404) => Ok(false),
                Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot remove network {name}")),
            }
        })
        .await
    }

    /// Create the named volume if it does not exist.
    pub(crate) async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<()> {
        self.bounded(format!("create volume {name}"), async {
            let req = VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            self.docker
                .create_volume(req)
                .await
                .map(|_| ())
                .with_context(|| format!("cannot create volume {name}"))
        })
        .await
    }

    pub(crate) async fn remove_volume(&self, name: &str) -> Result<bool> {
        self.bounded(format!("remove volume {name}"), async {
            let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
            match self.docker.remove_volume(name, Some(opts)).await {
                Ok(()) => Ok(true),
                Err(e) if status_of(&e) == Some(404) => Ok(false),
                Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot remove volume {name}")),
            }
        })
        .await
    }
}
