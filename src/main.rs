//! The `onair` command line (process entry): `serve` (the default) runs the server and prints
//! ready-to-open links; `token` mints a JWT with the server's secret.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use onair::auth::{Role, TokenKeys, load_or_create_secret};
use onair::config::{Config, Overrides, PortRange};
use onair::server::Server;

/// jemalloc: LL-HLS serving spent a fifth of its time in glibc malloc (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "onair",
    version,
    about = "Self-hosted live streaming: WHIP in, WHEP out."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Print a signed token.
    Token(TokenArgs),
}

#[derive(Args, Clone, Default)]
struct CommonArgs {
    /// Configuration file (default: ./onair.toml when present).
    #[arg(long, env = "ONAIR_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (JWT secret, recordings).
    #[arg(long, env = "ONAIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// HTTP listen address.
    #[arg(long, env = "ONAIR_HTTP")]
    http: Option<SocketAddr>,
    /// HTTPS listen address (HTTP/2 + HTTP/1.1), or `off`. Default 0.0.0.0:8443.
    #[arg(long, env = "ONAIR_HTTPS")]
    https: Option<onair::http::tls::HttpsAddr>,
    /// UDP port range for media, FIRST-LAST.
    #[arg(long, env = "ONAIR_UDP_PORTS")]
    udp_ports: Option<PortRange>,
    /// IP the media sockets bind to (0.0.0.0: every non-loopback interface).
    #[arg(long, env = "ONAIR_UDP_HOST")]
    udp_host: Option<IpAddr>,
    /// Public IP to advertise behind 1:1 NAT.
    #[arg(long, env = "ONAIR_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// Log as JSON lines.
    #[arg(long, env = "ONAIR_LOG_JSON")]
    log_json: bool,
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Room name, or `*` for every room.
    #[arg(long, required_unless_present = "admin")]
    room: Option<String>,
    /// broadcaster, guest, moderator or viewer.
    #[arg(long, required_unless_present = "admin")]
    role: Option<Role>,
    /// An admin token (every room, every action, the admin API).
    #[arg(long)]
    admin: bool,
    /// Display name.
    #[arg(long)]
    name: String,
    /// User id (default: derived from the name).
    #[arg(long)]
    sub: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

fn load_config(common: &CommonArgs, serve: Option<&ServeArgs>) -> anyhow::Result<Config> {
    let mut overrides = Overrides {
        data_dir: common.data_dir.clone(),
        jwt_secret: std::env::var("ONAIR_JWT_SECRET")
            .ok()
            .filter(|s| !s.is_empty()),
        ..Default::default()
    };
    if let Some(s) = serve {
        overrides.http = s.http;
        overrides.https = s.https.map(|h| h.0);
        overrides.udp_ports = s.udp_ports;
        overrides.udp_host = s.udp_host;
        overrides.public_ip = s.public_ip;
    }
    Ok(Config::load(common.config.as_deref(), overrides)?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token(args),
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let room = args.room.clone().unwrap_or_else(|| "*".to_owned());
    anyhow::ensure!(
        room == "*" || onair::room::is_valid_room_name(&room),
        "--room must be `*` or 1-64 characters of A-Z, a-z, 0-9, '-' and '_'"
    );
    let config = load_config(&args.common, None)?;
    let secret = load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)
        .with_context(|| format!("JWT secret in {}", config.data_dir.display()))?;
    let sub = args
        .sub
        .unwrap_or_else(|| args.name.to_lowercase().replace(' ', "-"));
    let keys = TokenKeys::new(&secret);
    let token = match args.role {
        _ if args.admin => keys.mint_admin(&sub, &args.name, args.ttl),
        Some(role) => keys.mint_for(&room, role, &sub, &args.name, args.ttl),
        None => anyhow::bail!("--role is required (or --admin)"),
    };
    println!("{token}");
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let config = load_config(&args.common, Some(&args))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("onair")
        .build()?;
    runtime.block_on(async move {
        let room = config.demo_room.clone();
        let server = Server::start(config).await?;
        let base = server.base_url();
        let token = server.app().keys.mint_for(
            &room,
            Role::Broadcaster,
            "broadcaster",
            "Broadcaster",
            24 * 3600,
        );
        println!(
            "onair {} listening on http://{}",
            env!("CARGO_PKG_VERSION"),
            server.addr()
        );
        println!("  studio (go live): {base}/studio/{room}?token={token}");
        println!("  watch:            {base}/watch/{room}");
        println!("  live (LL-HLS):    {base}/live/{room}");
        println!("  recordings:       {base}/recordings");
        println!("  WHIP for OBS/FFmpeg: {base}/whip/{room}  (Bearer token above)");
        if let Some(secure) = server.https_base_url() {
            // Phones and other machines need HTTPS (a secure context) for the camera.
            println!("  over HTTPS (HTTP/2; camera on other machines):");
            println!("    {secure}/studio/{room}?token={token}");
            println!("    {secure}/watch/{room}   {secure}/live/{room}");
            // On a wildcard bind, also name this machine's address: that is the link another
            // device opens (the development certificate covers it).
            let wildcard = server.https_addr().is_some_and(|a| a.ip().is_unspecified());
            let lan = onair::http::tls::outbound_addresses()
                .into_iter()
                .find(|ip| ip.is_ipv4());
            if let (true, Some(ip), Some(port)) =
                (wildcard, lan, server.https_addr().map(|a| a.port()))
            {
                println!("    from another device: https://{ip}:{port}/watch/{room}");
            }
        }
        wait_for_signal().await;
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received");
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,webrtc=warn,rtc=warn,rtc_ice=warn,rtc_dtls=error")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
