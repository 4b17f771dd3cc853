//! Subscriber tokens: with a subscriber secret, `/sse` and task streams need a JWT
//! naming the client id, its topics and its tasks; an expired token ends the stream
//! with an event that says so.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::auth::Secret;
use herald::auth::token::{Claims, SubscriberAuth, mint};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{SseClient, TestServer};

const SECRET: &str = "subscriber-secret-0123456789";

fn token(sub: &str, topics: &[&str], jobs: &[&str], valid_for: Duration) -> String {
    let exp = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + valid_for).as_secs();
    token_expiring_at(sub, topics, jobs, exp)
}

/// A token whose `exp` is `exp` (seconds since the epoch).
fn token_expiring_at(sub: &str, topics: &[&str], jobs: &[&str], exp: u64) -> String {
    let claims = Claims {
        sub: sub.to_owned(),
        topics: topics.iter().map(|topic| (*topic).to_owned()).collect(),
        jobs: jobs.iter().map(|job| (*job).to_owned()).collect(),
        exp,
    };
    mint(&SECRET.parse().unwrap(), &claims).unwrap()
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

async fn secured(extra: &[&str]) -> TestServer {
    let mut args = vec!["--subscriber-secret", SECRET];
    args.extend_from_slice(extra);
    TestServer::start_with(&args).await
}

/// `GET path` with optional cookie and bearer token; the status and JSON error.
async fn open(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
    bearer: Option<&str>,
) -> reqwest::Response {
    let mut request = server.http.get(server.url(path));
    if let Some(token) = cookie {
        request = request.header("cookie", format!("theme=dark; herald_token={token}"));
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn refused(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_stream_needs_a_valid_token_for_its_client_and_topics() {
    let server = secured(&[]).await;
    let path = "/sse?client_id=tab&topic=news";
    let good = token("tab", &["news"], &[], hour());

    let (status, error) = refused(open(&server, path, None, None).await).await;
    assert_eq!((status, error.contains("token is required")), (StatusCode::UNAUTHORIZED, true));
    let forged = {
        let claims = Claims { sub: "tab".into(), topics: vec![], jobs: vec![], exp: u64::MAX / 2 };
        mint(&"someone-elses-secret-012345".parse::<Secret>().unwrap(), &claims).unwrap()
    };
    let (status, _) = refused(open(&server, path, Some(&forged), None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a token signed with another secret");
    // Minted already past its `exp` (no sleeping until one expires).
    let an_hour_ago = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() - hour();
    let expired = token_expiring_at("tab", &["news"], &[], an_hour_ago.as_secs());
    let (status, error) = refused(open(&server, path, Some(&expired), None).await).await;
    assert_eq!((status, error.contains("expired")), (StatusCode::UNAUTHORIZED, true));
    let other = token("other", &["news"], &[], hour());
    let (status, _) = refused(open(&server, path, Some(&other), None).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a token for another client id");
    let no_topic = token("tab", &["sport"], &[], hour());
    let (status, error) = refused(open(&server, path, Some(&no_topic), None).await).await;
    assert_eq!((status, error.contains("news")), (StatusCode::FORBIDDEN, true));

    for (cookie, bearer) in [(Some(good.as_str()), None), (None, Some(good.as_str()))] {
        let response = open(&server, path, cookie, bearer).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut stream = SseClient::new(response);
        server.push(json!({"topic": "news", "message": "for token holders"})).await;
        assert_eq!(stream.next_data().await, "for token holders");
    }
}

#[tokio::test]
async fn a_token_in_the_query_string_is_accepted_only_when_enabled() {
    let good = token("tab", &[], &[], hour());
    let path = format!("/sse?client_id=tab&token={good}");
    let strict = secured(&[]).await;
    let (status, error) = refused(open(&strict, &path, None, None).await).await;
    assert_eq!((status, error.contains("query")), (StatusCode::UNAUTHORIZED, true));
    let lenient = secured(&["--allow-query-token"]).await;
    assert_eq!(open(&lenient, &path, None, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expiring_token_ends_the_stream_with_an_event_that_says_so() {
    let server = secured(&[]).await;
    let short = token("tab", &[], &[], Duration::from_secs(2));
    let response = open(&server, "/sse?client_id=tab", Some(&short), None).await;
    let mut stream = SseClient::new(response);
    let event = stream.next().await;
    assert_eq!(event.event, "herald.token-expired");
    stream.expect_end().await;
    // Reconnecting with the same token is refused, so EventSource stops there
    // instead of looping; the page listens for the event and gets a new token.
    assert_eq!(open(&server, "/sse?client_id=tab", Some(&short), None).await.status(), 401);
}

#[tokio::test]
async fn a_task_stream_needs_a_token_naming_the_task() {
    let server = secured(&[]).await;
    let (_, created) = server.post("/jobs", json!({"title": "t", "total": 1})).await;
    let id = created["id"].as_str().unwrap();
    let events = format!("/jobs/{id}/events");
    assert_eq!(open(&server, &events, None, None).await.status(), StatusCode::UNAUTHORIZED);
    let other = token("tab", &[], &["another"], hour());
    assert_eq!(open(&server, &events, Some(&other), None).await.status(), StatusCode::FORBIDDEN);
    let allowed = token("tab", &[], &[id], hour());
    let mut stream = SseClient::new(open(&server, &events, Some(&allowed), None).await);
    assert_eq!(stream.next().await.event, "progress");
    let state = open(&server, &format!("/jobs/{id}"), None, Some(&allowed)).await;
    assert_eq!(state.status(), StatusCode::OK);
}

#[tokio::test]
async fn herald_token_prints_a_token_the_server_accepts() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--subscriber-secret", SECRET, "token", "--sub", "cli", "--topic", "news"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    let claims = SubscriberAuth::hmac(&SECRET.parse().unwrap(), false).verify(printed.trim());
    let claims = claims.unwrap();
    assert_eq!((claims.sub.as_str(), claims.topics.as_slice()), ("cli", &["news".to_owned()][..]));
}

/// A test-only key pair (never used anywhere else): tokens signed by a backend with
/// the private key are checked by Herald with the public one.
#[tokio::test]
async fn es256_tokens_are_checked_with_a_public_key() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures");
    let public = format!("{fixtures}/es256-public.pem");
    let private = std::fs::read(format!("{fixtures}/es256-private.pem")).unwrap();
    let server = TestServer::start_with(&["--subscriber-public-key", &public]).await;
    let exp = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + hour()).as_secs();
    let claims = Claims { sub: "tab".into(), topics: vec![], jobs: vec![], exp };
    let signed = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(&private).unwrap(),
    )
    .unwrap();
    let response = open(&server, "/sse?client_id=tab", None, Some(&signed)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let hmac = token("tab", &[], &[], hour());
    let response = open(&server, "/sse?client_id=tab", None, Some(&hmac)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "an HS256 token is not accepted");
}

/// Test-only keys (never used anywhere else) in `fixtures/`.
fn fixture(name: &str) -> String {
    format!("{}/tests/it/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims shaped like an identity provider's (Keycloak, Auth0, Entra ID, Google
/// all set `iss`, `aud`, `iat`, `nbf` or some of them, and claims of their own),
/// for client `tab`, valid for an hour from now.
fn provider_claims() -> serde_json::Value {
    json!({
        "iss": "https://idp.example.com/realms/shop",
        "sub": "tab",
        "aud": ["herald", "account"],
        "azp": "web-app",
        "scope": "openid profile",
        "iat": now(),
        "nbf": now(),
        "exp": now() + 3600,
        "topics": ["news"],
    })
}

/// `claims` signed with `algorithm` and the PEM private key in `fixtures/key`
/// (HS256: the test secret), with `kid` in the header if given.
fn sign(claims: &serde_json::Value, key: &str, kid: Option<&str>) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let (algorithm, key) = match key {
        "secret" => (Algorithm::HS256, EncodingKey::from_secret(SECRET.as_bytes())),
        pem if pem.starts_with("rs256") => {
            let pem = std::fs::read(fixture(pem)).unwrap();
            (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap())
        }
        pem => {
            let pem = std::fs::read(fixture(pem)).unwrap();
            (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap())
        }
    };
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// The status `/sse?client_id=tab&topic=news` answers `token` with, and its error.
async fn try_token(server: &TestServer, token: &str) -> (StatusCode, String) {
    let response = open(server, "/sse?client_id=tab&topic=news", None, Some(token)).await;
    let status = response.status();
    if status == StatusCode::OK {
        return (status, String::new());
    }
    refused(response).await
}

/// `claims` with `changes` applied (a `null` removes the claim).
fn with(changes: &serde_json::Value) -> serde_json::Value {
    let mut claims = provider_claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

#[tokio::test]
async fn identity_provider_tokens_are_accepted_when_audience_and_issuer_are_not_checked() {
    let server = secured(&[]).await;
    for claims in [
        provider_claims(),
        with(&json!({"aud": "herald"})),
        with(&json!({"aud": "some-other-api"})),
        with(&json!({"aud": null, "iss": null, "nbf": null, "iat": null})),
    ] {
        assert_eq!(
            try_token(&server, &sign(&claims, "secret", None)).await.0,
            StatusCode::OK,
            "{claims}"
        );
    }
}

#[tokio::test]
async fn audience_and_issuer_are_checked_when_configured() {
    let server = secured(&[
        "--subscriber-audience",
        "herald",
        "--subscriber-issuer",
        "https://idp.example.com/realms/shop",
    ])
    .await;
    for accepted in [provider_claims(), with(&json!({"aud": "herald"}))] {
        let token = sign(&accepted, "secret", None);
        assert_eq!(try_token(&server, &token).await.0, StatusCode::OK, "{accepted}");
    }
    for (claims, says) in [
        (with(&json!({"aud": "some-other-api"})), "audience"),
        (with(&json!({"aud": ["account"]})), "audience"),
        (with(&json!({"aud": null})), "aud"),
        (with(&json!({"iss": "https://evil.example.com/"})), "issuer"),
        (with(&json!({"iss": null})), "iss"),
    ] {
        let (status, error) = try_token(&server, &sign(&claims, "secret", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{claims}");
        assert!(error.contains(says), "{error:?} for {claims}");
    }
}

#[tokio::test]
async fn numeric_dates_may_have_fractions_and_refusals_name_the_claim() {
    let server = secured(&[]).await;
    let fractional = with(&json!({"exp": now() as f64 + 100.5, "nbf": now() as f64 - 0.5}));
    assert_eq!(try_token(&server, &sign(&fractional, "secret", None)).await.0, StatusCode::OK);
    // An exp beyond any clock's range is valid for a very long time, not a crash.
    for far in [json!(i64::MAX), json!(u64::MAX), json!(1e19)] {
        let token = sign(&with(&json!({"exp": far})), "secret", None);
        assert_eq!(try_token(&server, &token).await.0, StatusCode::OK, "{far}");
    }
    let (status, error) =
        try_token(&server, &sign(&with(&json!({"exp": null})), "secret", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error.contains("exp"), "{error}");
}

#[tokio::test]
async fn a_token_with_critical_extensions_is_refused() {
    use base64::Engine as _;
    let server = secured(&[]).await;
    let encode = |json: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let claims = encode(provider_claims().to_string().as_bytes());
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let signed = |header: &[u8]| {
        let message = format!("{}.{claims}", encode(header));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256);
        format!("{message}.{}", signature.unwrap())
    };
    let plain = signed(br#"{"alg":"HS256","typ":"JWT"}"#);
    assert_eq!(try_token(&server, &plain).await.0, StatusCode::OK, "signed correctly");
    let critical = signed(br#"{"alg":"HS256","typ":"JWT","crit":["exp-ext"],"exp-ext":1}"#);
    assert_eq!(try_token(&server, &critical).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nbf_is_honoured_with_a_small_clock_skew() {
    let server = secured(&[]).await;
    let skewed = sign(&with(&json!({"nbf": now() + 2})), "secret", None);
    assert_eq!(try_token(&server, &skewed).await.0, StatusCode::OK, "within the default skew");
    let early = sign(&with(&json!({"nbf": now() + 60})), "secret", None);
    let (status, error) = try_token(&server, &early).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error.contains("not valid yet"), "{error}");
    let lenient = secured(&["--token-leeway", "2m"]).await;
    assert_eq!(try_token(&lenient, &early).await.0, StatusCode::OK);
}

#[tokio::test]
async fn exp_is_strict_unless_a_leeway_is_set() {
    let just_expired = sign(&with(&json!({"exp": now() - 2})), "secret", None);
    let (status, error) = try_token(&secured(&[]).await, &just_expired).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error.contains("expired"), "{error}");
    let lenient = secured(&["--token-leeway", "30s"]).await;
    assert_eq!(try_token(&lenient, &just_expired).await.0, StatusCode::OK);
}

#[tokio::test]
async fn several_keys_verify_at_once_and_a_kid_picks_its_jwks_key() {
    let server = TestServer::start_with(&[
        "--subscriber-public-key",
        &fixture("es256-public.pem"),
        "--subscriber-public-key",
        &fixture("es256-rotated-public.pem"),
        "--subscriber-jwks",
        &fixture("jwks.json"),
    ])
    .await;
    let claims = provider_claims();
    for (key, kid) in [
        ("es256-private.pem", None),
        ("es256-rotated-private.pem", None),
        ("es256-rotated-private.pem", Some("idp-ec-2026-12")),
        ("rs256-private.pem", Some("idp-rsa-2026-11")),
        ("rs256-private.pem", None),
    ] {
        let token = sign(&claims, key, kid);
        assert_eq!(try_token(&server, &token).await.0, StatusCode::OK, "{key} {kid:?}");
    }
    // A kid no key has, for an algorithm only JWKS keys (which all have kids) serve.
    let unknown = sign(&claims, "rs256-private.pem", Some("idp-rsa-retired"));
    assert_eq!(try_token(&server, &unknown).await.0, StatusCode::UNAUTHORIZED);
    // A JWKS key marked for encryption does not verify.
    let encryption_only =
        TestServer::start_with(&["--subscriber-jwks", &fixture("jwks.json")]).await;
    let token = sign(&claims, "rs256-private.pem", Some("idp-enc"));
    assert_eq!(try_token(&encryption_only, &token).await.0, StatusCode::UNAUTHORIZED);
}
