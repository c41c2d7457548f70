//! Bytes of heap per active token in the token read model, measured with a counting
//! allocator: `cargo bench --bench memory`.
//!
//! Each token is a client-credentials-like family (one grant, one access token), the worst
//! case for the per-grant bookkeeping; strings (clients, users, audiences) repeat as they do
//! in practice.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;
use warrant::clock::Timestamp;
use warrant::events::{AccessTokenIssued, Envelope, Event, GrantCreated, GrantOrigin};
use warrant::projections::tokens::Tokens;
use warrant::secret::SecretHash;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn envelope(position: u64, event: Event) -> Envelope {
    Envelope {
        position,
        stream: String::new(),
        version: 1,
        time: Timestamp(1_795_000_000_000),
        node: String::new(),
        correlation_id: Uuid::nil(),
        prev_hash: [0; 32],
        hash: [0; 32],
        event,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe with this
    }
    let now = Timestamp(1_795_000_000_000);
    for tokens_wanted in [100_000usize, 1_000_000] {
        let before = LIVE.load(Ordering::Relaxed);
        let mut tokens = Tokens::default();
        let mut position = 0;
        for i in 0..tokens_wanted {
            let grant_id = Uuid::from_u128(i as u128 + 1);
            let client_id = format!("client-{}", i % 100);
            let subject = Some(format!("user{}@example.com", i % 1000));
            let created = GrantCreated {
                grant_id,
                client_id: client_id.clone(),
                subject: subject.clone(),
                scope: "openid".into(),
                resources: vec![],
                origin: GrantOrigin::ClientCredentials,
            };
            let issued = AccessTokenIssued {
                grant_id,
                jti: Uuid::new_v4(),
                token_hash: SecretHash::of(&i.to_string()),
                client_id,
                subject,
                scope: "openid".into(),
                audience: vec![format!("https://mcp{}.example", i % 10)],
                issued_at: now,
                expires_at: now.plus_seconds(3600),
            };
            for event in [Event::from(created), Event::from(issued)] {
                position += 1;
                tokens.apply(&envelope(position, event));
            }
        }
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        assert_eq!(tokens.len(), tokens_wanted);
        println!(
            "token projection: {tokens_wanted} active tokens, {bytes} heap bytes, {:.1} bytes per active token",
            bytes as f64 / tokens_wanted as f64
        );
        drop(tokens);
    }
}
