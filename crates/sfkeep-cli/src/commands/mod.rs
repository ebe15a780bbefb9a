//! The commands, one per module, and the argument grammar.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::CliResult;
use crate::exit::Exit;
use crate::session::Globals;

mod api;
mod doctor;
mod events;
#[cfg(feature = "fake-org")]
mod fake_org;
mod login;
mod logout;
mod proxy;
mod query;
mod recover;
mod status;
mod sync;
mod token;

/// sfkeep keeps Salesforce integrations authenticated.
#[derive(Debug, Parser)]
#[command(name = "sfkeep", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: ./sfkeep.toml, then $XDG_CONFIG_HOME/sfkeep/sfkeep.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Profile in the config file (default: `default`). `sfkeep serve` takes several.
    #[arg(long, global = true, value_name = "NAME", env = "SFKEEP_PROFILE", action = clap::ArgAction::Append)]
    pub profile: Vec<String>,
    /// Bind outgoing connections to this local address (e.g. 127.0.0.2).
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "IP",
        env = "SFKEEP_BIND_ADDRESS"
    )]
    pub bind_address: Option<String>,
    /// Print one JSON document on stdout instead of text, for results and errors alike: the
    /// envelope `{"sfkeep":1,"command","ok","result","error","warnings"}` (see the README).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole story on the embedded simulated org: a billing sync through every cause of
    /// session death, and proof that nothing was lost.
    #[cfg(feature = "fake-org")]
    Demo(crate::demo::DemoArgs),
    /// One authenticated API request that heals like the library.
    Api(api::ApiArgs),
    /// The auth-injecting loopback proxy: integrations in any language point at it.
    Proxy(proxy::ProxyArgs),
    /// Every record of a SOQL query, across pages.
    Query(query::QueryArgs),
    /// The billing sync integration: Accounts into SQLite, incremental and idempotent.
    Sync(sync::SyncArgs),
    /// Run the simulated Salesforce org; prints one JSON line when ready.
    #[cfg(feature = "fake-org")]
    FakeOrg(fake_org::FakeOrgArgs),
    /// Obtain a token with one grant and store it.
    Login(login::LoginArgs),
    /// Forget the stored token; with --revoke, revoke this profile's refresh token.
    Logout(logout::LogoutArgs),
    /// Print a valid access token, for scripts.
    Token(token::TokenArgs),
    /// Token state, expiry, generation and store; never the token.
    Status(status::StatusArgs),
    /// Why the session died: the causes ranked, with evidence and the fix. `--error` classifies
    /// a pasted error offline.
    Doctor(doctor::DoctorArgs),
    /// Auth events from the audit log.
    Events(events::EventsArgs),
    /// Re-authenticate with the best grant, verify, store, and tell a running proxy.
    Recover(recover::RecoverArgs),
    /// The guardian: keeps refresh tokens alive, forecasts session deaths, alerts a person,
    /// and serves a status page. Prints one JSON line when ready.
    Serve(crate::serve::ServeArgs),
}

impl Cli {
    /// Parses the command line, noting which global options were typed on it.
    pub fn parse_args() -> Result<(Self, crate::session::Explicit), clap::Error> {
        use clap::parser::ValueSource;
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches()?;
        let cli = Cli::from_arg_matches(&matches)?;
        // A global option typed after the subcommand is recorded in the subcommand's matches.
        let typed = |id: &str| {
            std::iter::once(&matches)
                .chain(matches.subcommand().map(|(_, m)| m))
                .any(|m| m.value_source(id) == Some(ValueSource::CommandLine))
        };
        let explicit = crate::session::Explicit {
            profile: typed("profile"),
            config: typed("config"),
        };
        Ok((cli, explicit))
    }

    /// The subcommand called `name`, as the envelope names it, if there is one.
    pub fn command_name(name: &str) -> Option<String> {
        use clap::CommandFactory;
        Cli::command()
            .get_subcommands()
            .find(|c| c.get_name() == name)
            .map(|c| c.get_name().to_owned())
    }
}

impl Command {
    /// The subcommand's name, as typed (`fake-org`, `token`, …): `command` in the envelope.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "fake-org")]
            Command::Demo(_) => "demo",
            Command::Api(_) => "api",
            Command::Proxy(_) => "proxy",
            Command::Query(_) => "query",
            Command::Sync(_) => "sync",
            #[cfg(feature = "fake-org")]
            Command::FakeOrg(_) => "fake-org",
            Command::Login(_) => "login",
            Command::Logout(_) => "logout",
            Command::Token(_) => "token",
            Command::Status(_) => "status",
            Command::Doctor(_) => "doctor",
            Command::Events(_) => "events",
            Command::Recover(_) => "recover",
            Command::Serve(_) => "serve",
        }
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli, explicit: crate::session::Explicit) -> CliResult<Exit> {
    crate::output::init(cli.json, cli.command.name());
    crate::net::set_bind_address(cli.bind_address.as_deref())?;
    if cli.profile.len() > 1 && !matches!(cli.command, Command::Serve(_)) {
        return Err(crate::error::CliError::usage(format!(
            "--profile is given {} times; only `sfkeep serve` watches several profiles.",
            cli.profile.len()
        )));
    }
    let g = Globals {
        config: cli.config,
        profile: cli.profile.last().cloned(),
        profiles: cli.profile,
        explicit,
    };
    match cli.command {
        #[cfg(feature = "fake-org")]
        Command::Demo(a) => crate::demo::run(a, &g.explicit).await,
        Command::Sync(a) => sync::run(&g, a).await,
        Command::Api(a) => api::run(&g, a).await,
        Command::Query(a) => query::run(&g, a).await,
        Command::Proxy(a) => proxy::run(&g, a).await,
        #[cfg(feature = "fake-org")]
        Command::FakeOrg(a) => fake_org::run(a).await,
        Command::Login(a) => login::run(&g, a).await,
        Command::Logout(a) => logout::run(&g, a).await,
        Command::Token(a) => token::run(&g, a).await,
        Command::Status(a) => status::run(&g, a).await,
        Command::Doctor(a) => doctor::run(&g, a).await,
        Command::Events(a) => events::run(&g, a).await,
        Command::Recover(a) => recover::run(&g, a).await,
        Command::Serve(a) => crate::serve::run(&g, a).await,
    }
}
