//! The checkpoint commands and settings: `keys checkpoint NAME` makes a signing key, `keys
//! public` prints the verifier keys, `checkpoint` prints the signed checkpoint of the current
//! tree head; `CheckpointArgs` is how `serve`, `worker` and these find the keys and origin.

use adledger_infra::checkpoint::{CheckpointKeys, Checkpointer, CHECKPOINT_KEYS_ENV};
use adledger_infra::{EventStore, Secret};
use std::time::Duration;

/// The log's checkpoints: who signs them, under what origin, and how often.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// Checkpoint signing keys (`PRIVATE+KEY+<name>+<hexid>+<base64>`, comma-separated): the
    /// first signs, the others are still published so that older checkpoints verify. Make one
    /// with `adledger keys checkpoint NAME`. Without any, no checkpoint is issued.
    #[arg(long, env = CHECKPOINT_KEYS_ENV, hide_env_values = true)]
    pub checkpoint_keys: Option<Secret<String>>,
    /// The origin line of checkpoints: names this log (conventionally its host and path).
    #[arg(
        long,
        env = "ADLEDGER_CHECKPOINT_ORIGIN",
        default_value = "adledger.example/log"
    )]
    pub checkpoint_origin: String,
    /// Seconds between scheduled checkpoints (issued only when the log grew); 0 turns the
    /// schedule off (checkpoints are then issued on demand only).
    #[arg(long, env = "ADLEDGER_CHECKPOINT_INTERVAL_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub checkpoint_interval_secs: u64,
}

impl CheckpointArgs {
    /// The signer, or `None` when no key is configured.
    pub fn checkpointer(&self) -> anyhow::Result<Option<Checkpointer>> {
        let Some(keys) = &self.checkpoint_keys else {
            return Ok(None);
        };
        let keys = CheckpointKeys::parse(keys).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Some(Checkpointer::new(keys, &self.checkpoint_origin)?))
    }

    /// The signer, or an error saying how to configure one.
    pub fn required(&self) -> anyhow::Result<Checkpointer> {
        self.checkpointer()?.ok_or_else(|| {
            anyhow::anyhow!(
                "no checkpoint key: set {CHECKPOINT_KEYS_ENV} or --checkpoint-keys (make one \
                 with `adledger keys checkpoint NAME`)"
            )
        })
    }

    /// How often the schedule issues one, when it runs.
    pub fn interval(&self) -> Option<Duration> {
        (self.checkpoint_interval_secs > 0)
            .then(|| Duration::from_secs(self.checkpoint_interval_secs))
    }
}

/// `adledger keys checkpoint NAME`: a fresh signing key as an environment line, and its verifier
/// key as a comment after it (what `keys public` prints, for auditors).
pub fn generate_key(name: &str) -> anyhow::Result<()> {
    let (skey, vkey) = CheckpointKeys::generate(name)?;
    println!("{CHECKPOINT_KEYS_ENV}={}", skey.expose());
    println!("# verifier key: {vkey}");
    Ok(())
}

/// `adledger keys public`: every configured key's verifier key, one a line, the signing one
/// first (what `/.well-known/adledger/checkpoint-keys` serves and `audit verify --key` reads).
pub fn print_public(args: &CheckpointArgs) -> anyhow::Result<()> {
    for key in args.required()?.keys().verifier_keys() {
        println!("{key}");
    }
    Ok(())
}

/// `adledger checkpoint`: the signed checkpoint of the tree's current head (signed once per
/// tree size, like `GET /v1/log/checkpoint`).
pub async fn print_checkpoint(store: &EventStore, args: &CheckpointArgs) -> anyhow::Result<()> {
    let signer = args.required()?;
    let issued = store.checkpoint(&signer).await?;
    print!("{}", issued.note);
    Ok(())
}
