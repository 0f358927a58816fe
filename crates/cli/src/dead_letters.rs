//! `logbook admin dead-letters …`: list, show, replay and purge what the
//! worker could not store, through a running server's admin API (dead letters
//! may live in a database only the server reaches, and replays go through its
//! queue). Needs the super-admin: a password to log in with, or an access token.

use anyhow::{Context as _, bail};
use bench::client::{HttpClient, Response, percent_encode};
use clap::{Args, Subcommand};
use serde_json::Value;

/// The dead-letter commands.
#[derive(Subcommand, Debug)]
pub enum DeadLetterCommand {
    /// List dead letters in id order (without payloads).
    List {
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this id (the `next` a previous page printed).
        #[arg(long)]
        after: Option<String>,
        /// Print the server's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print one dead letter with its payload, as JSON.
    Show {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Append the letter's payload to the queue again, then remove the letter;
    /// prints the queue position it was appended at.
    Replay {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove the letter for good.
    Purge {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Where the server is and how to act as its super-admin.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Base URL of the running server.
    #[arg(long, env = "LOGBOOK_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The super-admin's password, to log in with.
    #[arg(long, env = "LOGBOOK_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// The super-admin's username.
    #[arg(long, default_value = "admin")]
    admin_user: String,
    /// An access token of the super-admin, instead of logging in.
    #[arg(long, env = "LOGBOOK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ServerArgs {
    /// A client carrying the super-admin's access token.
    pub(crate) async fn client(&self) -> anyhow::Result<HttpClient> {
        let client = HttpClient::connect(&self.url).await?;
        if let Some(token) = &self.token {
            return client.with_token(Some(token));
        }
        let Some(password) = &self.admin_password else {
            bail!(
                "this is the super-admin's: pass --admin-password (or set \
                 LOGBOOK_ADMIN_PASSWORD), or an access token with --token"
            );
        };
        client
            .log_in(&self.admin_user, password)
            .await
            .with_context(|| format!("cannot log in to {}", self.url))
    }
}

/// The JSON of a successful answer, or the server's error as an error.
fn success(response: Response) -> anyhow::Result<Value> {
    let status = response.status;
    let body = response.json();
    if (200..300).contains(&status) {
        return body;
    }
    match body {
        Ok(error) => bail!(
            "the server answered {status} {}: {}",
            error["code"].as_str().unwrap_or("?"),
            error["message"].as_str().unwrap_or("")
        ),
        Err(_) => bail!("the server answered {status}"),
    }
}

fn letter_path(id: &str) -> String {
    format!("/v1/admin/dead-letters/{}", percent_encode(id))
}

/// Runs one command; what a script needs goes to stdout, the rest to stderr.
pub async fn run(command: DeadLetterCommand) -> anyhow::Result<()> {
    match command {
        DeadLetterCommand::List {
            limit,
            after,
            json,
            server,
        } => {
            let mut path = format!("/v1/admin/dead-letters?limit={limit}");
            if let Some(after) = after {
                path.push_str(&format!("&after={}", percent_encode(&after)));
            }
            let page = success(server.client().await?.get(&path).await?)?;
            if json {
                println!("{page}");
                return Ok(());
            }
            print!("{}", table(&page));
            if let Some(next) = page["next"].as_str() {
                eprintln!("more: --after {next}");
            }
        }
        DeadLetterCommand::Show { id, server } => {
            let letter = success(server.client().await?.get(&letter_path(&id)).await?)?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
        }
        DeadLetterCommand::Replay { id, server } => {
            let path = format!("{}/replay", letter_path(&id));
            let answer = success(
                server
                    .client()
                    .await?
                    .post(&path, "application/json", "")
                    .await?,
            )?;
            let position = &answer["position"];
            eprintln!("replayed dead letter {id}: appended to the queue at position {position}");
            println!("{position}");
        }
        DeadLetterCommand::Purge { id, server } => {
            success(server.client().await?.delete(&letter_path(&id)).await?)?;
            eprintln!("purged dead letter {id}");
        }
    }
    Ok(())
}

/// A header, then one tab-separated line per letter: id, tenant, stream,
/// attempts, last failure, error (`-` for what is unknown).
fn table(page: &Value) -> String {
    let mut out = String::from("id\ttenant\tstream\tattempts\tlast_failed_at\terror\n");
    let letters = page["dead_letters"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for letter in letters {
        let text = |name: &str| letter[name].as_str().unwrap_or("-").to_owned();
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            text("id"),
            text("tenant"),
            text("stream"),
            letter["attempts"],
            text("last_failed_at"),
            text("error"),
        ));
    }
    out
}
