//! The generic aggregate actor and the registry that finds it: an actor is started (and
//! hydrated from its stream) on first use and passivated when idle or when too many are
//! live, so memory stays bounded however many aggregates the log holds.

use super::aggregate::{Aggregate, CommandContext, CommandError, Committed, Loaded, every_failed};
use crate::events::{EventStore, StoreError};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most commands decided and written together. A command causes at most a few events (a
/// grant's creation three), so a batch stays far below `MAX_EVENTS_PER_APPEND`.
const MAX_BATCH: usize = 64;

/// A command waiting for the aggregate's next write, and where its outcome goes.
type Waiting<A> = (
    (<A as Aggregate>::Command, CommandContext),
    oneshot::Sender<Result<Committed, CommandError<<A as Aggregate>::Error>>>,
);

/// The actor owning one aggregate. Its commands are decided one after the other, but those
/// that arrive while a write is in flight are decided together when it is done and written
/// in one append: a busy aggregate costs one durable write per batch, not per command, and
/// still no command is answered before its events are durable.
pub struct AggregateActor<A: Aggregate> {
    id: String,
    store: Arc<dyn EventStore>,
    loaded: Option<Loaded<A>>,
    waiting: Vec<Waiting<A>>,
    writing: bool,
    passivating: bool,
}

impl<A: Aggregate> Actor for AggregateActor<A> {
    type Context = Context<Self>;
}

/// Run a command on the aggregate.
#[derive(Message)]
#[rtype(result = "Result<Committed, CommandError<A::Error>>")]
pub struct Execute<A: Aggregate> {
    /// The command.
    pub command: A::Command,
    /// When and for which request.
    pub context: CommandContext,
}

/// Stop the actor once the commands it has taken are answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Passivate;

impl<A: Aggregate> Handler<Execute<A>> for AggregateActor<A> {
    type Result = ResponseFuture<Result<Committed, CommandError<A::Error>>>;

    /// Queues the command for the next write, starting one if none is in flight.
    fn handle(&mut self, msg: Execute<A>, ctx: &mut Context<Self>) -> Self::Result {
        let (answer, outcome) = oneshot::channel();
        self.waiting.push(((msg.command, msg.context), answer));
        if !self.writing {
            self.write(ctx);
        }
        Box::pin(async move {
            outcome.await.unwrap_or_else(|_| {
                Err(CommandError::Store(StoreError::Unavailable(
                    "the aggregate's actor stopped before answering".into(),
                )))
            })
        })
    }
}

impl<A: Aggregate> AggregateActor<A> {
    fn new(id: &str, store: Arc<dyn EventStore>) -> AggregateActor<A> {
        AggregateActor {
            id: id.to_owned(),
            store,
            loaded: None,
            waiting: Vec::new(),
            writing: false,
            passivating: false,
        }
    }

    /// Loads the stream on first use, then decides, appends and applies every waiting
    /// command; when done, answers them and starts the next write if more have arrived.
    fn write(&mut self, ctx: &mut Context<Self>) {
        self.writing = true;
        let rest = self.waiting.split_off(self.waiting.len().min(MAX_BATCH));
        let (commands, answers): (Vec<_>, Vec<_>) = std::mem::replace(&mut self.waiting, rest)
            .into_iter()
            .unzip();
        let store = self.store.clone();
        let id = self.id.clone();
        let loaded = self.loaded.take();
        let work = async move {
            let mut loaded = match loaded {
                Some(loaded) => loaded,
                None => match Loaded::<A>::load(store.as_ref(), &id).await {
                    Ok(loaded) => loaded,
                    Err(err) => return (None, every_failed(commands.len(), err)),
                },
            };
            let outcomes = loaded.execute_batch(store.as_ref(), &id, &commands).await;
            // After a store failure the state may be ahead of or behind the log: reload.
            let failed = outcomes
                .iter()
                .any(|outcome| matches!(outcome, Err(CommandError::Store(_))));
            ((!failed).then_some(loaded), outcomes)
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |(loaded, outcomes): (_, Vec<_>), actor, ctx| {
                    actor.loaded = loaded;
                    for (answer, outcome) in answers.into_iter().zip(outcomes) {
                        let _ = answer.send(outcome);
                    }
                    actor.writing = false;
                    if !actor.waiting.is_empty() {
                        actor.write(ctx);
                    } else if actor.passivating {
                        ctx.stop();
                    }
                }),
        );
    }
}

impl<A: Aggregate> Handler<Passivate> for AggregateActor<A> {
    type Result = ();

    /// Stops the actor, after its write in flight if there is one; its state lives on in
    /// the log.
    fn handle(&mut self, _: Passivate, ctx: &mut Context<Self>) {
        if self.writing {
            self.passivating = true;
        } else {
            ctx.stop();
        }
    }
}

struct Entry<A: Aggregate> {
    addr: Addr<AggregateActor<A>>,
    last_used: Instant,
}

/// Finds (starting if needed) the actor of an aggregate by id.
pub struct Registry<A: Aggregate> {
    store: Arc<dyn EventStore>,
    live: Mutex<HashMap<String, Entry<A>>>,
    capacity: usize,
    idle: Duration,
}

impl<A: Aggregate> Registry<A> {
    /// A registry keeping at most `capacity` actors live, passivating those idle for `idle`.
    pub fn new(store: Arc<dyn EventStore>, capacity: usize, idle: Duration) -> Registry<A> {
        Registry {
            store,
            live: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            idle,
        }
    }

    /// Runs `command` on aggregate `id`. Must be called inside an actix system.
    ///
    /// A command that creates the aggregate ([`Aggregate::creates`]) runs without an actor:
    /// it is decided against the empty state and appended at version 0. Should the stream
    /// exist after all, the conflict reloads it and the command is decided again (and
    /// refused). An actor of that id already live (a command came first and was refused) is
    /// retired. The actor starts with the aggregate's next command. Most aggregates are
    /// created and then left alone (a client-credentials grant, an authorization session),
    /// so they never cost an actor.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        context: CommandContext,
    ) -> Result<Committed, CommandError<A::Error>> {
        if A::creates(&command) {
            let outcome = Loaded::<A>::default()
                .execute(self.store.as_ref(), id, command, context)
                .await;
            // An actor started by an earlier command (refused: no such aggregate) would
            // still hold the empty state: retire it, so the next command loads the stream.
            if let Some(entry) = self.live.lock().unwrap().remove(id) {
                entry.addr.do_send(Passivate);
            }
            return outcome;
        }
        loop {
            let addr = self.actor(id);
            let message = Execute {
                command: command.clone(),
                context,
            };
            match addr.send(message).await {
                Ok(outcome) => return outcome,
                // Passivated between lookup and delivery: start a fresh one.
                Err(_) => self.forget(id, &addr),
            }
        }
    }

    /// How many actors are live.
    pub fn live(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// Passivates every actor unused since `now - idle`; returns how many.
    pub fn passivate_idle(&self, now: Instant) -> usize {
        let mut live = self.live.lock().unwrap();
        let before = live.len();
        live.retain(|_, entry| {
            let keep = now.saturating_duration_since(entry.last_used) < self.idle;
            if !keep {
                entry.addr.do_send(Passivate);
            }
            keep
        });
        before - live.len()
    }

    fn actor(&self, id: &str) -> Addr<AggregateActor<A>> {
        let now = Instant::now();
        let mut live = self.live.lock().unwrap();
        if let Some(entry) = live.get_mut(id)
            && entry.addr.connected()
        {
            entry.last_used = now;
            return entry.addr.clone();
        }
        let addr = AggregateActor::<A>::new(id, self.store.clone()).start();
        live.insert(
            id.to_owned(),
            Entry {
                addr: addr.clone(),
                last_used: now,
            },
        );
        if live.len() > self.capacity {
            evict_least_recent(&mut live, self.capacity);
        }
        addr
    }

    fn forget(&self, id: &str, addr: &Addr<AggregateActor<A>>) {
        let mut live = self.live.lock().unwrap();
        if live.get(id).is_some_and(|entry| entry.addr == *addr) {
            live.remove(id);
        }
    }
}

/// Passivates the least recently used tenth of the actors (at least enough to get back
/// under `capacity`), so eviction costs a selection per many starts, not a scan per start.
fn evict_least_recent<A: Aggregate>(live: &mut HashMap<String, Entry<A>>, capacity: usize) {
    let excess = live.len() - capacity;
    let count = excess.max(capacity / 10).min(live.len() - 1);
    let mut by_age: Vec<_> = live
        .iter()
        .map(|(id, e)| (e.last_used, id.as_str()))
        .collect();
    by_age.select_nth_unstable(count);
    let oldest: Vec<String> = by_age[..count]
        .iter()
        .map(|(_, id)| (*id).to_owned())
        .collect();
    for id in oldest {
        if let Some(entry) = live.remove(&id) {
            entry.addr.do_send(Passivate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::client::Client;
    use crate::events::filelog::{FileLog, FileLogOptions};

    #[actix_rt::test]
    async fn eviction_passivates_the_least_recently_used_tenth() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> =
            Arc::new(FileLog::open(dir.path(), FileLogOptions::writer("n")).unwrap());
        let start = Instant::now();
        // Used in a shuffled order: c{i} last at second (i * 8) % 21, each second once.
        let mut live: HashMap<String, Entry<Client>> = (0..21)
            .map(|i| {
                let entry = Entry {
                    addr: AggregateActor::<Client>::new("c", store.clone()).start(),
                    last_used: start + Duration::from_secs((i * 8) % 21),
                };
                (format!("c{i}"), entry)
            })
            .collect();
        evict_least_recent(&mut live, 20);
        // One over a capacity of 20: the larger of the excess and a tenth, 2, go.
        let mut kept: Vec<u64> = live
            .values()
            .map(|e| (e.last_used - start).as_secs())
            .collect();
        kept.sort_unstable();
        assert_eq!(kept, (2..21).collect::<Vec<_>>());
    }
}
