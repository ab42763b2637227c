//! `keyward serve`, `keyward init` and `keyward audit verify`: the commands
//! that open the store themselves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{EXIT_CLEAN, EXIT_FINDINGS};
use keyward::config::{load_rules, RuleSources};
use keyward::config::{Config, ServerSettings};
use keyward::engine::{Engine, EngineOptions};
use keyward::keys::fingerprint::Fingerprinter;
use keyward::keys::scopes::Catalog;
use keyward::response::alerts::{AlertWorker, EmailSettings};
use keyward::response::partners::PartnerKeys;
use keyward::response::LeakResponder;
use keyward::server::{app, ServerParts, Webhooks};
use keyward::service::KeyService;
use keyward::sources::feed::FeedPoller;
use keyward::sources::github::GitHubApi;
use keyward::sources::gitlab::GitLabApi;
use keyward::sources::pushes::{CodeHosts, PushWorker};
use keyward::sources::schedule::Scheduler;
use keyward::sources::watch;
use keyward::sources::while_leader;

/// How often verify counts reach the database when few keys are in use.
const USAGE_FLUSH: Duration = Duration::from_secs(1);
/// With this many keys counted since the last flush, the flush waits up to
/// [`BUSY_USAGE_FLUSH`]: every key costs rows whatever its count, and over
/// 20,000 keys a flush each second took a fifth of the server's time.
const BUSY_USAGE_KEYS: usize = 1_000;
const BUSY_USAGE_FLUSH: Duration = Duration::from_secs(5);

#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// Data directory (SQLite database and generated pepper).
    #[arg(long, env = "KEYWARD_DATA")]
    data_dir: Option<PathBuf>,
    /// Configuration file (default: ./keyward.toml when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "KEYWARD_LISTEN")]
    listen: Option<String>,
}

#[derive(clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Email of the owner user to create.
    #[arg(long, default_value = "owner@localhost")]
    owner_email: String,
    /// Name of the first project.
    #[arg(long, default_value = "default")]
    project_name: String,
    /// Print `{"project_id", "admin_key", "owner"}` as JSON.
    #[arg(long)]
    json: bool,
}

struct Opened {
    service: Arc<KeyService>,
    settings: ServerSettings,
    config_path: Option<PathBuf>,
    third_party: keyward::response::third_party::ThirdPartySettings,
}

async fn open(args: &StoreArgs, listen: Option<String>) -> Result<Opened> {
    let config = Config::load(args.config.as_deref())?;
    let settings = ServerSettings::resolve(&config, args.data_dir.clone(), listen);
    std::fs::create_dir_all(&settings.data_dir).with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let pepper = settings.pepper()?;
    let catalog = if config.scopes.is_empty() {
        Catalog::default()
    } else {
        Catalog::with_products(&config.scopes)?
    };
    let store = keyward::store::Store::open(&settings.database_url)
        .await
        .context("opening the database")?;
    let mut fingerprinter = Fingerprinter::new(&pepper)?;
    match settings.previous_pepper()? {
        Some(previous) => fingerprinter = fingerprinter.with_previous(&previous)?,
        None => {
            store.label_unlabelled_keys(fingerprinter.pepper_id()).await?;
        }
    }
    let stale = store.keys_on_other_peppers(fingerprinter.pepper_id()).await?;
    if stale > 0 {
        tracing::warn!(
            keys = stale,
            previous_pepper = fingerprinter.previous().is_some(),
            "active keys are still fingerprinted with another pepper; they move to the current one when next used"
        );
    }
    let third_party = settings.third_party(&config.third_party)?;
    let outbound = keyward::service::outbound::OutboundPolicy::from_setting(settings.allow_private_targets);
    let service = KeyService::new(store, fingerprinter, catalog, &settings.prefix)?
        .with_outbound(outbound)
        .with_email_alerts(settings.smtp_url.is_some());
    Ok(Opened {
        service: Arc::new(service),
        settings,
        config_path: args.config.clone(),
        third_party,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

pub fn init(args: InitArgs) -> Result<u8> {
    runtime()?.block_on(async {
        let opened = open(&args.store, None).await?;
        if opened.service.store().user_count().await? > 0 {
            bail!("{} is already initialised", opened.settings.database_url_for_display());
        }
        let (project, issued, _) = opened.service.bootstrap(&args.owner_email, &args.project_name).await?;
        if args.json {
            let out = serde_json::json!({"project_id": project.id, "admin_key": issued.secret.expose(), "owner": args.owner_email});
            println!("{out}");
        } else {
            println!("project: {}", project.id);
            println!("owner: {}", args.owner_email);
            println!("admin key (shown once, store it now): {}", issued.secret.expose());
        }
        opened.service.store().close().await;
        Ok(EXIT_CLEAN)
    })
}

pub fn serve(args: ServeArgs) -> Result<u8> {
    init_tracing();
    runtime()?.block_on(async {
        let opened = open(&args.store, args.listen.clone()).await?;
        let service = opened.service.clone();
        let bootstrap = if service.store().user_count().await? == 0 {
            Some(service.bootstrap("owner@localhost", "default").await?)
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(&opened.settings.listen)
            .await
            .with_context(|| format!("listening on {}", opened.settings.listen))?;
        println!("keyward listening on http://{}", listener.local_addr()?);
        if let Some((project, issued, _)) = &bootstrap {
            println!("project: {}", project.id);
            println!("admin key (shown once, store it now): {}", issued.secret.expose());
        }
        tracing::info!(database = %opened.settings.database_url_for_display(), "serving");
        tracing::info!(
            webhook = "on, for projects that set one",
            slack = "on, for projects that set one",
            email = if opened.settings.smtp_url.is_some() {
                "on"
            } else {
                "off: no SMTP server (KEYWARD_SMTP_URL)"
            },
            "alert channels"
        );
        let preloading = service.clone();
        tokio::spawn(async move {
            match preloading.verifier().preload().await {
                Ok(n) => tracing::info!(keys = n, "verify cache preloaded"),
                Err(e) => tracing::warn!(error = %e, "verify cache not preloaded; keys load as they are used"),
            }
        });
        let flusher = tokio::spawn(flush_usage_forever(service.clone()));
        let coherence = tokio::spawn(service.verifier().clone().follow_other_replicas());
        let engine = scanner(&opened)?;
        let responder = Arc::new(
            LeakResponder::new(service.clone())
                .with_engine(engine.clone())
                .with_third_party(opened.third_party.clone()),
        );
        log_third_party(&opened.third_party);
        let email = EmailSettings {
            smtp_url: opened.settings.smtp_url.clone(),
            from: opened.settings.smtp_from.clone(),
        };
        let worker = AlertWorker::new(service.store().clone(), email, responder.alert_signal())
            .with_outbound(service.outbound())
            .with_lease_ms(opened.settings.job_lease_ms);
        let mut workers = vec![worker.id().to_string()];
        let alerts = tokio::spawn(worker.run());
        let notices =
            keyward::response::expiry::ExpiryNotices::new(service.clone(), &opened.settings.expiry_notice_days, responder.alert_signal());
        let notices = tokio::spawn(notices.run());
        let webhooks = Webhooks {
            github_secret: opened.settings.github.webhook_secret.clone(),
            gitlab_secret: opened.settings.gitlab.webhook_secret.clone(),
            wake: Arc::new(tokio::sync::Notify::new()),
            queue_limit: opened.settings.webhook_queue_limit,
        };
        let revoker = responder.revocation_worker().with_lease_ms(opened.settings.job_lease_ms);
        workers.push(revoker.id().to_string());
        let revocations = tokio::spawn(revoker.run());
        let sources = start_sources(&opened, &responder, engine, &webhooks)?;
        workers.push(sources.push_worker.clone());
        let partner_keys = |url: &Option<String>| url.clone().map(|u| Arc::new(PartnerKeys::new(u)));
        let router = app(ServerParts {
            service: service.clone(),
            responder,
            github_keys: partner_keys(&opened.settings.github_keys_url),
            gitlab_keys: partner_keys(&opened.settings.gitlab_keys_url),
            webhooks,
            console: Arc::new(keyward::server::console::Console::new(opened.settings.secure_cookies)),
            limits: Arc::new(keyward::server::limits::RateLimits::from_env()),
            trusted_proxies: Arc::new(
                keyward::server::client::TrustedProxies::parse(&opened.settings.trusted_proxies).context("trusted proxies")?,
            ),
        });
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        flusher.abort();
        coherence.abort();
        // Stop taking work, then hand back what is claimed so another
        // replica (or the next start) runs it now, not after the lease.
        alerts.abort();
        revocations.abort();
        notices.abort();
        sources.stop();
        for worker in &workers {
            match service.store().release_jobs(worker, keyward::store::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "claimed jobs released"),
                Err(e) => tracing::warn!(error = %e, "claimed jobs not released; their lease will run out"),
            }
        }
        service.verifier().flush_usage().await.context("flushing usage counters")?;
        service.store().close().await;
        tracing::info!("stopped");
        Ok(EXIT_CLEAN)
    })
}

/// The daemon's leak sources, stopped together at shutdown.
struct Sources {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    push_worker: String,
    _watch: Option<watch::Watch>,
}

impl Sources {
    fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The deployment's scanner: the shipped rules and the operator's own
/// (from a configuration given or found), for its token prefix.
fn scanner(opened: &Opened) -> Result<Arc<Engine>> {
    let config = opened.config_path.clone().or_else(|| {
        let found = PathBuf::from(keyward::config::DEFAULT_CONFIG_FILE);
        found.is_file().then_some(found)
    });
    let rules = load_rules(&RuleSources {
        prefixes: vec![opened.settings.prefix.clone()],
        config,
        ..RuleSources::default()
    })?;
    Ok(Arc::new(
        Engine::new(rules, EngineOptions::default()).context("building the scanner")?,
    ))
}

/// Says once at start-up what happens to other issuers' tokens.
fn log_third_party(settings: &keyward::response::third_party::ThirdPartySettings) {
    let overrides: Vec<String> = settings.overrides.iter().map(|(k, v)| format!("{k}={}", v.as_str())).collect();
    tracing::info!(
        policy = settings.policy.as_str(),
        overrides = %overrides.join(","),
        vault_addrs = settings.endpoints.vault_addrs.len(),
        gitlab_admin_token = settings.endpoints.gitlab_admin_token.is_some(),
        "third-party tokens"
    );
}

/// The push worker always runs (webhooks only queue); the feed, watched
/// paths and scheduled scans run when configured.
fn start_sources(opened: &Opened, responder: &Arc<LeakResponder>, engine: Arc<Engine>, webhooks: &Webhooks) -> Result<Sources> {
    let settings = &opened.settings;
    let github = GitHubApi::new(&settings.github.api_url, settings.github.token.as_deref())?;
    let push_reader = match &settings.github.app {
        Some((app_id, key_file)) => {
            let pem = std::fs::read(key_file).with_context(|| format!("reading the GitHub App key {}", key_file.display()))?;
            GitHubApi::app(&settings.github.api_url, *app_id, &pem)?
        }
        None => github.clone(),
    };
    let hosts = CodeHosts {
        github: Some(push_reader),
        gitlab: Some(GitLabApi::new(&settings.gitlab.api_url, settings.gitlab.token.as_deref())?),
    };
    let worker = PushWorker::new(responder.clone(), engine.clone(), hosts, webhooks.wake.clone()).with_lease_ms(settings.job_lease_ms);
    let push_worker = worker.id().to_string();
    let mut tasks = vec![tokio::spawn(worker.run())];
    if let Some(options) = settings.feed.clone() {
        tracing::info!(feeds = ?options.feeds, "polling GitHub's event feed");
        let poller = Arc::new(FeedPoller::new(github, responder.clone(), engine.clone(), options));
        let store = opened.service.store().clone();
        tasks.push(tokio::spawn(while_leader(store, "feed", move || {
            let poller = poller.clone();
            async move { poller.run().await }
        })));
    }
    if !settings.schedule.is_empty() {
        let scheduler = Arc::new(Scheduler::new(
            settings.schedule.clone(),
            engine.clone(),
            responder.clone(),
            settings.data_dir.join("mirrors"),
        ));
        let store = opened.service.store().clone();
        tasks.push(tokio::spawn(while_leader(store, "schedule", move || {
            let scheduler = scheduler.clone();
            async move { scheduler.run().await }
        })));
    }
    let watch = if settings.watch_paths.is_empty() {
        None
    } else {
        tracing::info!(paths = ?settings.watch_paths, "watching paths");
        let options = watch::WatchOptions {
            max_file_bytes: settings.watch_max_file_bytes,
            ..watch::WatchOptions::default()
        };
        Some(watch::start_with(
            &settings.watch_paths,
            options,
            engine,
            responder.clone(),
            tokio::runtime::Handle::current(),
        )?)
    };
    Ok(Sources {
        tasks,
        push_worker,
        _watch: watch,
    })
}

async fn flush_usage_forever(service: Arc<KeyService>) {
    let mut tick = tokio::time::interval(USAGE_FLUSH);
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let verifier = service.verifier();
        if verifier.keys_counted() >= BUSY_USAGE_KEYS && last.elapsed() < BUSY_USAGE_FLUSH {
            continue;
        }
        last = tokio::time::Instant::now();
        if let Err(e) = verifier.flush_usage().await {
            tracing::warn!(error = %e, "usage flush failed; counts are kept for the next one");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Logs go to stderr; `RUST_LOG` filters them, `KEYWARD_LOG_FORMAT=json`
/// makes them JSON lines.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("KEYWARD_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[derive(clap::Subcommand)]
pub enum UsersCommand {
    /// Create a console user (or set an existing user's password). The
    /// password is read from the first line of stdin, never from a flag.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The person's email: they sign in with it.
        #[arg(long)]
        email: String,
        /// Also make the user a member of this project.
        #[arg(long, requires = "role")]
        project: Option<String>,
        /// viewer, member or admin.
        #[arg(long, requires = "project")]
        role: Option<String>,
        /// Also let the user act at deployment level: create projects, read
        /// the leak sources, and issue keys with `deployment:admin`.
        #[arg(long)]
        deployment_owner: bool,
    },
}

pub fn users(command: UsersCommand) -> Result<u8> {
    let UsersCommand::Create {
        store,
        email,
        project,
        role,
        deployment_owner,
    } = command;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    runtime()?.block_on(async {
        let opened = open(&store, None).await?;
        let cli = keyward::service::Caller::system("cli");
        let user_id = opened.service.set_password(&cli, &email, password).await?;
        if let (Some(project), Some(role)) = (project, role) {
            let role = keyward::store::Role::parse(&role)
                .filter(|r| *r != keyward::store::Role::Owner)
                .with_context(|| format!("role {role:?}: use viewer, member or admin"))?;
            opened.service.add_member(&cli, &project, &email, role).await?;
        }
        if deployment_owner {
            opened.service.make_deployment_owner(&cli, &user_id).await?;
            println!("user {user_id} ({email}) is a deployment owner");
        }
        opened.service.store().close().await;
        println!("user {user_id} ({email}) can sign in at /console");
        Ok(EXIT_CLEAN)
    })
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the audit hash chain and report the first broken link.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn audit(command: AuditCommand) -> Result<u8> {
    let AuditCommand::Verify { store } = command;
    runtime()?.block_on(async {
        let opened = open(&store, None).await?;
        let (checked, broken) = opened.service.store().verify_audit_chain().await?;
        opened.service.store().close().await;
        match broken {
            None => {
                println!("audit chain intact: {checked} events");
                Ok(EXIT_CLEAN)
            }
            Some(b) => {
                println!(
                    "audit chain broken at event {}: {} ({checked} events before it are intact)",
                    b.seq, b.problem
                );
                Ok(EXIT_FINDINGS)
            }
        }
    })
}
