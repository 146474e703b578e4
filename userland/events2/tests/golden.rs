//! Golden tests from the reference (drbd-utils test events2-sync / -helper,
//! `drbd9-control-plane.md` §2.4 and §2.6): messages are encoded as the kernel
//! sends them, decoded, and printed.

use events2::encode::MsgBuilder;
use events2::state::*;
use events2::{decode, LineOpts, Model, Printer, StatusOpts};
use genl_spec::generated::{cmd, notify, ConnState, DiskState, ReplState, Role, MINOR_NONE};

const RES: &str = "some-resource";

fn ctx(volume: Option<u32>, peer: Option<u32>) -> Context {
    Context {
        resource: RES.into(),
        volume,
        peer_node_id: peer,
        conn_name: peer.map(|_| "some-peer".to_string()),
        my_addr: None,
        peer_addr: None,
    }
}

fn ev(command: u8, minor: u32, _nh: u32, b: MsgBuilder) -> Event {
    decode(command, minor, &b.finish()).expect("decode")
}

fn resource(nh: u32, role: Role) -> Event {
    let b = MsgBuilder::default()
        .context(&ctx(None, None))
        .unwrap()
        .notification(nh)
        .unwrap()
        .resource(
            &ResourceInfo {
                role,
                ..Default::default()
            },
            &ResourceStats { write_ordering: 2 },
        )
        .unwrap();
    ev(cmd::RESOURCE_STATE, MINOR_NONE, nh, b)
}

fn device(nh: u32, disk: DiskState, backing: Option<&str>) -> Event {
    let b = MsgBuilder::default()
        .context(&ctx(Some(0), None))
        .unwrap()
        .notification(nh)
        .unwrap()
        .device(
            &DeviceInfo {
                disk,
                intentional_diskless: Some(false),
                has_quorum: true,
                backing_dev: backing.map(str::to_owned),
                is_open: Some(false),
            },
            &DeviceStats {
                size: 10,
                read: 20,
                write: 30,
                al_writes: 40,
                bm_writes: 50,
                upper_pending: 60,
                lower_pending: 70,
                ..Default::default()
            },
        )
        .unwrap();
    ev(cmd::DEVICE_STATE, 1000, nh, b)
}

fn connection(nh: u32, cstate: ConnState, peer_role: Role) -> Event {
    let b = MsgBuilder::default()
        .context(&ctx(None, Some(1)))
        .unwrap()
        .notification(nh)
        .unwrap()
        .connection(
            &ConnectionInfo { cstate, peer_role },
            &ConnectionStats::default(),
        )
        .unwrap();
    ev(cmd::CONNECTION_STATE, MINOR_NONE, nh, b)
}

fn peer_device(nh: u32, repl: ReplState, peer_disk: DiskState, syncing: bool) -> Event {
    let stats = if syncing {
        PeerDeviceStats {
            rs_total: 800,
            out_of_sync: 500,
            ..Default::default()
        }
    } else {
        PeerDeviceStats::default()
    };
    let b = MsgBuilder::default()
        .context(&ctx(Some(0), Some(1)))
        .unwrap()
        .notification(nh)
        .unwrap()
        .peer_device(
            &PeerDeviceInfo {
                repl,
                peer_disk,
                peer_intentional_diskless: Some(false),
                ..Default::default()
            },
            &stats,
        )
        .unwrap();
    ev(cmd::PEER_DEVICE_STATE, 1000, nh, b)
}

fn path(nh: u32) -> Event {
    let mut c = ctx(None, Some(1));
    c.my_addr = Some(sockaddr_bytes(&"1.2.3.4:7789".parse().unwrap()));
    c.peer_addr = Some(sockaddr_bytes(&"5.6.7.8:7790".parse().unwrap()));
    let b = MsgBuilder::default()
        .context(&c)
        .unwrap()
        .notification(nh)
        .unwrap()
        .path(&PathInfo { established: false })
        .unwrap();
    ev(cmd::PATH_STATE, MINOR_NONE, nh, b)
}

fn helper(nh: u32, status: u32) -> Event {
    let b = MsgBuilder::default()
        .context(&ctx(Some(0), Some(1)))
        .unwrap()
        .notification(nh)
        .unwrap()
        .helper("before-resync-target", status)
        .unwrap();
    ev(cmd::HELPER, MINOR_NONE, nh, b)
}

fn initial_done() -> Event {
    let b = MsgBuilder::default().notification(notify::EXISTS).unwrap();
    ev(cmd::INITIAL_STATE_DONE, MINOR_NONE, 0, b)
}

fn destroy_resource() -> Event {
    let b = MsgBuilder::default()
        .context(&ctx(None, None))
        .unwrap()
        .notification(notify::DESTROY)
        .unwrap();
    ev(cmd::RESOURCE_STATE, MINOR_NONE, notify::DESTROY, b)
}

#[test]
fn events2_sync_and_helper() {
    let mut p = Printer::new(LineOpts::default());
    let mut out = Vec::new();
    let msgs = vec![
        initial_done(),
        resource(notify::CREATE, Role::Secondary),
        device(notify::CREATE, DiskState::Diskless, None),
        connection(notify::CREATE, ConnState::StandAlone, Role::Unknown),
        peer_device(notify::CREATE, ReplState::Off, DiskState::DUnknown, false),
        path(notify::CREATE),
        device(notify::CHANGE, DiskState::UpToDate, Some("/dev/sda")),
        connection(notify::CHANGE, ConnState::Connected, Role::Secondary),
        peer_device(
            notify::CHANGE,
            ReplState::SyncSource,
            DiskState::Inconsistent,
            true,
        ),
        helper(notify::CALL, 0),
        helper(notify::RESPONSE, 1),
        destroy_resource(),
    ];
    for m in msgs {
        out.extend(p.push(m));
    }
    let want = "\
exists -
create resource name:some-resource role:Secondary suspended:no force-io-failures:no may_promote:no promotion_score:0
create device name:some-resource volume:0 minor:1000 backing_dev:none disk:Diskless client:no open:no quorum:yes
create connection name:some-resource peer-node-id:1 conn-name:some-peer connection:StandAlone role:Unknown
create peer-device name:some-resource peer-node-id:1 conn-name:some-peer volume:0 replication:Off peer-disk:DUnknown peer-client:no resync-suspended:no
create path name:some-resource peer-node-id:1 conn-name:some-peer local:ipv4:1.2.3.4:7789 peer:ipv4:5.6.7.8:7790 established:no
change resource name:some-resource may_promote:yes promotion_score:10101
change device name:some-resource volume:0 minor:1000 backing_dev:/dev/sda disk:UpToDate client:no open:no quorum:yes
change connection name:some-resource peer-node-id:1 conn-name:some-peer connection:Connected role:Secondary
change peer-device name:some-resource peer-node-id:1 conn-name:some-peer volume:0 replication:SyncSource peer-disk:Inconsistent peer-client:no done:37.50
call helper name:some-resource peer-node-id:1 conn-name:some-peer volume:0 helper:before-resync-target
response helper name:some-resource peer-node-id:1 conn-name:some-peer volume:0 helper:before-resync-target status:1
destroy resource name:some-resource";
    assert_eq!(out.join("\n"), want);
}

#[test]
fn events2_statistics_device_line() {
    let mut p = Printer::new(LineOpts {
        statistics: true,
        full: false,
    });
    p.push(resource(notify::CREATE, Role::Secondary));
    let lines = p.push(device(notify::CREATE, DiskState::Diskless, None));
    assert_eq!(
        lines,
        ["create device name:some-resource volume:0 minor:1000 backing_dev:none disk:Diskless client:no open:no quorum:yes size:5 read:10 written:15 al-writes:40 bm-writes:50 upper-pending:60 lower-pending:70 al-suspended:no blocked:no"]
    );
}

#[test]
fn initial_state_is_one_batch_per_resource() {
    // exists messages with CONTINUES are printed together, with the
    // promotion score of the whole batch on the resource line.
    let mut p = Printer::new(LineOpts::default());
    let cont = notify::EXISTS | notify::CONTINUES;
    assert!(p.push(resource(cont, Role::Secondary)).is_empty());
    let lines = p.push(device(
        notify::EXISTS,
        DiskState::UpToDate,
        Some("/dev/vdb"),
    ));
    assert_eq!(
        lines,
        [
            "exists resource name:some-resource role:Secondary suspended:no force-io-failures:no may_promote:yes promotion_score:10101",
            "exists device name:some-resource volume:0 minor:1000 backing_dev:/dev/vdb disk:UpToDate client:no open:no quorum:yes",
        ]
    );
    assert_eq!(p.push(initial_done()), ["exists -"]);
}

#[test]
fn primary_cannot_promote() {
    let mut p = Printer::new(LineOpts::default());
    p.push(resource(notify::CREATE, Role::Secondary));
    p.push(device(
        notify::CREATE,
        DiskState::UpToDate,
        Some("/dev/vdb"),
    ));
    let lines = p.push(resource(notify::CHANGE, Role::Primary));
    assert_eq!(
        lines,
        ["change resource name:some-resource role:Primary may_promote:no promotion_score:10101"]
    );
}

fn model_of(events: Vec<Event>) -> Model {
    let mut m = Model::default();
    for e in &events {
        m.apply(e);
    }
    m
}

#[test]
fn status_examples() {
    let m = model_of(vec![
        resource(notify::EXISTS, Role::Primary),
        device(notify::EXISTS, DiskState::UpToDate, Some("/dev/vdb")),
    ]);
    let opts = StatusOpts::default();
    assert_eq!(
        events2::status_text(&m, None, opts).unwrap(),
        "some-resource role:Primary\n  disk:UpToDate\n\n"
    );
    let mut m2 = m.clone();
    m2.apply(&connection(
        notify::EXISTS,
        ConnState::Connected,
        Role::Secondary,
    ));
    m2.apply(&peer_device(
        notify::EXISTS,
        ReplState::Established,
        DiskState::UpToDate,
        false,
    ));
    assert_eq!(
        events2::status_text(&m2, Some(RES), opts).unwrap(),
        "some-resource role:Primary\n  disk:UpToDate\n  some-peer role:Secondary\n    peer-disk:UpToDate\n\n"
    );
    let mut m3 = m.clone();
    m3.apply(&connection(
        notify::EXISTS,
        ConnState::Connecting,
        Role::Unknown,
    ));
    assert_eq!(
        events2::status_text(&m3, None, opts).unwrap(),
        "some-resource role:Primary\n  disk:UpToDate\n  some-peer connection:Connecting\n\n"
    );
    assert!(events2::status_text(&m, Some("nope"), opts).is_none());
    assert_eq!(
        events2::status_text(&Model::default(), None, opts).unwrap(),
        "# No currently configured DRBD found.\n"
    );
    let verbose = StatusOpts {
        verbose: true,
        statistics: true,
        is_tty: false,
    };
    let v = events2::status_text(&m, None, verbose).unwrap();
    assert!(v.starts_with("some-resource role:Primary suspended:no force-io-failures:no\n    write-ordering:flush\n  volume:0 minor:1000 disk:UpToDate backing_dev:/dev/vdb quorum:yes open:no\n"), "{v}");
}

#[test]
fn status_json_shape() {
    let m = model_of(vec![
        resource(notify::EXISTS, Role::Secondary),
        device(notify::EXISTS, DiskState::UpToDate, Some("/dev/vdb")),
        connection(notify::EXISTS, ConnState::Connected, Role::Primary),
    ]);
    let v = events2::status_json(&m, None);
    assert_eq!(v[0]["name"], "some-resource");
    assert_eq!(v[0]["role"], "Secondary");
    assert_eq!(v[0]["suspended"], false);
    assert_eq!(v[0]["devices"][0]["disk-state"], "UpToDate");
    assert_eq!(v[0]["devices"][0]["minor"], 1000);
    assert_eq!(v[0]["devices"][0]["written"], 15);
    assert_eq!(v[0]["connections"][0]["peer-role"], "Primary");
    assert_eq!(v[0]["connections"][0]["name"], "some-peer");
    // drbdsetup's member order (drbd-utils prints them in this order).
    let keys: Vec<&String> = v[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "name",
            "node-id",
            "role",
            "suspended",
            "suspended-user",
            "suspended-no-data",
            "suspended-fencing",
            "suspended-quorum",
            "force-io-failures",
            "write-ordering",
            "devices",
            "connections"
        ]
    );
}

#[test]
fn status_json_peer_device_sync_details() {
    let m = model_of(vec![
        resource(notify::EXISTS, Role::Secondary),
        device(notify::EXISTS, DiskState::UpToDate, Some("/dev/vdb")),
        connection(notify::EXISTS, ConnState::Connected, Role::Primary),
        peer_device(
            notify::EXISTS,
            ReplState::SyncSource,
            DiskState::Inconsistent,
            true,
        ),
    ]);
    let v = events2::status_json(&m, None);
    let pd = &v[0]["connections"][0]["peer_devices"][0];
    let keys: Vec<&String> = pd.as_object().unwrap().keys().collect();
    assert_eq!(
        &keys[..13],
        [
            "volume",
            "replication-state",
            "peer-disk-state",
            "peer-client",
            "resync-suspended",
            "received",
            "sent",
            "out-of-sync",
            "pending",
            "unacked",
            "has-sync-details",
            "has-online-verify-details",
            "percent-in-sync"
        ],
        "{pd}"
    );
    assert_eq!(pd["has-sync-details"], true);
    assert_eq!(pd["rs-total"], 800);
    assert_eq!(pd["rs-failed"], 0);
    // 500 of 800 sectors still to go.
    assert_eq!(pd["percent-resync-done"], 37.5);
    assert_eq!(keys.last().map(|k| k.as_str()), Some("percent-resync-done"));
}

#[test]
fn timestamps() {
    assert_eq!(
        events2::print::timestamp(1_700_000_000, 123_456, 3600),
        "2023-11-14T23:13:20.123456+01:00"
    );
    assert_eq!(
        events2::print::timestamp(0, 0, -5 * 3600),
        "1969-12-31T19:00:00.000000-05:00"
    );
}

#[test]
fn decode_rejects_garbage_without_panic() {
    assert!(decode(cmd::RESOURCE_STATE, 0, &[1, 2, 3]).is_err());
    assert!(decode(99, 0, &[]).is_err());
    assert!(decode(cmd::RESOURCE_STATE, 0, &[]).is_ok());
}

#[test]
fn sockaddr_formats() {
    let v6 = sockaddr_bytes(&"[fd00::1]:7790".parse().unwrap());
    assert_eq!(format_sockaddr(&v6).unwrap(), "ipv6:[fd00::1]:7790");
    assert_eq!(format_sockaddr(&[1]), None);
}
