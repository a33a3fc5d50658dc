//! Analyst SQL over a lake filled by the real pipeline: `POST /v1/sql` (auth, formats, errors),
//! `roadhex sql --server`, the shell, every query of docs/analysts.md, and the Parquet files read
//! by pyarrow and DuckDB.

use crate::support::{Server, roadhex, roadhex_ok};
use crate::vision::{bee_frame, upload_frames, wait_for};
use image::RgbImage;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

const SQL_TOKEN: &str = "analyst-token";

fn post(server: &Server, token: Option<&str>, accept: &str, sql: &str) -> reqwest::blocking::Response {
    let mut req =
        server.http().post(format!("{}/v1/sql", server.url)).header("accept", accept).body(sql.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().expect("POST /v1/sql")
}

pub(crate) fn doc_queries() -> Vec<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/analysts.md")).expect("doc");
    doc.split("```sql\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|q| !q.contains("read_parquet"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn analysts_query_the_lake_over_http_cli_and_other_readers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = Server::start_roles(
        &data,
        "ingest,vision,sql",
        &["--sql-token", SQL_TOKEN, "--flight-listen", "127.0.0.1:0"],
    );
    let flight = server.next_line();
    let key = server.register_device("ivy");
    let frames: Vec<RgbImage> = (0..4).map(bee_frame).collect();
    let id = upload_frames(&server, &key, &frames.iter().collect::<Vec<_>>());
    assert_eq!(wait_for(&server, &id, &["published", "rejected"], 600, 300)["state"], "published");

    let api = server.openapi();
    for route in ["/v1/sql", "/v1/captures", "/healthz"] {
        assert!(api["paths"].get(route).is_some(), "openapi lacks {route}");
    }

    // Auth and formats.
    let q = "SELECT frame_id, lat, h3_to_string(h3_r12) AS cell FROM frames ORDER BY frame_id";
    assert_eq!(post(&server, None, "application/json", q).status(), 401);
    assert_eq!(post(&server, Some("wrong"), "application/json", q).status(), 401);
    let rows: Vec<serde_json::Value> =
        post(&server, Some(SQL_TOKEN), "application/json", q).json().expect("json");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["frame_id"], format!("{id}-0000"));
    assert_eq!(rows[0]["cell"].as_str().map(str::len), Some(15));
    let csv = post(&server, Some(SQL_TOKEN), "text/csv", q).text().expect("csv");
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("frame_id,lat,cell\n"), "{csv}");
    let resp = post(&server, Some(SQL_TOKEN), "application/vnd.apache.parquet", q);
    assert_eq!(resp.headers()["content-type"], "application/vnd.apache.parquet");
    let bytes = resp.bytes().expect("parquet");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader");
    assert_eq!(reader.map(|b| b.expect("batch").num_rows()).sum::<usize>(), 4);
    let resp = post(&server, Some(SQL_TOKEN), "application/vnd.apache.arrow.stream", q);
    assert_eq!(resp.headers()["x-roadhex-rows"], "4");
    assert!(resp.bytes().expect("ipc").len() > 100);
    assert_eq!(post(&server, Some(SQL_TOKEN), "image/png", q).status(), 406);

    // Errors are SQL errors with a position, not 500s; writes are refused.
    let resp = post(&server, Some(SQL_TOKEN), "application/json", "SELECT frame_id,\n  bogus FROM frames");
    assert_eq!(resp.status(), 400);
    let err: serde_json::Value = resp.json().expect("json");
    assert_eq!(err["code"], "sql_invalid", "{err}");
    assert_eq!(
        (err["details"]["line"].as_u64(), err["details"]["column"].as_u64()),
        (Some(2), Some(3)),
        "{err}"
    );
    for bad in ["DROP TABLE frames", "INSERT INTO frames SELECT * FROM frames", "COPY frames TO 'x.csv'"] {
        let resp = post(&server, Some(SQL_TOKEN), "application/json", bad);
        assert_eq!(resp.status(), 403, "{bad}");
        assert_eq!(resp.json::<serde_json::Value>().expect("json")["code"], "sql_refused", "{bad}");
    }

    // Arrow Flight SQL: handshake with the token, a query, errors as statuses.
    #[cfg(feature = "flight-sql")]
    flight_sql(flight.strip_prefix("flight sql on grpc://").expect("flight line"), &id);
    #[cfg(not(feature = "flight-sql"))]
    let _ = flight;

    // The CLI against the server, and the shell on stdin.
    let out = roadhex_ok(&[
        "sql",
        "--server",
        &server.url,
        "--token",
        SQL_TOKEN,
        "--format",
        "csv",
        "SELECT count(*) AS n FROM frames",
    ]);
    assert_eq!(out, "n\n4\n");
    let out = roadhex(&["sql", "--server", &server.url, "--token", SQL_TOKEN, "SELEC 1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sql_invalid"));
    let data_s = data.to_str().expect("utf8");
    let mut shell = Command::new(env!("CARGO_BIN_EXE_roadhex"))
        .args(["sql", "--data", data_s, "--format", "csv"])
        .env("ROADHEX_SQL_HISTORY", tmp.path().join("history"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shell");
    shell
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"SELECT count(*)\n  AS n FROM captures;\n\\d\n\\q\n")
        .expect("write");
    let out = shell.wait_with_output().expect("shell output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("n\n1\n"), "{text}");
    assert!(text.contains("frames") && text.contains("redactions"), "{text}");

    // ST_ functions read the WKB geometry column.
    let wkt = roadhex_ok(&[
        "sql",
        "--data",
        data_s,
        "--format",
        "csv",
        "SELECT ST_AsText(ST_GeomFromWKB(geometry)) AS wkt, ST_X(ST_GeomFromWKB(geometry)) = lon AS same \
         FROM frames LIMIT 1",
    ]);
    assert!(wkt.starts_with("wkt,same\nPOINT(") && wkt.trim_end().ends_with(",true"), "{wkt}");

    // Every documented query runs; those over tables this pipeline fills return rows.
    let queries = doc_queries();
    assert_eq!(queries.len(), 10, "docs/analysts.md must keep ten queries");
    for q in &queries {
        let out = roadhex_ok(&["sql", "--data", data_s, "--format", "csv", q]);
        let later = ["FROM features", "FROM rewards"].iter().any(|t| q.contains(t));
        assert!(later || out.lines().count() > 1, "no rows from documented query:\n{q}\n{out}");
    }
    // The doc's schema section is the code's.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/analysts.md")).expect("doc");
    assert!(
        doc.contains(&roadhex_ok(&["schema"])),
        "docs/analysts.md schemas are stale: paste `roadhex schema`"
    );

    // pyarrow and DuckDB read every table and its geometry, and count what DataFusion counts.
    let python = std::env::var_os("ROADHEX_PY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/roadhex/py"))
        .join("bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/read_tables.py");
    let out = Command::new(python).arg(script).arg(&data).output().expect("python (deploy/pytools.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for (table, geometry) in
        [("frames", "Point"), ("telemetry", "Point"), ("coverage", "Point"), ("captures", "LineString")]
    {
        let n: u64 = roadhex_ok(&[
            "sql",
            "--data",
            data_s,
            "--format",
            "csv",
            &format!("SELECT count(*) FROM {table}"),
        ])
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("count");
        assert_eq!(read[table]["pyarrow_rows"].as_u64(), Some(n), "{table}: {read}");
        assert_eq!(read[table]["duckdb_rows"].as_u64(), Some(n), "{table}: {read}");
        assert_eq!(read[table]["geometry"], geometry, "{table}: {read}");
    }
    assert!(read["detections"]["pyarrow_rows"].as_u64() > Some(0), "{read}");
}

#[cfg(feature = "flight-sql")]
fn flight_sql(addr: &str, capture: &str) {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use futures::TryStreamExt as _;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client = FlightSqlServiceClient::new(channel);
        let denied = client.execute("SELECT 1".into(), None).await.expect_err("no token");
        assert!(denied.to_string().contains("authentication credentials"), "{denied}");
        assert!(client.handshake("analyst", "wrong").await.is_err());
        client.handshake("analyst", SQL_TOKEN).await.expect("handshake");

        let info = client
            .execute("SELECT frame_id, h3_r12 FROM frames ORDER BY frame_id".into(), None)
            .await
            .expect("flight info");
        let mut rows = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.expect("ticket");
            let batches: Vec<_> =
                client.do_get(ticket).await.expect("do_get").try_collect().await.expect("batches");
            for b in batches {
                let ids = b.column(0).as_any().downcast_ref::<arrow::array::StringArray>().expect("utf8");
                rows.extend(ids.iter().map(|v| v.expect("id").to_owned()));
            }
        }
        assert_eq!(rows, (0..4).map(|i| format!("{capture}-{i:04}")).collect::<Vec<_>>());

        let bad = client.execute("SELECT nope FROM frames".into(), None).await.expect_err("invalid");
        assert!(bad.to_string().contains("sql_invalid"), "{bad}");
        let refused = client.execute("DROP TABLE frames".into(), None).await.expect_err("refused");
        assert!(refused.to_string().contains("sql_refused"), "{refused}");
    });
}
