//! Watch streams: newline-delimited JSON watch events with selectors, bookmarks,
//! `timeoutSeconds`, `sendInitialEvents`, and 410 `Expired` for too-old resourceVersions.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::registry::ResourceInfo;
use crate::store::{EventType, HistEvent, ListOpts, State, WatchStart};

/// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

/// Parameters of one watch request.
pub(crate) struct WatchParams {
    pub info: Arc<ResourceInfo>,
    pub version: String,
    pub ns: Option<String>,
    pub rv: Option<u64>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    pub send_initial: bool,
    pub list: ListOpts,
    pub partial: bool,
    /// The resource whose storage is watched (differs for events.k8s.io Events).
    pub storage: Arc<ResourceInfo>,
    /// Converts stored objects to the watched API's shape.
    pub convert: Option<fn(&Value) -> Value>,
    /// `Some(includeObject)` when the client asked for `as=Table`.
    pub table: Option<String>,
}

struct Stream {
    p: WatchParams,
    state: Weak<Mutex<State>>,
    pending: VecDeque<Bytes>,
    rx: Option<mpsc::UnboundedReceiver<Arc<HistEvent>>>,
    deadline: Option<Instant>,
    next_bookmark: Instant,
    last_rv: u64,
}

fn line(ty: &str, obj: &Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

impl Stream {
    fn matches(&self, obj: &Value) -> bool {
        self.p.list.labels.matches(obj) && self.p.list.fields.matches(obj)
    }

    fn shape(&self, obj: &Value) -> Value {
        if self.p.partial {
            return json!({
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadata",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
            });
        }
        let mut v = match self.p.convert {
            Some(f) => f(obj),
            None => obj.clone(),
        };
        v["apiVersion"] = json!(self.p.info.api_version(&self.p.version));
        if let Some(include) = &self.p.table {
            let rv = v
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return crate::discovery::table(&self.p.info, &self.p.version, &[v], &rv, include);
        }
        v
    }

    fn push_event(&mut self, e: &HistEvent) {
        self.last_rv = self.last_rv.max(e.rv);
        let now = self.matches(&e.obj);
        let before = e.old.as_deref().is_some_and(|o| self.matches(o));
        let ty = match e.ty {
            EventType::Added if now => "ADDED",
            EventType::Modified if now && before => "MODIFIED",
            EventType::Modified if now => "ADDED",
            EventType::Modified if before => "DELETED",
            EventType::Deleted if now || before => "DELETED",
            _ => return,
        };
        let obj = self.shape(&e.obj);
        self.pending.push_back(line(ty, &obj));
    }

    /// Delivers every queued event and advances to the global resourceVersion. Holding
    /// the state lock guarantees no event up to that version is still in flight, so a
    /// bookmark at it is safe to resume from even when this resource is quiet.
    fn catch_up(&mut self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let st = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let global = st.rv;
        let mut queued = Vec::new();
        if let Some(rx) = self.rx.as_mut() {
            while let Ok(e) = rx.try_recv() {
                queued.push(e);
            }
        }
        drop(st);
        for e in queued {
            self.push_event(&e);
        }
        self.last_rv = self.last_rv.max(global);
    }

    fn push_bookmark(&mut self, initial_end: bool) {
        let mut metadata = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let kind = if self.p.partial {
            "PartialObjectMetadata".to_string()
        } else {
            self.p.info.kind.clone()
        };
        let api_version = if self.p.partial {
            "meta.k8s.io/v1".to_string()
        } else {
            self.p.info.api_version(&self.p.version)
        };
        let obj = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
        self.pending.push_back(line("BOOKMARK", &obj));
        self.next_bookmark = Instant::now() + BOOKMARK_EVERY;
    }
}

/// Starts a watch and returns its body stream.
pub(crate) fn start(
    state: &Arc<Mutex<State>>,
    p: WatchParams,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let rv = if p.send_initial { None } else { p.rv };
    let mut st = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let current = st.rv;
    let started = st.watch(&p.storage, p.ns.as_deref(), rv);
    drop(st);
    let deadline = p.timeout.map(|t| Instant::now() + t);
    let mut s = Stream {
        state: Arc::downgrade(state),
        pending: VecDeque::new(),
        rx: None,
        deadline,
        next_bookmark: Instant::now() + BOOKMARK_EVERY,
        last_rv: p.rv.unwrap_or(0),
        p,
    };
    match started {
        Err(WatchStart::Expired { requested, oldest }) => {
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {requested} ({oldest})"),
                "reason": "Expired", "code": 410,
            });
            s.pending.push_back(line("ERROR", &status));
        }
        Ok((initial, rx)) => {
            let synthetic = rv.is_none();
            for e in &initial {
                s.push_event(e);
            }
            if synthetic {
                s.last_rv = current;
            }
            if s.p.send_initial && s.p.bookmarks {
                s.last_rv = current;
                s.push_bookmark(true);
            }
            s.rx = Some(rx);
        }
    }
    futures::stream::unfold(s, |mut s| async move {
        loop {
            if let Some(b) = s.pending.pop_front() {
                return Some((Ok(b), s));
            }
            let rx = s.rx.as_mut()?;
            let wake = match s.deadline {
                Some(d) if !s.p.bookmarks || d < s.next_bookmark => d,
                _ if s.p.bookmarks => s.next_bookmark,
                _ => Instant::now() + Duration::from_secs(3600),
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(e) => s.push_event(&e),
                    None => s.rx = None,
                },
                _ = tokio::time::sleep_until(wake) => {
                    let expired = s.deadline.is_some_and(|d| Instant::now() >= d);
                    if s.p.bookmarks {
                        s.catch_up();
                        s.push_bookmark(false);
                    }
                    if expired {
                        s.rx = None;
                    }
                }
            }
        }
    })
}
