//! Webhook delivery (control plane, does network I/O): one bounded outbox and one worker task
//! per endpoint. Emitting never waits: it pushes under a short lock (dropping the oldest event
//! when full) and wakes the worker. The worker POSTs events in order, signing every attempt,
//! and retries network errors and 5xx answers with backoff (see `webhook.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use super::counters::Counters;
use super::webhook::{
    EVENT_HEADER, Event, ID_HEADER, SIGNATURE_HEADER, Verdict, WebhookConfig, backoff, sign,
    verdict,
};

/// Events waiting for one endpoint.
struct Outbox {
    url: String,
    queue: Mutex<VecDeque<Arc<Event>>>,
    capacity: usize,
    wake: Notify,
    /// Events taken by the worker and not yet finished (0 or 1).
    in_flight: AtomicUsize,
    closed: AtomicBool,
}

/// Every endpoint's outbox; empty when webhooks are off.
pub struct Webhooks {
    outboxes: Vec<Arc<Outbox>>,
    counters: Arc<Counters>,
}

impl Webhooks {
    /// Starts one worker per configured URL (needs a Tokio runtime when `urls` is not empty).
    pub fn start(config: &WebhookConfig, counters: Arc<Counters>) -> Self {
        let secret: Arc<[u8]> = config
            .secret
            .as_deref()
            .unwrap_or_default()
            .as_bytes()
            .into();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("onair/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            // Validated at start; a file that went bad since is reported and skipped.
            let roots = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| {
                    reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())
                });
            match roots {
                Ok(roots) => {
                    for root in roots {
                        builder = builder.add_root_certificate(root);
                    }
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "webhooks.ca_file not used")
                }
            }
        }
        let client = builder.build();
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhooks disabled: no HTTP client");
                return Self {
                    outboxes: Vec::new(),
                    counters,
                };
            }
        };
        let outboxes: Vec<_> = config
            .urls
            .iter()
            .map(|url| {
                Arc::new(Outbox {
                    url: url.clone(),
                    queue: Mutex::new(VecDeque::new()),
                    capacity: config.queue,
                    wake: Notify::new(),
                    in_flight: AtomicUsize::new(0),
                    closed: AtomicBool::new(false),
                })
            })
            .collect();
        for outbox in &outboxes {
            tokio::spawn(worker(Worker {
                outbox: outbox.clone(),
                client: client.clone(),
                secret: secret.clone(),
                config: config.clone(),
                counters: counters.clone(),
            }));
        }
        Self { outboxes, counters }
    }

    /// True when at least one endpoint is configured.
    pub fn enabled(&self) -> bool {
        !self.outboxes.is_empty()
    }

    /// Queues `event` for every endpoint without waiting.
    pub fn emit(&self, event: Event) {
        if self.outboxes.is_empty() {
            return;
        }
        let event = Arc::new(event);
        for outbox in &self.outboxes {
            let mut queue = outbox.queue.lock().expect("webhook queue lock poisoned");
            if queue.len() >= outbox.capacity {
                queue.pop_front();
                self.counters
                    .webhooks_dropped
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .webhooks_queued
                    .fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(url = %outbox.url, "webhook queue full: oldest event dropped");
            }
            queue.push_back(event.clone());
            self.counters
                .webhooks_queued
                .fetch_add(1, Ordering::Relaxed);
            drop(queue);
            outbox.wake.notify_one();
        }
    }

    /// Waits up to `limit` for queued events to be delivered (shutdown), then stops workers.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let pending = |o: &Outbox| {
            !o.queue
                .lock()
                .expect("webhook queue lock poisoned")
                .is_empty()
                || o.in_flight.load(Ordering::Acquire) > 0
        };
        while self.outboxes.iter().any(|o| pending(o)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.close();
    }

    fn close(&self) {
        for o in &self.outboxes {
            o.closed.store(true, Ordering::Release);
            o.wake.notify_one();
        }
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        self.close();
    }
}

struct Worker {
    outbox: Arc<Outbox>,
    client: reqwest::Client,
    secret: Arc<[u8]>,
    config: WebhookConfig,
    counters: Arc<Counters>,
}

async fn worker(w: Worker) {
    loop {
        let next = {
            let mut queue = w.outbox.queue.lock().expect("webhook queue lock poisoned");
            let next = queue.pop_front();
            if next.is_some() {
                w.outbox.in_flight.store(1, Ordering::Release);
            }
            next
        };
        let Some(event) = next else {
            if w.outbox.closed.load(Ordering::Acquire) {
                return;
            }
            // A permit stored by `notify_one` while we were not waiting wakes us at once.
            w.outbox.wake.notified().await;
            continue;
        };
        w.counters.webhooks_queued.fetch_sub(1, Ordering::Relaxed);
        deliver(&w, &event).await;
        w.outbox.in_flight.store(0, Ordering::Release);
    }
}

async fn deliver(w: &Worker, event: &Event) {
    let mut retry = 0;
    loop {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let result = w
            .client
            .post(&w.outbox.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(&w.secret, unix, &event.body))
            .header(EVENT_HEADER, event.kind.as_str())
            .header(ID_HEADER, &event.id)
            .body(event.body.clone())
            .send()
            .await;
        let (status, error) = match result {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (None, Some(e)),
        };
        match verdict(status) {
            Verdict::Delivered => {
                w.counters
                    .webhooks_delivered
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(url = %w.outbox.url, id = %event.id, kind = event.kind.as_str(), "webhook delivered");
                return;
            }
            Verdict::Refused => {
                w.counters.webhooks_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %w.outbox.url, id = %event.id, status, "webhook refused by the receiver; not retried");
                return;
            }
            Verdict::Retry
                if retry >= w.config.retries || w.outbox.closed.load(Ordering::Acquire) =>
            {
                w.counters.webhooks_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %w.outbox.url, id = %event.id, status, error = error.map(|e| e.to_string()), "webhook given up after {} attempts", retry + 1);
                return;
            }
            Verdict::Retry => {
                let delay = backoff(
                    retry,
                    Duration::from_millis(w.config.backoff_ms),
                    Duration::from_millis(w.config.max_backoff_ms),
                    rand::random::<f64>(),
                );
                tracing::debug!(url = %w.outbox.url, id = %event.id, status, ?delay, "webhook attempt failed; retrying");
                w.counters.webhooks_retried.fetch_add(1, Ordering::Relaxed);
                retry += 1;
                tokio::time::sleep(delay).await;
            }
        }
    }
}
