//! Arrow Flight SQL for the sql role (feature `flight-sql`): a thin adapter over [`SqlEngine`], so
//! BI tools and ADBC/JDBC drivers get the same read-only catalog, limits and errors as `POST /v1/sql`.
//!
//! Stateless: `GetFlightInfo` plans the statement for its schema and returns a ticket that carries
//! the SQL; `DoGet` runs it. Auth: the SQL token as `authorization: Bearer …`, or a handshake with
//! basic auth whose password is the token (any user name), which answers with the bearer token.

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt as _, SqlInfo, TicketStatementQuery};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use prost::Message as _;
use roadhex_lake::LakeError;
use roadhex_lake::sql::SqlEngine;
use std::pin::Pin;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

pub(crate) struct RoadhexFlightSql {
    engine: SqlEngine,
    /// Token required on every call; `None` turns the service off.
    token: Option<String>,
}

/// Serves Flight SQL on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    engine: SqlEngine,
    token: Option<String>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = FlightServiceServer::new(RoadhexFlightSql { engine, token });
    let incoming = tokio_stream_of(listener);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| s);
        Some((next, l))
    })
}

impl RoadhexFlightSql {
    fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = self.token.as_deref() else {
            return Err(Status::permission_denied("SQL is off: start the node with --sql-token"));
        };
        let given = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if roadhex_schemas::signing::token_matches(given, expected) {
            Ok(())
        } else {
            Err(Status::unauthenticated("send authorization: Bearer <sql token>"))
        }
    }
}

/// Lake errors as gRPC statuses; the message keeps the code and the position in the query.
fn status(e: LakeError) -> Status {
    let message = match &e {
        LakeError::SqlInvalid { line: Some(l), column: Some(c), .. } => {
            format!("{}: line {l}, column {c}: {e}", e.code())
        }
        _ => format!("{}: {e}", e.code()),
    };
    match e {
        LakeError::SqlInvalid { .. } => Status::invalid_argument(message),
        LakeError::SqlRefused(_) => Status::permission_denied(message),
        LakeError::SqlTimeout(_) => Status::deadline_exceeded(message),
        LakeError::SqlResources(_) => Status::resource_exhausted(message),
        LakeError::NotFound(_) => Status::not_found(message),
        LakeError::AlreadyExists(_) => Status::already_exists(message),
        LakeError::Cluster(_) => Status::unavailable(message),
        LakeError::Store(_)
        | LakeError::BadUrl { .. }
        | LakeError::Json { .. }
        | LakeError::Parquet(_)
        | LakeError::Arrow(_)
        | LakeError::LeaseLost(_)
        | LakeError::LockBusy
        | LakeError::Queue(_)
        | LakeError::DataFusion(_) => Status::internal(message),
    }
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FlightSqlService for RoadhexFlightSql {
    type FlightService = RoadhexFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        use base64::Engine as _;
        let expected = self.token.clone().ok_or_else(|| Status::permission_denied("SQL is off"))?;
        let password = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|up| up.split_once(':').map(|(_, p)| p.to_owned()));
        if !roadhex_schemas::signing::token_matches(password.as_deref(), &expected) {
            return Err(Status::unauthenticated("basic auth password must be the SQL token"));
        }
        let reply = HandshakeResponse { protocol_version: 0, payload: Default::default() };
        let mut resp: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let bearer =
            format!("Bearer {expected}").parse().map_err(|_| Status::internal("token is not ASCII"))?;
        resp.metadata_mut().insert("authorization", bearer);
        Ok(resp)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(request.metadata())?;
        let schema = self.engine.schema(&query.query).await.map_err(status)?;
        let ticket = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        let ticket = Ticket { ticket: ticket.as_any().encode_to_vec().into() };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("ticket is not a UTF-8 statement"))?;
        let result = self.engine.query(&sql).await.map_err(status)?;
        let batches = futures::stream::iter(result.batches.into_iter().map(Ok));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(result.schema)
            .build(batches)
            .map_err(Status::from)
            .boxed();
        Ok(Response::new(stream))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
