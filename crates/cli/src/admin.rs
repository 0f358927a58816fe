//! `logbook admin …`: manage tenants, users and keys directly in the metadata
//! store, also while a server runs (SQLite in WAL mode, or PostgreSQL).
//! What it changes is recorded in the tenant's audit stream like API changes;
//! the running server moves it into the pipeline. `admin dead-letters` is the
//! exception: it talks to the running server ([`crate::dead_letters`]).

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use api::access::Role;
use api::accounts::{self, KeyRequest, UserRequest};
use api::security::{Actor, Outcome, SecurityEvent};
use clap::{Args, Subcommand};

use crate::serve::StoreArgs;

/// The administration commands.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a tenant.
    CreateTenant {
        /// The tenant id: a-z, 0-9 and '-'.
        id: String,
        /// A display name [default: the id].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create a user. The password is read from LOGBOOK_NEW_PASSWORD or the first line of stdin.
    CreateUser {
        #[arg(long, default_value = accounts::DEFAULT_TENANT)]
        tenant: String,
        #[arg(long)]
        username: String,
        /// admin, auditor or developer.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a user's password, end its sessions and re-enable it (account recovery).
    /// The password is read like create-user's.
    ResetPassword {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create an API key and print it, alone, on stdout.
    CreateKey(CreateKeyArgs),
    /// List, show, replay or purge what the worker could not store, through a
    /// running server (needs the super-admin).
    #[command(subcommand)]
    DeadLetters(crate::dead_letters::DeadLetterCommand),
    /// Revoke an API key at once.
    RevokeKey {
        /// The key's id (`key_…`).
        id: String,
        #[arg(long, default_value = accounts::DEFAULT_TENANT)]
        tenant: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `logbook admin create-key`.
#[derive(Args, Debug)]
pub struct CreateKeyArgs {
    #[arg(long, default_value = accounts::DEFAULT_TENANT)]
    tenant: String,
    /// A name saying what uses the key.
    #[arg(long)]
    name: String,
    /// Comma-separated: logs:write, logs:read, audit:write, audit:read.
    #[arg(long, value_delimiter = ',', required = true)]
    scopes: Vec<String>,
    /// Requests with this key must be HMAC-signed (see the README).
    #[arg(long)]
    signed: bool,
    #[command(flatten)]
    store: StoreArgs,
}

fn read_new_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("LOGBOOK_NEW_PASSWORD") {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        eprintln!("password for the new user (then Enter):");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Runs one command; what a script needs goes to stdout, the rest to stderr.
pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    let actor = Actor::operator("logbook admin");
    match command {
        AdminCommand::DeadLetters(command) => crate::dead_letters::run(command).await?,
        AdminCommand::CreateTenant { id, name, store } => {
            let meta = server::open_existing_meta(&store.into_config()?).await?;
            let name = name.unwrap_or_else(|| id.clone());
            let tenant = accounts::create_tenant(&meta, &id, &name, &actor).await?;
            eprintln!("created tenant {:?}", tenant.id);
            meta.close().await;
        }
        AdminCommand::CreateUser {
            tenant,
            username,
            role,
            store,
        } => {
            let role: Role = accounts::parse_role(&role)?;
            let meta = server::open_existing_meta(&store.into_config()?).await?;
            let password = read_new_password()?;
            let request = UserRequest {
                tenant: &tenant,
                username: &username,
                password: &password,
                role,
                super_admin: false,
            };
            let user = accounts::create_user(&meta, &request, &actor).await?;
            eprintln!(
                "created user {:?} ({}) in tenant {:?}",
                user.username, user.id, user.tenant
            );
            meta.close().await;
        }
        AdminCommand::ResetPassword { username, store } => {
            let meta = server::open_existing_meta(&store.into_config()?).await?;
            let user = meta
                .user_by_username(&username)
                .await?
                .with_context(|| format!("no user {username:?}"))?
                .user;
            let password = read_new_password()?;
            auth::password::check_policy(&username, &password)
                .map_err(|error| anyhow::anyhow!("password: {error}"))?;
            let hash = accounts::hash_password(&password).await?;
            let event = SecurityEvent {
                tenant: &user.tenant,
                action: "user.password_reset",
                outcome: Outcome::Success,
                actor: &actor,
                target: Some(("user", &user.id)),
                reason: Some("reset by an operator; every session ended, account enabled"),
                details: serde_json::Map::new(),
            };
            meta.set_password(&user.id, &hash, None, &[event.entry()])
                .await?;
            if user.disabled {
                let enable = SecurityEvent {
                    action: "user.enable",
                    reason: None,
                    ..event.clone()
                };
                meta.update_user(&user.tenant, &user.id, None, Some(false), &[enable.entry()])
                    .await?;
            }
            eprintln!("password of {username:?} reset; its sessions are ended");
            meta.close().await;
        }
        AdminCommand::CreateKey(args) => {
            let scopes = accounts::parse_scopes(&args.scopes)?;
            let meta = server::open_existing_meta(&args.store.into_config()?).await?;
            let master = server::server_secret(&meta, accounts::SIGNING_MASTER).await?;
            let request = KeyRequest {
                tenant: &args.tenant,
                name: &args.name,
                scopes: &scopes,
                signed: args.signed,
                value: None,
            };
            let created = accounts::create_key(&meta, &request, &master, &actor).await?;
            eprintln!(
                "created key {} in tenant {:?}",
                created.key.id, created.key.tenant
            );
            println!("{}", created.token);
            meta.close().await;
        }
        AdminCommand::RevokeKey { id, tenant, store } => {
            let meta = server::open_existing_meta(&store.into_config()?).await?;
            let event = SecurityEvent {
                tenant: &tenant,
                action: "key.revoke",
                outcome: Outcome::Success,
                actor: &actor,
                target: Some(("api_key", &id)),
                reason: None,
                details: serde_json::Map::new(),
            };
            match meta.revoke_key(&tenant, &id, &[event.entry()]).await? {
                Some(_) => eprintln!("revoked key {id}"),
                None => anyhow::bail!("tenant {tenant:?} has no key {id:?}"),
            }
            meta.close().await;
        }
    }
    Ok(())
}
