//! `kubectl sluice`: the kubectl plugin for CanaryRollouts.
//!
//! `get` and `status` turn CanaryRollout, ParityPolicy and SLOBudget objects into tables and
//! explanations (`table`, `explain`: pure, unit-tested); `promote`, `abort`, `retry` and
//! `unfreeze` set the request annotations the operator already acts on, `pause` and `resume`
//! set `spec.paused` (`requests`: the patches, pure); `watch` follows one rollout until it
//! settles (`watch`: what changed and when it is over, pure); `pipeline` shows a
//! ReleasePipeline's release × environment matrix (pure); `freeze` and `thaw` create and delete
//! a DeliveryFreeze (`freeze`: the manifest, pure). `commands` does the I/O. The
//! plugin never decides anything about a rollout itself: the operator does.

pub mod cli;
mod commands;
pub mod error;
pub mod explain;
pub mod format;
pub mod freeze;
pub mod holding;
pub mod pipeline;
pub mod requests;
pub mod table;
pub mod watch;

#[cfg(test)]
mod fixtures;

pub use cli::Cli;
use cli::Command;
use commands::Session;
pub use error::PluginError;
use requests::Request;

/// How the command ended, beside errors (which exit 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// The watched rollout settled without succeeding.
    Failure,
    /// Ctrl-C during `watch`.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Interrupted => 130,
        }
    }
}

pub async fn run(cli: Cli) -> Result<Exit, PluginError> {
    let session = Session::connect(&cli.connection).await?;
    let done = match cli.command {
        Command::Get(args) => commands::get(&session, &args).await,
        Command::Status(t) => commands::status(&session, &t.name).await,
        Command::Promote(t) => commands::request(&session, &t.name, Request::Promote).await,
        Command::Abort(t) => commands::request(&session, &t.name, Request::Abort).await,
        Command::Retry(t) => commands::request(&session, &t.name, Request::Retry).await,
        Command::Unfreeze(t) => commands::request(&session, &t.name, Request::Unfreeze).await,
        Command::Pause(t) => commands::set_paused(&session, &t.name, true).await,
        Command::Resume(t) => commands::set_paused(&session, &t.name, false).await,
        Command::Pipeline(args) => commands::pipeline(&session, &args).await,
        Command::Freeze(args) => commands::freeze(&session, &args).await,
        Command::Thaw(args) => commands::thaw(&session, &args).await,
        Command::Watch(args) => return commands::watch(&session, &args).await,
        Command::Dashboard(args) => commands::dashboard(&session, &args).await,
    };
    done.map(|()| Exit::Success)
}
