//! Decide, then apply: the aggregate contract, and the load → handle → append → apply loop
//! that every actor runs, retrying on version conflicts. Plain async code, no actix, so the
//! rules are tested without a mailbox.

use crate::clock::Timestamp;
use crate::events::{
    DENIALS_STREAM, Event, EventStore, ExpectedVersion, NewEvent, RequestDenied, StoreError,
};
use uuid::Uuid;

/// How many times a command is re-decided after losing a race to another writer.
const MAX_CONFLICT_RETRIES: usize = 8;

/// A consistency boundary whose state is a fold of its own stream.
pub trait Aggregate: Default + Send + Unpin + 'static {
    /// What it can be asked to do.
    type Command: Clone + Send + Unpin + 'static;
    /// Why it refuses.
    type Error: Refusal + Send + Unpin + 'static;
    /// Its streams are named `{STREAM_PREFIX}{id}`.
    const STREAM_PREFIX: &'static str;

    /// All business rules: a command to aggregate `id` becomes the events it causes, or a
    /// refusal.
    fn handle(
        &self,
        id: &str,
        command: &Self::Command,
        now: Timestamp,
    ) -> Result<Vec<Event>, Self::Error>;

    /// Folds one recorded event into the state. Holds no rule and cannot fail.
    fn apply(&mut self, event: &Event);

    /// Whether [`Aggregate::apply`] depends on events of type `event_type`; those it does not
    /// are skipped undecoded when its stream is loaded. Every type, unless an aggregate says
    /// otherwise.
    fn folds(_event_type: &str) -> bool {
        true
    }

    /// Whether `command` creates the aggregate (under a fresh id). Such a command is run
    /// without starting an actor: see [`super::Registry::execute`].
    fn creates(_command: &Self::Command) -> bool {
        false
    }

    /// Whether the state a creation leaves is kept for the aggregate's next command, whose
    /// actor then reads only what was appended since instead of the whole stream: for
    /// aggregates whose next command soon follows their creation (an authorization session,
    /// redeemed seconds after its code is issued). Kept among the registry's bounded states.
    const KEEP_CREATED: bool = false;

    /// The stream of the aggregate with this id.
    fn stream(id: &str) -> String {
        format!("{}{id}", Self::STREAM_PREFIX)
    }
}

/// A refusal, and what must be recorded about it.
pub trait Refusal: std::error::Error {
    /// The denial to record in the audit trail, if any, for a refusal by aggregate `id`.
    fn denial(&self, id: &str) -> Option<RequestDenied>;

    /// Events the aggregate records even though it refuses (for example the revocation of a
    /// grant whose rotated refresh token was presented again).
    fn consequences(&self) -> Vec<Event> {
        Vec::new()
    }
}

/// An aggregate's state and the stream version it reflects.
#[derive(Clone, Debug, Default)]
pub struct Loaded<A> {
    /// The folded state.
    pub state: A,
    /// How many events of its stream are folded in.
    pub version: u64,
}

/// Where a command comes from and when.
#[derive(Clone, Copy, Debug)]
pub struct CommandContext {
    /// The instant the rules are judged at.
    pub now: Timestamp,
    /// The request that caused the command.
    pub correlation_id: Uuid,
}

impl CommandContext {
    /// A context at `now` with a fresh correlation id.
    pub fn at(now: Timestamp) -> CommandContext {
        CommandContext {
            now,
            correlation_id: Uuid::new_v4(),
        }
    }
}

/// What a successful command recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Committed {
    /// The events appended (empty when the command changed nothing).
    pub events: Vec<Event>,
    /// The global position of the last of them; read models that reach it reflect them.
    pub last_position: Option<u64>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    /// The aggregate refused; the refusal and its consequences are recorded.
    #[error(transparent)]
    Refused(E),
    /// The store failed; nothing is known to be recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<A: Aggregate> Loaded<A> {
    /// Folds the whole stream of aggregate `id` (the events it [`folds`](Aggregate::folds)).
    pub async fn load(store: &dyn EventStore, id: &str) -> Result<Loaded<A>, StoreError> {
        Loaded::default().catch_up(store, id).await
    }

    /// Folds what was appended to the stream of aggregate `id` after this state's version,
    /// reading only that tail. A state folded up to some version stays true of its stream
    /// whatever is appended later, so one kept from an earlier load is brought up to date this
    /// way.
    pub async fn catch_up(
        mut self,
        store: &dyn EventStore,
        id: &str,
    ) -> Result<Loaded<A>, StoreError> {
        let read = store
            .read_stream_of(&A::stream(id), self.version + 1, A::folds)
            .await?;
        for envelope in &read.envelopes {
            self.state.apply(&envelope.event);
        }
        self.version = read.version;
        Ok(self)
    }

    /// Decides `command`, appends what it causes at the expected version, and applies it.
    /// On a version conflict, reloads the stream and decides again.
    pub async fn execute(
        &mut self,
        store: &dyn EventStore,
        id: &str,
        command: A::Command,
        context: CommandContext,
    ) -> Result<Committed, CommandError<A::Error>> {
        let mut outcomes = self.execute_batch(store, id, &[(command, context)]).await;
        outcomes.pop().expect("one outcome per command")
    }

    /// Decides `commands` in order, each against the state the ones before it leave, and
    /// appends everything they cause in one append at the expected version: one durable write
    /// for the whole batch, and no command is answered before it. On a version conflict,
    /// reloads the stream and decides the whole batch again. Returns one outcome per command.
    /// Refusals' denials are recorded (in one append) after the batch.
    pub async fn execute_batch(
        &mut self,
        store: &dyn EventStore,
        id: &str,
        commands: &[(A::Command, CommandContext)],
    ) -> Vec<Result<Committed, CommandError<A::Error>>> {
        let stream = A::stream(id);
        let mut attempts = 0;
        loop {
            let start_version = self.version;
            let mut decided = Vec::with_capacity(commands.len());
            let mut batch = Vec::new();
            for (command, context) in commands {
                let (events, refusal) = match self.state.handle(id, command, context.now) {
                    Ok(events) => (events, None),
                    Err(refusal) => (refusal.consequences(), Some(refusal)),
                };
                for event in &events {
                    // Applied before they are durable, so that the next command of the batch
                    // sees them; any failure below discards this state.
                    self.state.apply(event);
                    batch.push(NewEvent::new(
                        event.clone(),
                        context.now,
                        context.correlation_id,
                    ));
                }
                decided.push((events, refusal));
            }
            let last_position = if batch.is_empty() {
                None
            } else {
                match store
                    .append(&stream, ExpectedVersion::Exact(start_version), batch)
                    .await
                {
                    Ok(appended) => {
                        self.version = appended.stream_version;
                        Some(appended.last_position)
                    }
                    Err(StoreError::Conflict { .. }) if attempts < MAX_CONFLICT_RETRIES => {
                        attempts += 1;
                        match Loaded::load(store, id).await {
                            Ok(reloaded) => *self = reloaded,
                            Err(err) => return every_failed(commands.len(), err),
                        }
                        continue;
                    }
                    Err(err) => return every_failed(commands.len(), err),
                }
            };
            let mut denials = Vec::new();
            let mut denied = Vec::with_capacity(decided.len());
            for ((_, refusal), (_, context)) in decided.iter().zip(commands) {
                let denial = refusal.as_ref().and_then(|refusal| refusal.denial(id));
                denied.push(denial.is_some());
                denials
                    .extend(denial.map(|d| NewEvent::new(d, context.now, context.correlation_id)));
            }
            let denials_failed = if denials.is_empty() {
                None
            } else {
                store
                    .append(DENIALS_STREAM, ExpectedVersion::Any, denials)
                    .await
                    .err()
            };
            return decided
                .into_iter()
                .zip(denied)
                .map(
                    |((events, refusal), denied)| match (refusal, &denials_failed) {
                        (None, _) => Ok(Committed {
                            events,
                            last_position,
                        }),
                        (Some(_), Some(err)) if denied => Err(CommandError::Store(err.clone())),
                        (Some(refusal), _) => Err(CommandError::Refused(refusal)),
                    },
                )
                .collect();
        }
    }
}

/// The same store failure as the outcome of each of `count` commands.
pub(super) fn every_failed<T, E>(count: usize, err: StoreError) -> Vec<Result<T, CommandError<E>>> {
    (0..count)
        .map(|_| Err(CommandError::Store(err.clone())))
        .collect()
}

/// Appends a denial to the denials stream; returns its position.
pub async fn record_denial(
    store: &dyn EventStore,
    denial: RequestDenied,
    context: CommandContext,
) -> Result<u64, StoreError> {
    let appended = store
        .append(
            DENIALS_STREAM,
            ExpectedVersion::Any,
            vec![NewEvent::new(denial, context.now, context.correlation_id)],
        )
        .await?;
    Ok(appended.last_position)
}
