//! `roadhex sql`: one query, or an interactive shell with history, against the local store or a
//! running node's `POST /v1/sql`.

use crate::cli::SqlArgs;
use anyhow::Context as _;
use roadhex_lake::LakeError;
use roadhex_lake::sql::{Format, SqlEngine, SqlLimits};
use std::io::Write as _;
use std::process::ExitCode;

/// Where queries run.
enum Target {
    Local(SqlEngine),
    Remote { client: reqwest::Client, url: String, token: Option<String> },
}

/// A rendered result, or a query error worth showing to the person who typed it.
enum Outcome {
    Rows { bytes: Vec<u8>, truncated: bool },
    Refused(String),
}

pub(crate) async fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let target = match &args.server {
        Some(server) => Target::Remote {
            client: reqwest::Client::new(),
            url: format!("{}/v1/sql", server.trim_end_matches('/')),
            token: args.token.clone(),
        },
        None => {
            let url = args.store.clone().unwrap_or_else(|| format!("file://{}", args.data.display()));
            if crate::store_missing(&url) {
                anyhow::bail!(
                    "{url} holds no roadhex data (start `roadhex serve --data DIR` first, or pass --store)"
                );
            }
            let lake = roadhex_lake::Lake::open(&url)?;
            // The CLI user owns the machine: no row cap, the library's memory and time limits.
            let limits = SqlLimits { max_rows: usize::MAX, timeout_s: 24.0 * 3600.0, ..SqlLimits::default() };
            let engine = SqlEngine::new(lake, limits)?;
            match &args.cluster {
                None => Target::Local(engine),
                #[cfg(feature = "ballista")]
                Some(url) => Target::Local(engine.with_cluster(url)),
                #[cfg(not(feature = "ballista"))]
                Some(_) => anyhow::bail!("{}", crate::cluster_cmd::NOT_BUILT),
            }
        }
    };
    match &args.query {
        Some(query) => match target.run(query, args.format).await? {
            Outcome::Rows { bytes, truncated } => {
                match &args.out {
                    Some(path) => {
                        std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?
                    }
                    None => std::io::stdout().lock().write_all(&bytes)?,
                }
                if truncated {
                    eprintln!("note: result cut at the server's row cap");
                }
                Ok(ExitCode::SUCCESS)
            }
            Outcome::Refused(message) => {
                eprintln!("{message}");
                Ok(ExitCode::from(2))
            }
        },
        None => shell(&target, args.format).await,
    }
}

impl Target {
    async fn run(&self, sql: &str, format: Format) -> anyhow::Result<Outcome> {
        match self {
            Self::Local(engine) => match engine.query(sql).await {
                Ok(r) => {
                    let bytes = roadhex_lake::sql::render(&r.schema, &r.batches, format)?;
                    Ok(Outcome::Rows { bytes, truncated: r.truncated })
                }
                Err(e @ LakeError::SqlInvalid { line: Some(line), column: Some(column), .. }) => {
                    Ok(Outcome::Refused(format!("error[{}] at line {line}, column {column}: {e}", e.code())))
                }
                Err(
                    e @ (LakeError::SqlInvalid { .. }
                    | LakeError::SqlRefused(_)
                    | LakeError::SqlTimeout(_)
                    | LakeError::SqlResources(_)
                    | LakeError::Cluster(_)),
                ) => Ok(Outcome::Refused(format!("error[{}]: {e}", e.code()))),
                Err(e) => Err(e.into()),
            },
            Self::Remote { client, url, token } => {
                let mut req = client
                    .post(url)
                    .header(reqwest::header::ACCEPT, format.media_type())
                    .header(reqwest::header::CONTENT_TYPE, "application/sql")
                    .body(sql.to_owned());
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.with_context(|| format!("POST {url}"))?;
                let truncated = resp.headers().get("x-roadhex-truncated").is_some_and(|v| v == "true");
                let status = resp.status();
                let bytes = resp.bytes().await?.to_vec();
                if status.is_success() {
                    return Ok(Outcome::Rows { bytes, truncated });
                }
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let code = body["code"].as_str().unwrap_or("http_error");
                let message = body["message"].as_str().map_or_else(|| status.to_string(), str::to_owned);
                let at = match (body["details"]["line"].as_u64(), body["details"]["column"].as_u64()) {
                    (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
                    _ => String::new(),
                };
                Ok(Outcome::Refused(format!("error[{code}]{at}: {message}")))
            }
        }
    }
}

/// Statements end with `;`; `\d` lists tables, `\d NAME` describes one, `\q` quits.
async fn shell(target: &Target, format: Format) -> anyhow::Result<ExitCode> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!("roadhex sql: end statements with ';'. \\d lists tables, \\d NAME describes one, \\q quits.");
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() { "roadhex> " } else { "     ..> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        let sql = if pending.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            match meta(trimmed) {
                Some(sql) => sql,
                None if trimmed == "\\q" => break,
                None => {
                    eprintln!("unknown command {trimmed}");
                    continue;
                }
            }
        } else {
            pending.push_str(&line);
            pending.push('\n');
            if !trimmed.ends_with(';') {
                continue;
            }
            let sql = std::mem::take(&mut pending);
            let _ = editor.add_history_entry(sql.trim());
            sql
        };
        match target.run(sql.trim().trim_end_matches(';'), format).await {
            Ok(Outcome::Rows { bytes, truncated }) => {
                std::io::stdout().lock().write_all(&bytes)?;
                if truncated {
                    eprintln!("note: result cut at the server's row cap");
                }
            }
            Ok(Outcome::Refused(message)) => eprintln!("{message}"),
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(path);
    }
    Ok(ExitCode::SUCCESS)
}

fn meta(command: &str) -> Option<String> {
    let mut words = command.split_whitespace();
    match (words.next()?, words.next()) {
        ("\\d", None) => Some(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
                .into(),
        ),
        ("\\d", Some(table)) => Some(format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = '{}' ORDER BY ordinal_position",
            table.replace('\'', "''")
        )),
        _ => None,
    }
}

fn history_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("ROADHEX_SQL_HISTORY") {
        return Some(p.into());
    }
    let home = std::env::var_os("HOME")?;
    Some(std::path::Path::new(&home).join(".local/state/roadhex/sql_history"))
}
