//! Palisade's ctnetlink client against the kernel's conntrack table, in a
//! throwaway network namespace: what it creates, the `conntrack` tool
//! lists; its dumps (whole and filtered by an address, through NAT tuples)
//! return exactly the entries the tool counts; its deletes remove exactly
//! the named entries, and an entry replaced since it was read is left
//! alone. Root only (`scripts/test` runs it).

use std::net::IpAddr;

use palisade_dataplane::conntrack::{Conntrack, Entry, Filter, Sides, TCP, Tuple, UDP};
use palisade_lab::netns::{NetNs, require_root, unique_prefix};

fn tuple(src: &str, dst: &str, protocol: u8, sport: u16, dport: u16) -> Tuple {
    Tuple { src: src.parse().unwrap(), dst: dst.parse().unwrap(), protocol, sport, dport }
}

/// An entry without NAT.
fn plain(src: &str, dst: &str, protocol: u8, sport: u16, dport: u16) -> Entry {
    let orig = tuple(src, dst, protocol, sport, dport);
    Entry { orig, reply: orig.reversed(), zone: 0, id: 0 }
}

/// Runs `f` on a thread inside a new namespace.
fn in_netns<T: Send + 'static>(f: impl FnOnce(&NetNs) -> T + Send + 'static) -> T {
    require_root(&["ip", "conntrack"]);
    // Owned here: removed when this returns, also when `f` panics.
    let ns = NetNs::create(&format!("{}ct", unique_prefix())).expect("namespace");
    let name = ns.name().to_string();
    palisade_lab::netns::run_in(ns.name(), move || f(&NetNs::existing(&name)))
}

/// Entries as the `conntrack` tool lists them (an independent reader).
fn tool_count(ns: &NetNs, family: &str) -> usize {
    let out = ns.exec("conntrack", &["-L", "-f", family]).expect("conntrack -L");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
#[ignore = "root: network namespaces and conntrack (scripts/test runs it as root)"]
fn dumps_and_deletes_exactly_the_entries_asked_for() {
    in_netns(|ns| {
        let mut ct = Conntrack::new().expect("socket");
        let dnat = Entry {
            // To a Service address, answered by 10.0.0.3 behind it.
            orig: tuple("10.0.0.1", "10.96.0.10", TCP, 40001, 80),
            reply: tuple("10.0.0.3", "10.0.0.1", TCP, 8080, 40001),
            zone: 0,
            id: 0,
        };
        let mut zoned = plain("10.0.0.1", "10.0.0.2", UDP, 40002, 53);
        zoned.zone = 7;
        let created = vec![
            plain("10.0.0.1", "10.0.0.2", TCP, 40000, 80),
            zoned,
            dnat,
            plain("10.0.0.2", "10.0.0.1", TCP, 40003, 443),
            plain("10.0.0.4", "10.0.0.5", UDP, 40004, 53),
            plain("fd00::1", "fd00::2", TCP, 40005, 80),
            plain("fd00::2", "fd00::1", UDP, 40006, 53),
        ];
        ct.create(&created, 600).expect("create");
        assert_eq!(tool_count(ns, "ipv4") + tool_count(ns, "ipv6"), created.len());

        let all = ct.entries(Filter::All).expect("dump");
        assert_eq!(all.len(), created.len(), "{all:#?}");
        for c in &created {
            assert!(all.iter().any(|e| e.orig == c.orig && e.reply == c.reply && e.zone == c.zone), "{c:?} missing");
        }
        let dnat_read = all.iter().find(|e| e.orig == dnat.orig).unwrap();
        assert_eq!(dnat_read.flow().dst, "10.0.0.3".parse::<IpAddr>().unwrap(), "the real destination");
        assert_eq!(dnat_read.flow().port, 8080);

        let mut opened_by = |a: &str| {
            let mut ports: Vec<u16> =
                ct.entries(Filter::OrigSrc(a.parse().unwrap())).unwrap().iter().map(|e| e.orig.sport).collect();
            ports.sort_unstable();
            ports
        };
        assert_eq!(opened_by("10.0.0.1"), [40000, 40001, 40002]);
        assert_eq!(opened_by("fd00::2"), [40006]);
        assert_eq!(opened_by("10.0.0.9"), Vec::<u16>::new());
        let mut answered: Vec<u16> =
            ct.entries(Filter::ReplySrc("10.0.0.3".parse().unwrap())).unwrap().iter().map(|e| e.orig.sport).collect();
        answered.sort_unstable();
        assert_eq!(answered, [40001], "through destination NAT");

        // Found by either endpoint, through NAT, in both families; with
        // more IPv4 addresses than get filtered dumps, from one family dump.
        let involving_sides = |ct: &mut Conntrack, addrs: &[&str], sides: Sides| {
            let set = addrs.iter().map(|a| (a.parse::<IpAddr>().unwrap(), sides)).collect();
            let mut ports: Vec<u16> = ct.involving(&set).unwrap().iter().map(|e| e.orig.sport).collect();
            ports.sort_unstable();
            ports
        };
        let involving = |ct: &mut Conntrack, addrs: &[&str]| involving_sides(ct, addrs, Sides::BOTH);
        assert_eq!(involving(&mut ct, &["10.0.0.3", "fd00::2"]), [40001, 40005, 40006]);
        assert_eq!(involving(&mut ct, &["10.0.0.2"]), [40000, 40002, 40003]);
        let opened = Sides { opened: true, answered: false };
        let answered = Sides { opened: false, answered: true };
        assert_eq!(involving_sides(&mut ct, &["10.0.0.2"], opened), [40003]);
        assert_eq!(involving_sides(&mut ct, &["10.0.0.2"], answered), [40000, 40002]);
        let many = ["10.0.0.5", "10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"];
        assert_eq!(involving(&mut ct, &many), [40004]);

        // Delete two entries (one in a zone); a third named by a stale id
        // (as if it had been replaced by a new connection) stays.
        let by_port = |p: u16| *all.iter().find(|e| e.orig.sport == p).unwrap();
        let mut stale = by_port(40004);
        stale.id = stale.id.wrapping_add(1);
        let report = ct.delete(&[by_port(40000), by_port(40002), stale]).expect("delete");
        assert_eq!((report.deleted, report.gone), (2, 1));
        let mut left: Vec<u16> = ct.entries(Filter::All).unwrap().iter().map(|e| e.orig.sport).collect();
        left.sort_unstable();
        assert_eq!(left, [40001, 40003, 40004, 40005, 40006]);
        assert_eq!(tool_count(ns, "ipv4") + tool_count(ns, "ipv6"), 5);
        // Deleting again: gone, not an error.
        assert_eq!(ct.delete(&[by_port(40000)]).unwrap().gone, 1);
    });
}

#[test]
#[ignore = "root: network namespaces and conntrack (scripts/test runs it as root)"]
fn a_large_table_dumps_whole_and_filtered() {
    in_netns(|ns| {
        let mut ct = Conntrack::new().expect("socket");
        // Large enough that finding an address's connections takes the
        // kernel-filtered dumps (see `conntrack::plan`).
        let entries: Vec<Entry> = (0..40_000u32)
            .map(|i| {
                let src = IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8 + 1]);
                let orig = Tuple { src, dst: "10.2.0.1".parse().unwrap(), protocol: TCP, sport: 10_000, dport: 80 };
                Entry { orig, reply: orig.reversed(), zone: 0, id: 0 }
            })
            .collect();
        ct.create(&entries, 600).expect("create");
        assert_eq!(tool_count(ns, "ipv4"), entries.len());
        assert_eq!(ct.entries(Filter::All).unwrap().len(), entries.len());
        assert_eq!(ct.entries(Filter::OrigSrc(entries[12_345].orig.src)).unwrap().len(), 1);
        assert_eq!(ct.entries(Filter::ReplySrc("10.2.0.1".parse().unwrap())).unwrap().len(), entries.len());
        let count: usize =
            std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count").unwrap().trim().parse().unwrap();
        let buckets: usize =
            std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_buckets").unwrap().trim().parse().unwrap();
        assert_eq!(count, entries.len(), "the count is this namespace's");
        assert_eq!(
            palisade_dataplane::conntrack::plan(1, false, count, buckets),
            [palisade_dataplane::conntrack::Dump::FilteredV4]
        );
        let one = [(entries[12_345].orig.src, Sides::BOTH)].into();
        assert_eq!(
            ct.involving(&one).unwrap(),
            [entries[12_345]].map(|mut e| {
                e.id = ct.entries(Filter::OrigSrc(e.orig.src)).unwrap()[0].id;
                e
            })
        );
        let server = "10.2.0.1".parse().unwrap();
        let answered = Sides { opened: false, answered: true };
        assert_eq!(ct.involving(&[(server, answered)].into()).unwrap().len(), entries.len());
        assert!(ct.involving(&[(server, Sides { opened: true, answered: false })].into()).unwrap().is_empty());
    });
}

#[test]
#[ignore = "root: network namespaces and conntrack (scripts/test runs it as root)"]
fn the_tracker_follows_new_and_destroyed_connections() {
    use palisade_dataplane::conntrack::Tracker;
    in_netns(|ns| {
        let mut ct = Conntrack::new().expect("socket");
        // Before the tracker starts: found through its seeding dump.
        let early = plain("10.0.0.1", "10.0.0.2", TCP, 41000, 80);
        ct.create(&[early], 600).unwrap();
        let tracker = Tracker::start().expect("tracker");
        let late = vec![
            plain("10.0.0.2", "10.0.0.3", UDP, 41001, 53),
            plain("fd00::1", "fd00::2", TCP, 41002, 80),
            plain("10.0.0.4", "10.0.0.5", TCP, 41003, 80),
        ];
        ct.create(&late, 600).unwrap();
        let ports = |v: Vec<Entry>| {
            let mut p: Vec<u16> = v.iter().map(|e| e.orig.sport).collect();
            p.sort_unstable();
            p
        };
        let addr = |s: &str| s.parse::<IpAddr>().unwrap();
        // Asked at once after the creates: nothing queued is missed.
        assert_eq!(ports(tracker.involving(vec![addr("10.0.0.2")]).unwrap()), [41000, 41001]);
        assert_eq!(ports(tracker.involving(vec![addr("fd00::2")]).unwrap()), [41002]);
        assert_eq!(tracker.all().unwrap().len(), 4);
        assert_eq!(tool_count(ns, "ipv4") + tool_count(ns, "ipv6"), 4);
        let found = tracker.involving(vec![addr("10.0.0.1")]).unwrap();
        ct.delete(&found).unwrap();
        tracker.forget(found);
        assert!(tracker.involving(vec![addr("10.0.0.1")]).unwrap().is_empty());
        assert_eq!(ports(tracker.involving(vec![addr("10.0.0.2")]).unwrap()), [41001]);
        // Ended by someone else: the destroy event removes it.
        ns.exec("conntrack", &["-D", "-s", "10.0.0.4"]).expect("conntrack -D");
        assert!(tracker.involving(vec![addr("10.0.0.4")]).unwrap().is_empty());
        // A burst larger than a socket read: every one is followed.
        let burst: Vec<Entry> = (0..5_000u16).map(|i| plain("10.0.1.1", "10.0.1.2", UDP, 20_000 + i, 53)).collect();
        ct.create(&burst, 600).unwrap();
        assert_eq!(tracker.involving(vec![addr("10.0.1.2")]).unwrap().len(), burst.len());
    });
}

#[test]
#[ignore = "root: network namespaces and conntrack (scripts/test runs it as root)"]
fn the_tracker_rebuilds_after_lost_events_and_still_answers_exactly() {
    use palisade_dataplane::conntrack::Tracker;
    in_netns(|_| {
        let mut ct = Conntrack::new().expect("socket");
        // A buffer of a few events: a burst overflows it.
        let tracker = Tracker::start_with_buffer(4096).expect("tracker");
        let burst: Vec<Entry> = (0..20_000u16).map(|i| plain("10.0.2.1", "10.0.2.2", UDP, 20_000 + i, 53)).collect();
        ct.create(&burst, 600).unwrap();
        ct.create(&[plain("10.0.3.1", "10.0.3.2", TCP, 1234, 80)], 600).unwrap();
        let addr = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(tracker.involving(vec![addr("10.0.2.2")]).unwrap().len(), burst.len());
        assert_eq!(tracker.involving(vec![addr("10.0.3.1")]).unwrap().len(), 1);
        assert!(tracker.rebuilds() > 0, "the burst overflowed the event buffer (else this test proves nothing)");
    });
}
