//! The route registry: builds the axum router and records every
//! `(method, path)` it adds, because axum's `Router` cannot list its routes
//! and the OpenAPI document and the access table are checked against that list.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use crate::AppState;

/// One route as the router matches it: a method and an axum path
/// (`/v1/logs/{id}`, `/docs/{*file}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
}

impl Route {
    /// The path as OpenAPI writes it: a wildcard `{*file}` is the parameter `{file}`.
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A router under construction that remembers what it was given. `HEAD` is
/// served by every `GET` route (axum answers it without a body) and is not
/// listed separately.
pub(crate) struct Routes {
    router: Router<AppState>,
    added: Vec<Route>,
}

impl Routes {
    pub(crate) fn new() -> Routes {
        Routes {
            router: Router::new(),
            added: Vec::new(),
        }
    }

    pub(crate) fn get<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, MethodFilter::GET, path, handler)
    }

    pub(crate) fn post<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, MethodFilter::POST, path, handler)
    }

    pub(crate) fn put<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::PUT, MethodFilter::PUT, path, handler)
    }

    pub(crate) fn patch<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::PATCH, MethodFilter::PATCH, path, handler)
    }

    pub(crate) fn delete<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    /// Adds the handler for one method of a path; axum merges the methods of a
    /// path added in several calls.
    fn add<H, T>(
        mut self,
        method: Method,
        filter: MethodFilter,
        path: &'static str,
        handler: H,
    ) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, on(filter, handler));
        self.added.push(Route { method, path });
        self
    }

    /// The routes added, sorted.
    pub(crate) fn list(&self) -> Vec<Route> {
        let mut routes = self.added.clone();
        routes.sort();
        routes
    }

    pub(crate) fn into_router(self) -> Router<AppState> {
        self.router
    }
}
