//! `/openapi.json` and the Swagger UI at `/docs`, on a real server: public,
//! complete, and self-contained (the page loads nothing from another host).

#![allow(clippy::unwrap_used)]

mod common;

use bench::client::HttpClient;
use common::TestServer;

/// The relative links (`href="./x"`, `src="./x"`) of an HTML page.
fn relative_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            let link = &rest[..rest.find('"').unwrap()];
            if let Some(file) = link.strip_prefix("./") {
                links.push(file.to_owned());
            }
        }
    }
    links
}

#[tokio::test]
async fn the_document_is_served_without_credentials() {
    let server = TestServer::start().await;
    let mut anonymous = server.client_with(None).await;
    let response = anonymous.get("/openapi.json").await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "application/json");
    let document = response.json().unwrap();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );
    // It documents the routes behind the guard too, with how to authorise.
    assert!(document["paths"]["/v1/logs"]["post"]["security"].is_array());
    assert!(document["components"]["securitySchemes"]["api_key"].is_object());
    server.stop().await;
}

#[tokio::test]
async fn the_ui_and_its_assets_are_served_from_the_server_itself() {
    let server = TestServer::start().await;
    let mut anonymous: HttpClient = server.client_with(None).await;

    let redirect = anonymous.get("/docs").await.unwrap();
    assert_eq!(redirect.status, 303);
    assert_eq!(redirect.headers["location"], "/docs/");

    let page = anonymous.get("/docs/").await.unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(
            !html.contains(external),
            "the page loads {external}…: {html}"
        );
    }
    let links = relative_links(&html);
    assert!(
        links.iter().any(|link| link.ends_with(".js")),
        "no script in {html}"
    );
    for link in links {
        let asset = anonymous.get(&format!("/docs/{link}")).await.unwrap();
        assert_eq!(asset.status, 200, "/docs/{link}");
        assert!(!asset.body.is_empty(), "/docs/{link}");
    }

    // The UI shows this server's document, not the demo one it ships with.
    let initializer = anonymous.get("/docs/swagger-initializer.js").await.unwrap();
    let script = String::from_utf8(initializer.body.to_vec()).unwrap();
    assert!(script.contains("/openapi.json"), "{script}");
    assert!(!script.contains("petstore"), "{script}");

    let missing = anonymous.get("/docs/no-such-file.js").await.unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json().unwrap()["code"], "not_found");
    server.stop().await;
}
