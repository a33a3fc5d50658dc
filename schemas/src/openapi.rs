//! Pieces the HTTP crates' OpenAPI documents share.

use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// An OpenAPI modifier that defines one bearer-token security scheme the routes name.
#[derive(Debug, Clone, Copy)]
pub struct BearerScheme {
    /// The scheme's name, as the routes' `security(...)` attributes spell it.
    pub name: &'static str,
    /// Which token it is.
    pub description: &'static str,
}

/// The operator token (`--operator-token`).
pub const OPERATOR_TOKEN: BearerScheme =
    BearerScheme { name: "operator_token", description: "the operator token (--operator-token)" };

/// The SQL route's token (`--sql-token`, else the operator token).
pub const SQL_TOKEN: BearerScheme =
    BearerScheme { name: "sql_token", description: "the SQL token (--sql-token, else the operator token)" };

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut OpenApi) {
        let scheme =
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(self.description)).build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(self.name, SecurityScheme::Http(scheme));
    }
}
