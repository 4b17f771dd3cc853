//! What every request handler shares.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::auth::token::{TokenRules, VerificationKey};
use crate::auth::{PublishKeys, SubscriberAuth};
use crate::config::Config;
use crate::forwarded::TrustedProxies;
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
    /// The reverse proxies whose forwarding header names the client.
    pub trusted_proxies: TrustedProxies,
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
            leptos_options: crate::web::options::leptos_options(config.listen_addr()),
            publish_keys: PublishKeys::new(config.publish_keys.clone()),
            subscribers: subscriber_auth(&config)?,
            cors: crate::api::cors::layer(&config.cors_origins).map_err(StartError)?,
            trusted_proxies: TrustedProxies::new(
                config.trusted_proxies.clone(),
                config.forwarded_header,
            ),
            connection_limits: Arc::new(ConnectionLimits::new(
                config.max_connections as usize,
                Some(config.max_connections_per_ip as usize).filter(|&max| max > 0),
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

/// The subscriber token check `config` asks for, if any: every key it names (a
/// secret, PEM files, a JWKS) verifies, so keys can be rotated.
fn subscriber_auth(config: &Config) -> Result<Option<SubscriberAuth>, StartError> {
    let mut keys = Vec::new();
    if let Some(secret) = &config.subscriber_secret {
        keys.push(VerificationKey::secret(secret));
    }
    for path in &config.subscriber_public_keys {
        keys.push(VerificationKey::from_pem(&read(path)?).map_err(|error| in_file(path, &error))?);
    }
    if let Some(path) = &config.subscriber_jwks {
        keys.extend(
            VerificationKey::from_jwks(&read(path)?).map_err(|error| in_file(path, &error))?,
        );
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let rules = TokenRules {
        audiences: config.subscriber_audiences.clone(),
        issuers: config.subscriber_issuers.clone(),
        leeway: config.token_leeway,
    };
    Ok(Some(SubscriberAuth::new(keys, rules, config.allow_query_token)))
}

fn read(path: &Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|error| in_file(path, &error.to_string()))
}

fn in_file(path: &Path, error: &str) -> StartError {
    StartError(format!("{}: {error}", path.display()))
}
