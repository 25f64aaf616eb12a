//! The NFLOG reader thread: reads the group, drops repeats of a flow
//! (the retransmitted first packets of one denied connection), and hands
//! batches to the driver, within a bound.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use palisade_dataplane::nflog::{Logged, Nflog, NflogError, PacketHead};
use tracing::{error, info};

use super::record::Logger;
use crate::driver::Message;
use crate::metrics::{Metrics, ReasonLabel};

/// Records between the reader and the driver, at most; beyond, batches
/// are dropped (and counted).
pub const IN_FLIGHT: usize = 50_000;
/// Flows remembered per generation of the repeat filter.
pub const REMEMBERED: usize = 65_536;
/// How long a flow's repeats are dropped.
const REPEAT_WINDOW: Duration = Duration::from_secs(10);
/// Records per batch to the driver, at most.
const BATCH: usize = 2048;
/// How long a partial batch waits.
const BATCH_WAIT: Duration = Duration::from_millis(20);

/// A running reader.
#[derive(Debug)]
pub struct Reader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    /// Records handed to the driver and not yet written.
    pub in_flight: Arc<AtomicUsize>,
}

impl Reader {
    /// Stops the thread and waits for it (within its read timeout).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Flows seen within the window, in two generations: a flow is a repeat
/// when either holds it; the older is forgotten when the newer is a
/// window old or full, so memory stays within two generations.
#[derive(Debug)]
struct Repeats {
    current: HashSet<(Logger, PacketHead)>,
    previous: HashSet<(Logger, PacketHead)>,
    since: Instant,
}

impl Repeats {
    fn new() -> Self {
        Repeats { current: HashSet::new(), previous: HashSet::new(), since: Instant::now() }
    }

    /// Whether `logged` repeats a flow seen within the window (it is
    /// remembered otherwise), or is not a record of Palisade's rules.
    fn repeat(&mut self, logged: &Logged) -> bool {
        let Some(rule) = Logger::of(&logged.prefix) else { return true };
        let Some(head) = logged.head else { return false };
        if self.since.elapsed() >= REPEAT_WINDOW || self.current.len() >= REMEMBERED {
            self.previous = std::mem::take(&mut self.current);
            self.since = Instant::now();
        }
        let key = (rule, head);
        if self.current.contains(&key) || self.previous.contains(&key) {
            return true;
        }
        self.current.insert(key);
        false
    }
}

/// Binds `group` (in the calling process's network namespace) and starts
/// the reader thread, which sends [`Message::Flows`] to `driver`.
///
/// # Errors
/// The group cannot be bound (another reader holds it in this namespace)
/// or the thread cannot start.
pub fn start_reader(group: u16, driver: Sender<Message>, metrics: Arc<Metrics>) -> Result<Reader, NflogError> {
    let mut nflog = Nflog::bind(group, 64, Duration::from_millis(20))?;
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (flag, pending) = (stop.clone(), in_flight.clone());
    let thread = std::thread::Builder::new()
        .name("flow-log".into())
        .spawn(move || read_loop(&mut nflog, &driver, &metrics, &flag, &pending))
        .map_err(|e| NflogError::Io {
            what: "thread",
            errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
    info!(group, "reading flow logs");
    Ok(Reader { stop, thread, in_flight })
}

fn read_loop(
    nflog: &mut Nflog,
    driver: &Sender<Message>,
    metrics: &Metrics,
    stop: &AtomicBool,
    in_flight: &AtomicUsize,
) {
    let dropped = |reason: &str, n: u64| {
        metrics.flow_records_dropped.get_or_create(&ReasonLabel { reason: reason.into() }).inc_by(n);
    };
    let mut repeats = Repeats::new();
    let (mut read, mut batch) = (Vec::new(), Vec::new());
    let mut started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match nflog.read(&mut read, Duration::from_millis(100)) {
            Ok(_) => {}
            Err(NflogError::Overflow) => dropped("kernel", 1),
            Err(e) => {
                error!(error = %e, "flow log reader stopped");
                return;
            }
        }
        for logged in read.drain(..) {
            if !repeats.repeat(&logged) {
                batch.push(logged);
            }
        }
        if batch.is_empty() {
            started = Instant::now();
            continue;
        }
        if batch.len() < BATCH && started.elapsed() < BATCH_WAIT {
            continue;
        }
        let n = batch.len();
        if in_flight.load(Ordering::Relaxed) + n > IN_FLIGHT {
            dropped("queue", u64::try_from(n).unwrap_or(u64::MAX));
            batch.clear();
        } else {
            in_flight.fetch_add(n, Ordering::Relaxed);
            if driver.send(Message::Flows(std::mem::take(&mut batch))).is_err() {
                return;
            }
        }
        started = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(sport: u16) -> Logged {
        Logged {
            prefix: "palisade deny ingress x/a: ".into(),
            time: None,
            interfaces: (None, None),
            head: Some(PacketHead {
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                protocol: 6,
                sport: Some(sport),
                dport: Some(80),
            }),
        }
    }

    #[test]
    fn a_flow_is_reported_once_and_memory_stays_bounded() {
        let mut r = Repeats::new();
        assert!(!r.repeat(&logged(1)));
        assert!(r.repeat(&logged(1)), "a retransmitted first packet");
        assert!(!r.repeat(&logged(2)), "another connection");
        // A flood of distinct flows: never more than two generations.
        for port in 0..u16::MAX {
            r.repeat(&logged(port));
            assert!(r.current.len() + r.previous.len() <= 2 * REMEMBERED);
        }
    }
}
