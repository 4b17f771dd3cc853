//! What every request handler shares.

use std::ops::Deref;
use std::sync::Arc;

use crate::auth::{PublishKeys, SubscriberAuth};
use crate::config::Config;
use crate::hub::{Hub, StartError};
use crate::limits::{ConnectionLimits, PushRate};

/// The application state: the hub and the configuration (and, with the `ssr`
/// feature, the Leptos options the web app is rendered with).
///
/// A handle: axum clones the state for every extractor of every request, so it is
/// one reference count, not a copy of each key, option and path.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What an [`AppState`] refers to.
#[derive(Debug)]
pub struct Shared {
    /// The hub every handler talks to.
    pub hub: Hub,
    /// The settings the node runs with.
    pub config: Arc<Config>,
    /// The keys publishers must present (none: open).
    pub publish_keys: PublishKeys,
    /// How subscriber tokens are checked (none: anyone may listen).
    pub subscribers: Option<SubscriberAuth>,
    /// CORS for the API (none: same origin only).
    pub cors: Option<tower_http::cors::CorsLayer>,
    /// Open streams in total and per source address.
    pub connection_limits: Arc<ConnectionLimits>,
    /// Pushes per second per publisher.
    pub push_rate: Arc<PushRate>,
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
        Ok(Self(Arc::new(Shared {
            hub: Hub::new(config.hub_options())?,
            #[cfg(feature = "ssr")]
            leptos_options: crate::web::leptos_options(config.listen_addr()),
            publish_keys: PublishKeys::new(config.publish_keys.clone()),
            subscribers: subscriber_auth(&config)?,
            cors: crate::api::cors::layer(&config.cors_origins).map_err(StartError)?,
            connection_limits: Arc::new(ConnectionLimits::new(
                config.max_connections as usize,
                config.max_connections_per_ip as usize,
            )),
            push_rate: Arc::new(PushRate::new(config.push_rate, config.push_burst)),
            config: Arc::new(config),
        })))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[cfg(feature = "ssr")]
impl axum::extract::FromRef<AppState> for leptos::config::LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The subscriber token check `config` asks for, if any.
fn subscriber_auth(config: &Config) -> Result<Option<SubscriberAuth>, StartError> {
    let allow_query = config.allow_query_token;
    if let Some(secret) = &config.subscriber_secret {
        return Ok(Some(SubscriberAuth::hmac(secret, allow_query)));
    }
    let Some(path) = &config.subscriber_public_key else { return Ok(None) };
    let pem = std::fs::read(path)
        .map_err(|error| StartError(format!("cannot read {}: {error}", path.display())))?;
    SubscriberAuth::public_key(&pem, allow_query)
        .map(Some)
        .map_err(|error| StartError(format!("{}: {error}", path.display())))
}
