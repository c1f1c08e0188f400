//! The `dostup` command line: parses arguments, sets up logging and calls
//! the library. No logic lives here.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use dostup::auth::accounts::{NewAccount, create_account};
use dostup::checklist::{self, Catalog, Format};
use dostup::config::{FileConfig, Overrides, Settings};
use dostup::domain::{RegionCode, Role, Sector};
use dostup::server::{Server, build_state, shutdown_signal};
use dostup::{db, demo};

#[derive(Debug, Parser)]
#[command(
    name = "dostup",
    version,
    about = "Field accessibility audits: API server and tools"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Options every command that touches the database understands.
#[derive(Debug, Args)]
struct Common {
    /// Optional TOML configuration file.
    #[arg(long, env = "DOSTUP_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory for the embedded database, objects and keys [default: ./dostup-data].
    #[arg(long, env = "DOSTUP_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL; the default is an SQLite file in the data directory.
    #[arg(
        long,
        env = "DOSTUP_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Directory of checklists and methodologies [default: ./checklists].
    #[arg(long, env = "DOSTUP_CHECKLISTS_DIR", global = true)]
    checklists_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations (or list them with --status).
    Migrate {
        /// Only list applied and pending migrations.
        #[arg(long)]
        status: bool,
    },
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Validate and inspect checklists and methodologies.
    #[command(subcommand)]
    Checklist(ChecklistCommand),
    /// Score an answers file offline, as the API would.
    Score {
        /// Answers JSON: `{"methodology"?, "answers": {"checklist.item": value}, "survey"?}`.
        #[arg(long)]
        answers: PathBuf,
        /// Methodology id [default: the answers' own, else the catalog default].
        #[arg(long)]
        methodology: Option<String>,
        /// `json` or `text`.
        #[arg(long, default_value = "json")]
        format: Format,
    },
    /// Inspect the tamper-evident audit log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Walk the hash chain; exit status 1 naming the first changed, removed
    /// or reordered entry.
    Verify,
    /// Put entries set aside by sealing back in line, once their cause is fixed.
    Requeue,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "DOSTUP_BIND")]
    bind: Option<String>,
    /// Seed a demo region, institutions and one user per role, and print the logins.
    #[arg(long, env = "DOSTUP_DEMO")]
    demo: bool,
    /// Origins allowed by CORS, comma-separated (`*` for any) [default: none].
    #[arg(long, env = "DOSTUP_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Option<Vec<String>>,
    /// Largest accepted JSON request body in bytes [default: 2097152].
    #[arg(long, env = "DOSTUP_BODY_LIMIT_BYTES")]
    body_limit_bytes: Option<usize>,
    /// Lifetime of access tokens in seconds [default: 900].
    #[arg(long, env = "DOSTUP_ACCESS_TOKEN_TTL_SECS")]
    access_token_ttl_secs: Option<u64>,
    /// Lifetime of refresh tokens in seconds [default: 2592000].
    #[arg(long, env = "DOSTUP_REFRESH_TOKEN_TTL_SECS")]
    refresh_token_ttl_secs: Option<u64>,
    /// Login attempts allowed per account and minute [default: 10].
    #[arg(long, env = "DOSTUP_LOGIN_ATTEMPTS_PER_MINUTE")]
    login_attempts_per_minute: Option<u32>,
    /// Where photos are stored: `fs` (under the data directory) or `s3` [default: fs].
    #[arg(long, env = "DOSTUP_STORAGE")]
    storage: Option<String>,
    /// S3 endpoint URL, e.g. http://127.0.0.1:3900 (with --storage s3).
    #[arg(long, env = "DOSTUP_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region the server expects [default: us-east-1].
    #[arg(long, env = "DOSTUP_S3_REGION")]
    s3_region: Option<String>,
    /// S3 bucket, created if missing.
    #[arg(long, env = "DOSTUP_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// Largest photo accepted, in bytes [default: 41943040].
    #[arg(long, env = "DOSTUP_PHOTO_MAX_BYTES")]
    photo_max_bytes: Option<u64>,
    /// Photos taken farther than this many metres from the site are flagged [default: 300].
    #[arg(long, env = "DOSTUP_PHOTO_MAX_DISTANCE_M")]
    photo_max_distance_m: Option<f64>,
    /// Unfinished resumable uploads expire after this many seconds [default: 86400].
    #[arg(long, env = "DOSTUP_UPLOAD_EXPIRY_SECS")]
    upload_expiry_secs: Option<u64>,
    /// Unreferenced blobs are swept after this many seconds [default: 3600].
    #[arg(long, env = "DOSTUP_BLOB_GRACE_SECS")]
    blob_grace_secs: Option<u64>,
    /// Audits whose last written state is kept in memory, so the next batch of answers needs no read first; 0 keeps none [default: 4096].
    #[arg(long, env = "DOSTUP_AUDIT_CACHE_ENTRIES")]
    audit_cache_entries: Option<usize>,
    /// When a pooled PostgreSQL connection is tested before use: `always`, or `when-in-doubt` (idle for 10 s, or just after a failure; saves a round trip per query, but a connection lost without a reset holds its query until the system gives up) [default: always].
    #[arg(long, env = "DOSTUP_DATABASE_PING")]
    database_ping: Option<String>,
    /// Take the client address from X-Forwarded-For (only behind a proxy you run).
    #[arg(long, env = "DOSTUP_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: Option<bool>,
}

#[derive(Debug, Subcommand)]
enum ChecklistCommand {
    /// Check every checklist and methodology; exit status 1 with every error listed.
    Lint {
        /// Directory to check [default: the checklists directory].
        dir: Option<PathBuf>,
    },
    /// Print the compiled form of a checklist, as mobile clients receive it.
    Show {
        id: String,
        /// `json` or `text`.
        #[arg(long, default_value = "json")]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from DOSTUP_USER_PASSWORD or,
    /// with --password-stdin, from the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Organisation id (UUID).
        #[arg(long)]
        organisation: Option<uuid::Uuid>,
        /// Limit the user to a region (two digits).
        #[arg(long)]
        region: Option<RegionCode>,
        /// Limit the user to a sector.
        #[arg(long, value_parser = parse_sector)]
        sector: Option<Sector>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|e: dostup::domain::UnknownValue| e.to_string())
}

fn parse_sector(s: &str) -> Result<Sector, String> {
    s.parse()
        .map_err(|e: dostup::domain::UnknownValue| e.to_string())
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("DOSTUP_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn settings(common: &Common, mut over: Overrides) -> anyhow::Result<Settings> {
    let file = match &common.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    over.data_dir = common.data_dir.clone();
    over.checklists_dir = common.checklists_dir.clone();
    over.database_url = common.database_url.clone();
    over.token_secret = std::env::var("DOSTUP_TOKEN_SECRET").ok();
    over.s3_access_key = std::env::var("DOSTUP_S3_ACCESS_KEY").ok();
    over.s3_secret_key = std::env::var("DOSTUP_S3_SECRET_KEY").ok();
    Ok(Settings::resolve(file, over)?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("dostup {}", dostup::VERSION);
            Ok(())
        }
        Command::Serve(args) => serve(&cli.common, *args).await,
        Command::Checklist(ChecklistCommand::Lint { dir }) => {
            let dir = match dir {
                Some(dir) => dir,
                None => settings(&cli.common, Overrides::default())?.checklists_dir,
            };
            let report = checklist::lint(&dir);
            if report.ok {
                println!("{}", report.text);
                Ok(())
            } else {
                eprintln!("{}", report.text);
                bail!("{} does not lint", dir.display())
            }
        }
        Command::Checklist(ChecklistCommand::Show { id, format }) => {
            let catalog = load_catalog(&cli.common)?;
            println!("{}", checklist::show(&catalog, &id, format)?);
            Ok(())
        }
        Command::Score {
            answers,
            methodology,
            format,
        } => {
            let catalog = load_catalog(&cli.common)?;
            let text = std::fs::read_to_string(&answers)
                .with_context(|| format!("cannot read {}", answers.display()))?;
            let out = checklist::score(&catalog, &text, methodology.as_deref(), format)
                .with_context(|| format!("cannot score {}", answers.display()))?;
            println!("{out}");
            Ok(())
        }
        Command::Migrate { status } => {
            let settings = settings(&cli.common, Overrides::default())?;
            std::fs::create_dir_all(&settings.data_dir)?;
            let conn = db::connect(&settings.database_url).await?;
            if !status {
                db::migrate(&conn).await?;
            }
            for (name, applied) in db::migration_status(&conn).await? {
                println!("{} {name}", if applied { "applied" } else { "pending" });
            }
            Ok(())
        }
        Command::User(UserCommand::Create {
            email,
            role,
            display_name,
            organisation,
            region,
            sector,
            password_stdin,
        }) => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                match std::env::var("DOSTUP_USER_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        bail!("give the password in DOSTUP_USER_PASSWORD or with --password-stdin")
                    }
                }
            };
            let state = build_state(settings(&cli.common, Overrides::default())?).await?;
            let account = NewAccount {
                email,
                password,
                display_name,
                role,
                organisation_id: organisation,
                region,
                sector,
            };
            let user = create_account(&state.db, account).await?;
            db::audit_log::record(
                &state.db,
                &db::audit_log::Actor::system(),
                db::audit_log::Entry::new("user.created", "user", user.id).detail(
                    serde_json::json!({"email": user.email, "role": user.role, "via": "command line"}),
                ),
            )
            .await?;
            // Chain the entry now rather than leave it to the next service start.
            db::outbox::flush(&state.db).await?;
            println!("created {} ({}) with id {}", user.email, user.role, user.id);
            Ok(())
        }
        Command::Log(LogCommand::Verify) => {
            let settings = settings(&cli.common, Overrides::default())?;
            let conn = db::connect(&settings.database_url).await?;
            let report = db::audit_log::verify(&conn).await?;
            let unsealed = report.unsealed;
            if unsealed.set_aside > 0 {
                eprintln!(
                    "warning: {} entries were set aside because they could not be sealed \
                     (the service log says why); they are not in the chain until \
                     `dostup log requeue`",
                    unsealed.set_aside
                );
            }
            match report.first_broken {
                None => {
                    println!(
                        "audit log intact: {} entries, head {} {}",
                        report.entries, report.head_seq, report.head_hash
                    );
                    if unsealed.waiting > 0 {
                        println!("{} entries wait to be sealed", unsealed.waiting);
                    }
                    Ok(())
                }
                Some(broken) => {
                    eprintln!(
                        "audit log broken at entry {} ({:?}): {}",
                        broken.seq, broken.breach, broken.message
                    );
                    bail!("the audit log does not verify")
                }
            }
        }
        Command::Log(LogCommand::Requeue) => {
            let settings = settings(&cli.common, Overrides::default())?;
            let conn = db::connect(&settings.database_url).await?;
            let requeued = db::outbox::requeue(&conn).await?;
            println!("{requeued} entries put back in line");
            db::outbox::flush(&conn)
                .await
                .context("sealing them failed; a running service sets them aside again")?;
            let left = db::outbox::backlog(&conn).await?.set_aside;
            if left > 0 {
                bail!("{left} entries cannot be read and are set aside again");
            }
            println!("sealed");
            Ok(())
        }
    }
}

fn load_catalog(common: &Common) -> anyhow::Result<Catalog> {
    let dir = settings(common, Overrides::default())?.checklists_dir;
    Catalog::load_dir(&dir).map_err(|errors| {
        anyhow::anyhow!(
            "{errors}\n{} error(s) in {}",
            errors.errors.len(),
            dir.display()
        )
    })
}

async fn serve(common: &Common, args: ServeArgs) -> anyhow::Result<()> {
    let over = Overrides {
        bind: args.bind,
        cors_origins: args.cors_origins,
        body_limit_bytes: args.body_limit_bytes,
        access_token_ttl_secs: args.access_token_ttl_secs,
        refresh_token_ttl_secs: args.refresh_token_ttl_secs,
        login_attempts_per_minute: args.login_attempts_per_minute,
        trust_forwarded_for: args.trust_forwarded_for,
        storage: args.storage,
        s3_endpoint: args.s3_endpoint,
        s3_region: args.s3_region,
        s3_bucket: args.s3_bucket,
        photo_max_bytes: args.photo_max_bytes,
        photo_max_distance_m: args.photo_max_distance_m,
        upload_expiry_secs: args.upload_expiry_secs,
        blob_grace_secs: args.blob_grace_secs,
        audit_cache_entries: args.audit_cache_entries,
        database_ping: args.database_ping,
        ..Overrides::default()
    };
    let settings = settings(common, over)?;
    tracing::info!(?settings, "starting");
    let server = Server::bind(settings).await?;
    if args.demo {
        let logins = demo::seed(&server.state().db)
            .await
            .context("demo seed failed")?;
        println!("Demo logins (password `{}`):", demo::DEMO_PASSWORD);
        for login in logins {
            println!("  {:<24} {}", login.email, login.role);
        }
    }
    dostup::maintenance::spawn_periodic(
        server.state().clone(),
        std::time::Duration::from_secs(600),
    );
    let addr = server.local_addr()?;
    // On stdout, so scripts (and tests) that bind port 0 learn the address.
    println!("Listening on http://{addr} (API documentation at http://{addr}/api/v1/docs/)");
    server.run(shutdown_signal()).await?;
    Ok(())
}
