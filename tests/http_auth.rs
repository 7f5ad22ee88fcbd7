//! Sign-in, sign-out, CSRF, throttling, roles and the users admin pages,
//! driven through the router without a socket.

mod support;

use axum::http::StatusCode;
use support::{app, app_with, body_text, cookie_value, location, set_cookie};
use switchboard::store::Role;

const PW: &str = "correct horse battery";

#[tokio::test]
async fn sign_in_sets_a_session_cookie_that_opens_admin_pages() {
    let t = app().await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    let resp = t.post_login("Ada@Example.org", PW, "192.0.2.1:1").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), Some("/admin/tasks"));
    let line = set_cookie(&resp, "sb_session").expect("session cookie");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=28800"] {
        assert!(line.contains(part), "{line} lacks {part}");
    }
    assert!(
        !line.contains("Secure"),
        "plain http: no Secure flag: {line}"
    );
    let cookie = format!("sb_session={}", cookie_value(&resp, "sb_session").unwrap());
    let page = t.get("/admin/users", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(body_text(page).await.contains("ada@example.org (you)"));
}

#[tokio::test]
async fn cookies_are_secure_behind_an_https_public_url() {
    let t = app_with(|c| c.public_url = Some("https://phones.example.org".parse().unwrap())).await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    let form = t.get("/login", None).await;
    assert!(set_cookie(&form, "sb_csrf").unwrap().contains("; Secure"));
    let resp = t.post_login("ada@example.org", PW, "192.0.2.1:1").await;
    assert!(set_cookie(&resp, "sb_session")
        .unwrap()
        .contains("; Secure"));
}

#[tokio::test]
async fn wrong_password_and_unknown_account_are_refused_alike() {
    let t = app().await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    for (email, pw) in [("ada@example.org", "nope"), ("who@example.org", PW)] {
        let resp = t.post_login(email, pw, "192.0.2.1:1").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie(&resp, "sb_session").is_none());
        let html = body_text(resp).await;
        assert!(html.contains("Wrong e-mail or password."), "{html}");
        assert!(
            html.contains(&format!("value=\"{email}\"")),
            "e-mail kept in the form"
        );
    }
}

#[tokio::test]
async fn sign_in_without_matching_double_submit_token_is_forbidden() {
    let t = app().await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    let csrf = t.login_csrf().await;
    let fields = [
        ("email", "ada@example.org"),
        ("password", PW),
        ("_csrf", csrf.as_str()),
    ];
    // Field but no cookie: a cross-site post.
    let resp = t.post_form("/login", None, &fields).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Cookie and a different field.
    let cookie = format!("sb_csrf={csrf}");
    let wrong = [
        ("email", "ada@example.org"),
        ("password", PW),
        ("_csrf", "0000"),
    ];
    let resp = t.post_form("/login", Some(&cookie), &wrong).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&resp, "sb_session").is_none());
}

#[tokio::test]
async fn session_forms_need_the_sessions_csrf_token() {
    let t = app().await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    let b = t.sign_in("ada@example.org", PW).await;
    let fields = [
        ("email", "new@example.org"),
        ("role", "agent"),
        ("password", "long enough pw"),
        ("_csrf", "forged"),
    ];
    let resp = t.post_form("/admin/users", Some(&b.cookie), &fields).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(body_text(resp).await.contains("CSRF"));
    assert!(t
        .store
        .user_by_email("new@example.org")
        .await
        .unwrap()
        .is_none());
    // Sign-out with a forged token leaves the session alive.
    let resp = t
        .post_form("/logout", Some(&b.cookie), &[("_csrf", "forged")])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        t.get("/admin/users", Some(&b.cookie)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn five_failures_per_address_and_account_give_429() {
    let t = app().await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    for _ in 0..5 {
        let resp = t
            .post_login("ada@example.org", "wrong", "192.0.2.7:1000")
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused now, with a clear message.
    let resp = t.post_login("ada@example.org", PW, "192.0.2.7:1001").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(body_text(resp).await.contains("Too many failed sign-ins"));
    // Another address signing in to the same account is not blocked.
    let resp = t.post_login("ada@example.org", PW, "198.51.100.3:1").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn agents_get_403_on_user_admin_and_strangers_are_sent_to_sign_in() {
    let t = app().await;
    t.add_user("bo@example.org", PW, Role::Agent).await;
    let b = t.sign_in("bo@example.org", PW).await;
    let resp = t.get("/admin/users", Some(&b.cookie)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let fields = [
        ("email", "x@example.org"),
        ("role", "admin"),
        ("password", "long enough pw"),
        ("_csrf", b.csrf.as_str()),
    ];
    let resp = t.post_form("/admin/users", Some(&b.cookie), &fields).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(t
        .store
        .user_by_email("x@example.org")
        .await
        .unwrap()
        .is_none());

    let resp = t.get("/admin/users", None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), Some("/login"));
}

#[tokio::test]
async fn admins_create_change_and_delete_users() {
    let t = app().await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    let b = t.sign_in("ada@example.org", PW).await;
    let c = Some(b.cookie.as_str());
    let fields = [
        ("email", "cy@example.org"),
        ("role", "agent"),
        ("password", "another secret"),
        ("_csrf", b.csrf.as_str()),
    ];
    let resp = t.post_form("/admin/users", c, &fields).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cy = t
        .store
        .user_by_email("cy@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cy.role, Role::Agent);
    // The new account can sign in with the password given.
    t.sign_in("cy@example.org", "another secret").await;

    // A duplicate is shown as an error on the page, not a crash.
    let resp = t.post_form("/admin/users", c, &fields).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(body_text(resp).await.contains("already exists"));

    let uri = format!("/admin/users/{}/role", cy.id);
    let resp = t
        .post_form(&uri, c, &[("role", "admin"), ("_csrf", b.csrf.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cy2 = t
        .store
        .user_by_email("cy@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cy2.role, Role::Admin);

    let uri = format!("/admin/users/{}/delete", cy.id);
    let resp = t.post_form(&uri, c, &[("_csrf", b.csrf.as_str())]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(t
        .store
        .user_by_email("cy@example.org")
        .await
        .unwrap()
        .is_none());

    // Nobody deletes or demotes themselves.
    let me = t
        .store
        .user_by_email("ada@example.org")
        .await
        .unwrap()
        .unwrap();
    let uri = format!("/admin/users/{}/delete", me.id);
    let resp = t.post_form(&uri, c, &[("_csrf", b.csrf.as_str())]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let uri = format!("/admin/users/{}/role", me.id);
    let resp = t
        .post_form(&uri, c, &[("role", "agent"), ("_csrf", b.csrf.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn short_passwords_are_refused() {
    let t = app().await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    let b = t.sign_in("ada@example.org", PW).await;
    let fields = [
        ("email", "dee@example.org"),
        ("role", "agent"),
        ("password", "short"),
        ("_csrf", b.csrf.as_str()),
    ];
    let resp = t.post_form("/admin/users", Some(&b.cookie), &fields).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_text(resp).await.contains("at least 8 characters"));
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let t = app().await;
    t.add_user("ada@example.org", PW, Role::Admin).await;
    let b = t.sign_in("ada@example.org", PW).await;
    let resp = t
        .post_form("/logout", Some(&b.cookie), &[("_csrf", b.csrf.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), Some("/login"));
    assert!(set_cookie(&resp, "sb_session")
        .unwrap()
        .contains("Max-Age=0"));
    let resp = t.get("/admin/users", Some(&b.cookie)).await;
    assert_eq!(
        location(&resp),
        Some("/login"),
        "old cookie no longer works"
    );
}

#[tokio::test]
async fn first_start_creates_admin_once_and_its_password_signs_in() {
    let t = app().await;
    let password = switchboard::bootstrap_admin(&t.store)
        .await
        .unwrap()
        .expect("admin created on an empty database");
    assert!(password.len() >= 16);
    let admin = t.store.user_by_email("admin").await.unwrap().unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert!(switchboard::bootstrap_admin(&t.store)
        .await
        .unwrap()
        .is_none());
    let b = t.sign_in("admin", &password).await;
    assert_eq!(
        t.get("/admin/users", Some(&b.cookie)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn root_redirects_to_the_task_queue() {
    let t = app().await;
    let resp = t.get("/", None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), Some("/admin/tasks"));
}
