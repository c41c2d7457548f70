//! The generic aggregate actor and the registry that finds it: an actor is started (and
//! hydrated from its stream) on first use and passivated when idle or when too many are
//! live, so memory stays bounded however many aggregates the log holds. The folded state of a
//! long stream is kept when its actor stops, and that of a creation when the aggregate asks
//! for it ([`Aggregate::KEEP_CREATED`]), so the next actor reads only the stream's tail.

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

/// Streams at least this long keep their folded state when their actor stops. A shorter one
/// is read back in a `pread` or a few (a code flow's grant has three events, and two more per
/// refresh); a grant refreshed hourly for a year has over 17,000, one read and decode each.
const RESTING_FROM_VERSION: u64 = 32;

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
    resting: Arc<Mutex<Resting<A>>>,
    loaded: Option<Loaded<A>>,
    waiting: Vec<Waiting<A>>,
    writing: bool,
    passivating: bool,
}

impl<A: Aggregate> Actor for AggregateActor<A> {
    type Context = Context<Self>;

    /// Leaves the folded state of a long stream to the aggregate's next actor. It is a fold of
    /// the stream up to its version (a write that failed dropped it), however the actor
    /// stopped.
    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(loaded) = self.loaded.take()
            && loaded.version >= RESTING_FROM_VERSION
        {
            self.resting.lock().unwrap().keep(&self.id, loaded);
        }
    }
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
    fn new(
        id: &str,
        store: Arc<dyn EventStore>,
        resting: Arc<Mutex<Resting<A>>>,
    ) -> AggregateActor<A> {
        AggregateActor {
            id: id.to_owned(),
            store,
            resting,
            loaded: None,
            waiting: Vec::new(),
            writing: false,
            passivating: false,
        }
    }

    /// Loads the stream on first use (only its tail when a state of it was kept), then
    /// decides, appends and applies every waiting command; when done, answers them and starts
    /// the next write if more have arrived.
    fn write(&mut self, ctx: &mut Context<Self>) {
        self.writing = true;
        let rest = self.waiting.split_off(self.waiting.len().min(MAX_BATCH));
        let (commands, answers): (Vec<_>, Vec<_>) = std::mem::replace(&mut self.waiting, rest)
            .into_iter()
            .unzip();
        let store = self.store.clone();
        let id = self.id.clone();
        let loaded = self.loaded.take();
        let kept = match loaded {
            Some(_) => None,
            None => self.resting.lock().unwrap().take(&self.id),
        };
        let work = async move {
            let mut loaded = match loaded {
                Some(loaded) => loaded,
                None => match kept.unwrap_or_default().catch_up(store.as_ref(), &id).await {
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

/// The folded states of long streams whose actors stopped, and of creations kept for their
/// next command, by aggregate id: at most `capacity`, the least recently kept dropped first.
/// An entry never goes stale, only behind its stream, which `Loaded::catch_up` reads the rest
/// of.
struct Resting<A: Aggregate> {
    states: HashMap<String, (Loaded<A>, Instant)>,
    capacity: usize,
}

impl<A: Aggregate> Resting<A> {
    fn keep(&mut self, id: &str, loaded: Loaded<A>) {
        self.states.insert(id.to_owned(), (loaded, Instant::now()));
        if self.states.len() > self.capacity {
            evict_least_recent(&mut self.states, self.capacity, |(_, kept)| *kept);
        }
    }

    fn take(&mut self, id: &str) -> Option<Loaded<A>> {
        self.states.remove(id).map(|(loaded, _)| loaded)
    }
}

/// Finds (starting if needed) the actor of an aggregate by id.
pub struct Registry<A: Aggregate> {
    store: Arc<dyn EventStore>,
    live: Mutex<HashMap<String, Entry<A>>>,
    resting: Arc<Mutex<Resting<A>>>,
    capacity: usize,
    idle: Duration,
}

impl<A: Aggregate> Registry<A> {
    /// A registry keeping at most `capacity` actors live, passivating those idle for `idle`,
    /// and the states of at most `capacity` long streams whose actors stopped.
    pub fn new(store: Arc<dyn EventStore>, capacity: usize, idle: Duration) -> Registry<A> {
        let capacity = capacity.max(1);
        Registry {
            store,
            live: Mutex::new(HashMap::new()),
            resting: Arc::new(Mutex::new(Resting {
                states: HashMap::new(),
                capacity,
            })),
            capacity,
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
    /// created and then left alone (a client-credentials grant), so they never cost an
    /// actor; one with a next command soon (an authorization session) keeps the state its
    /// creation left, if it asks to, so that command's actor reads nothing already folded.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        context: CommandContext,
    ) -> Result<Committed, CommandError<A::Error>> {
        if A::creates(&command) {
            let mut created = Loaded::<A>::default();
            let outcome = created
                .execute(self.store.as_ref(), id, command, context)
                .await;
            // An actor started by an earlier command (refused: no such aggregate) would
            // still hold the empty state: retire it, so the next command loads the stream.
            if let Some(entry) = self.live.lock().unwrap().remove(id) {
                entry.addr.do_send(Passivate);
            }
            if A::KEEP_CREATED && outcome.is_ok() {
                self.resting.lock().unwrap().keep(id, created);
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

    /// Runs `command` on aggregate `id` from `known`, its state at `known.version` as a read
    /// model folding the same events knows it, without an actor unless one is live (its
    /// state is used then). The append expects `known.version`, so a model behind the stream
    /// loses the race and the command is decided again on the stream as read. A grant
    /// refreshed once in a while thus costs no actor and no read of its stream.
    pub async fn execute_from(
        &self,
        id: &str,
        command: A::Command,
        context: CommandContext,
        mut known: Loaded<A>,
    ) -> Result<Committed, CommandError<A::Error>> {
        if connected(&mut self.live.lock().unwrap(), id).is_some() {
            return self.execute(id, command, context).await;
        }
        known
            .execute(self.store.as_ref(), id, command, context)
            .await
    }

    /// How many actors are live.
    pub fn live(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// How many folded states are kept (of long streams whose actors stopped, and of
    /// creations kept for their next command).
    pub fn resting(&self) -> usize {
        self.resting.lock().unwrap().states.len()
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
        if let Some(entry) = connected(&mut live, id) {
            entry.last_used = now;
            return entry.addr.clone();
        }
        let addr = AggregateActor::<A>::new(id, self.store.clone(), self.resting.clone()).start();
        live.insert(
            id.to_owned(),
            Entry {
                addr: addr.clone(),
                last_used: now,
            },
        );
        if live.len() > self.capacity {
            for entry in evict_least_recent(&mut live, self.capacity, |entry| entry.last_used) {
                entry.addr.do_send(Passivate);
            }
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

/// The entry of the actor of `id` in `live`, if that actor is still running.
fn connected<'a, A: Aggregate>(
    live: &'a mut HashMap<String, Entry<A>>,
    id: &str,
) -> Option<&'a mut Entry<A>> {
    live.get_mut(id).filter(|entry| entry.addr.connected())
}

/// Removes and returns the least recently used tenth of `map` (at least enough to get back
/// under `capacity`), so eviction costs a selection per many insertions, not a scan per
/// insertion.
fn evict_least_recent<V>(
    map: &mut HashMap<String, V>,
    capacity: usize,
    last_used: impl Fn(&V) -> Instant,
) -> Vec<V> {
    let excess = map.len() - capacity;
    let count = excess.max(capacity / 10).min(map.len() - 1);
    let mut by_age: Vec<_> = map
        .iter()
        .map(|(id, value)| (last_used(value), id.as_str()))
        .collect();
    by_age.select_nth_unstable(count);
    let oldest: Vec<String> = by_age[..count]
        .iter()
        .map(|(_, id)| (*id).to_owned())
        .collect();
    oldest.iter().filter_map(|id| map.remove(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_takes_the_least_recently_used_tenth() {
        let start = Instant::now();
        // Used in a shuffled order: c{i} last at second (i * 8) % 21, each second once.
        let mut used: HashMap<String, Instant> = (0..21)
            .map(|i| (format!("c{i}"), start + Duration::from_secs((i * 8) % 21)))
            .collect();
        let seconds = |instants: Vec<Instant>| {
            let mut seconds: Vec<u64> = instants.iter().map(|t| (*t - start).as_secs()).collect();
            seconds.sort_unstable();
            seconds
        };
        let evicted = evict_least_recent(&mut used, 20, |used| *used);
        // One over a capacity of 20: the larger of the excess and a tenth, 2, go.
        assert_eq!(seconds(evicted), [0, 1]);
        assert_eq!(
            seconds(used.into_values().collect()),
            (2..21).collect::<Vec<_>>()
        );
    }
}
