//! What every request handler shares.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::PublishKeys;
use crate::config::Config;
use crate::hub::{Hub, StartError};

/// The application state: the hub and the configuration (and, with the `ssr`
/// feature, the Leptos options the web app is rendered with).
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    /// The hub every handler talks to.
    pub hub: Hub,
    /// The settings the node runs with.
    pub config: Arc<Config>,
    /// The keys publishers must present (none: open).
    pub publish_keys: PublishKeys,
    /// How the web app is rendered and where its assets live.
    #[cfg(feature = "ssr")]
    pub leptos_options: leptos::config::LeptosOptions,
}

impl AppState {
    /// Builds the state for `config`, creating the hub. Must be called inside a Tokio
    /// runtime.
    ///
    /// # Errors
    /// [`StartError`] when the hub's broker cannot be set up.
    pub fn new(config: Config) -> Result<Self, StartError> {
        Ok(Self {
            hub: Hub::new(config.hub_options())?,
            #[cfg(feature = "ssr")]
            leptos_options: crate::web::leptos_options(config.listen_addr()),
            publish_keys: PublishKeys::new(config.publish_keys.clone()),
            config: Arc::new(config),
        })
    }
}
