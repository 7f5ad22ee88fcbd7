//! Shared helpers for the HTTP tests: an app over a real SQLite store in a
//! temporary directory, driven with `oneshot` (no socket), plus sign-in and
//! body helpers.
#![allow(dead_code)]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use tower::ServiceExt;

use switchboard::config::Config;
use switchboard::events::Bus;
use switchboard::store::{Role, Store};
use switchboard::web::auth::{hash_password, token_hash};
use switchboard::web::{router, AppState};

pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    pub store: Store,
    _dir: tempfile::TempDir,
}

/// A signed-in browser: its `Cookie` header value and the session's CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

pub async fn app() -> TestApp {
    app_with(|_| {}).await
}

pub async fn app_with(edit: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let mut config = Config::defaults();
    config.database_url = switchboard::config::Secret::new(url.clone());
    edit(&mut config);
    let store = Store::open(&url, Bus::new(), "test-node")
        .await
        .expect("open store");
    let state = AppState::new(config, store.clone());
    TestApp {
        app: router(state.clone()),
        state,
        store,
        _dir: dir,
    }
}

impl TestApp {
    pub async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(req).await.expect("infallible")
    }

    pub async fn get(&self, uri: &str, cookie: Option<&str>) -> Response<Body> {
        let mut req = Request::get(uri);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// A form POST as a browser sends it.
    pub async fn post_form(
        &self,
        uri: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Response<Body> {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let mut req =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// A JSON request with an optional bearer token.
    pub async fn api(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Response<Body> {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn add_user(&self, email: &str, password: &str, role: Role) {
        let hash = hash_password(password).unwrap();
        self.store.create_user(email, &hash, role).await.unwrap();
    }

    /// An API token created as `token create` does; returns the clear token.
    pub async fn api_token(&self, name: &str) -> String {
        let token = switchboard::web::auth::random_token();
        self.store
            .create_api_token(name, &token_hash(&token))
            .await
            .unwrap();
        token
    }

    /// Fetches the sign-in form; returns the `sb_csrf` cookie's token.
    pub async fn login_csrf(&self) -> String {
        let resp = self.get("/login", None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let token = cookie_value(&resp, "sb_csrf").expect("sb_csrf cookie");
        let html = body_text(resp).await;
        assert!(
            html.contains(&format!("value=\"{token}\"")),
            "form carries the token"
        );
        token
    }

    /// Posts the sign-in form from `addr` with a valid double-submit token.
    pub async fn post_login(&self, email: &str, password: &str, addr: &str) -> Response<Body> {
        let csrf = self.login_csrf().await;
        let body = serde_urlencoded::to_string([
            ("email", email),
            ("password", password),
            ("_csrf", csrf.as_str()),
        ])
        .unwrap();
        let mut req = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("sb_csrf={csrf}"))
            .body(Body::from(body))
            .unwrap();
        let addr: SocketAddr = addr.parse().expect("socket address");
        req.extensions_mut().insert(ConnectInfo(addr));
        self.send(req).await
    }

    /// Signs in through the form and returns the browser's session.
    pub async fn sign_in(&self, email: &str, password: &str) -> Browser {
        let resp = self.post_login(email, password, "192.0.2.1:5000").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign-in succeeds");
        let token = cookie_value(&resp, "sb_session").expect("sb_session cookie");
        let rec = self
            .store
            .session(&token_hash(&token), chrono::Utc::now())
            .await
            .unwrap()
            .expect("session stored");
        Browser {
            cookie: format!("sb_session={token}"),
            csrf: rec.csrf_token,
        }
    }
}

/// The value a response's `Set-Cookie` gives `name`, if any.
pub fn cookie_value(resp: &Response<Body>, name: &str) -> Option<String> {
    set_cookie(resp, name).and_then(|line| {
        line.split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_string())
    })
}

/// The whole `Set-Cookie` line for `name`, if any.
pub fn set_cookie(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

pub fn location(resp: &Response<Body>) -> Option<&str> {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
}

pub async fn body_text(resp: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8 body")
}

pub async fn body_json(resp: Response<Body>) -> serde_json::Value {
    let text = body_text(resp).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
