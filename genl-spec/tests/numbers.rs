//! Checks the generated numbers against a hand-written table of DRBD 9's ABI
//! (drbd-headers `linux/drbd_genl.h`, `drbd.h`, as summarised in
//! `shared/reference/drbd9-control-plane.md` §1). Written independently of
//! drbd.yaml on purpose: a typo in either shows up here.

use genl_spec::generated::*;

#[test]
fn family() {
    assert_eq!(FAMILY_NAME, "drbd");
    assert_eq!(FAMILY_VERSION, 2);
    assert_eq!(MCAST_GROUP_EVENTS, "events");
    assert_eq!(DRBD_GENL_HDR_LEN, 8);
    assert_eq!(GENL_HDR_LEN, 4);
    assert_eq!(hdr_flags::SET_DEFAULTS, 1);
    assert_eq!(member_flags::REQUIRED, 1);
    assert_eq!(member_flags::SENSITIVE, 2);
    assert_eq!(member_flags::INVARIANT, 4);
    assert_eq!(GENLA_F_MANDATORY, 1 << 14);
    assert_eq!(MD_INDEX_FLEX_INT, -3);
    assert_eq!(MD_INDEX_FLEX_EXT, -2);
}

#[test]
fn commands() {
    let table: &[(u8, u8)] = &[
        (cmd::ADM_NEW_MINOR, 5),
        (cmd::ADM_DEL_MINOR, 6),
        (cmd::ADM_NEW_RESOURCE, 7),
        (cmd::ADM_DEL_RESOURCE, 8),
        (cmd::ADM_RESOURCE_OPTS, 9),
        (cmd::ADM_CONNECT, 10),
        (cmd::ADM_DISCONNECT, 11),
        (cmd::ADM_ATTACH, 12),
        (cmd::ADM_RESIZE, 13),
        (cmd::ADM_PRIMARY, 14),
        (cmd::ADM_SECONDARY, 15),
        (cmd::ADM_NEW_C_UUID, 16),
        (cmd::ADM_START_OV, 17),
        (cmd::ADM_DETACH, 18),
        (cmd::ADM_INVALIDATE, 19),
        (cmd::ADM_INVAL_PEER, 20),
        (cmd::ADM_PAUSE_SYNC, 21),
        (cmd::ADM_RESUME_SYNC, 22),
        (cmd::ADM_SUSPEND_IO, 23),
        (cmd::ADM_RESUME_IO, 24),
        (cmd::ADM_OUTDATE, 25),
        (cmd::ADM_GET_TIMEOUT_TYPE, 26),
        (cmd::ADM_DOWN, 27),
        (cmd::ADM_CHG_DISK_OPTS, 28),
        (cmd::ADM_CHG_NET_OPTS, 29),
        (cmd::ADM_GET_RESOURCES, 30),
        (cmd::ADM_GET_DEVICES, 31),
        (cmd::ADM_GET_CONNECTIONS, 32),
        (cmd::ADM_GET_PEER_DEVICES, 33),
        (cmd::RESOURCE_STATE, 34),
        (cmd::DEVICE_STATE, 35),
        (cmd::CONNECTION_STATE, 36),
        (cmd::PEER_DEVICE_STATE, 37),
        (cmd::ADM_GET_INITIAL_STATE, 38),
        (cmd::HELPER, 40),
        (cmd::INITIAL_STATE_DONE, 41),
        (cmd::ADM_FORGET_PEER, 42),
        (cmd::ADM_CHG_PEER_DEVICE_OPTS, 43),
        (cmd::ADM_NEW_PEER, 44),
        (cmd::ADM_NEW_PATH, 45),
        (cmd::ADM_DEL_PEER, 46),
        (cmd::ADM_DEL_PATH, 47),
        (cmd::PATH_STATE, 48),
        (cmd::ADM_RENAME_RESOURCE, 49),
        (cmd::ADM_GET_PATHS, 50),
    ];
    for (got, want) in table {
        assert_eq!(got, want);
    }
    assert_eq!(COMMANDS.len(), table.len());
    for unused in [1u8, 2, 3, 4, 39] {
        assert!(command(unused).is_none());
    }
    let attach = command(12).unwrap();
    assert_eq!(attach.kind, CmdKind::Do);
    assert_eq!(attach.context, ctx_need::MINOR);
    assert!(attach
        .tlas
        .iter()
        .any(|t| t.tla == tla::DISK_CONF && t.required));
    assert_eq!(command(38).unwrap().kind, CmdKind::Dump);
    assert_eq!(
        command(27).unwrap().context,
        ctx_need::RESOURCE | ctx_need::IGNORE_VERSION
    );
}

#[test]
fn top_level_attributes() {
    let table: &[(u16, u16, &str)] = &[
        (tla::CFG_REPLY, 1, "cfg_reply"),
        (tla::CFG_CONTEXT, 2, "cfg_context"),
        (tla::DISK_CONF, 3, "disk_conf"),
        (tla::RESOURCE_OPTS, 4, "res_opts"),
        (tla::NET_CONF, 5, "net_conf"),
        (tla::SET_ROLE_PARMS, 6, "set_role_parms"),
        (tla::RESIZE_PARMS, 7, "resize_parms"),
        (tla::START_OV_PARMS, 9, "start_ov_parms"),
        (tla::NEW_C_UUID_PARMS, 10, "new_c_uuid_parms"),
        (tla::TIMEOUT_PARMS, 11, "timeout_parms"),
        (tla::DISCONNECT_PARMS, 12, "disconnect_parms"),
        (tla::DETACH_PARMS, 13, "detach_parms"),
        (tla::DEVICE_CONF, 14, "device_conf"),
        (tla::RESOURCE_INFO, 15, "resource_info"),
        (tla::DEVICE_INFO, 16, "device_info"),
        (tla::CONNECTION_INFO, 17, "connection_info"),
        (tla::PEER_DEVICE_INFO, 18, "peer_device_info"),
        (tla::RESOURCE_STATISTICS, 19, "resource_statistics"),
        (tla::DEVICE_STATISTICS, 20, "device_statistics"),
        (tla::CONNECTION_STATISTICS, 21, "connection_statistics"),
        (tla::PEER_DEVICE_STATISTICS, 22, "peer_device_statistics"),
        (tla::NOTIFICATION_HEADER, 23, "notification_header"),
        (tla::HELPER, 24, "helper_info"),
        (tla::INVALIDATE_PARMS, 25, "invalidate_parms"),
        (tla::FORGET_PEER_PARMS, 26, "forget_peer_parms"),
        (tla::PEER_DEVICE_OPTS, 27, "peer_device_conf"),
        (tla::PATH_PARMS, 28, "path_parms"),
        (tla::CONNECT_PARMS, 29, "connect_parms"),
        (tla::PATH_INFO, 30, "path_info"),
        (tla::RENAME_RESOURCE_PARMS, 31, "rename_resource_parms"),
        (tla::RENAME_RESOURCE_INFO, 32, "rename_resource_info"),
        (tla::INVAL_PEER_PARAMS, 33, "inval_peer_parms"),
        (tla::SUSPEND_IO_PARAMS, 34, "suspend_io_parms"),
    ];
    for (got, want, set) in table {
        assert_eq!(got, want);
        assert_eq!(set_by_tla(*want).unwrap().name, *set);
    }
    assert_eq!(SETS.len(), table.len());
    assert!(set_by_tla(8).is_none());
}

/// (set, member name, number, type)
const MEMBERS: &[(&str, &str, u16, AttrType)] = {
    use AttrType::*;
    &[
        ("cfg_reply", "info_text", 1, String),
        ("cfg_context", "ctx_volume", 1, U32),
        ("cfg_context", "ctx_resource_name", 2, String),
        ("cfg_context", "ctx_my_addr", 3, Binary),
        ("cfg_context", "ctx_peer_addr", 4, Binary),
        ("cfg_context", "ctx_conn_name", 5, String),
        ("cfg_context", "ctx_peer_node_id", 6, U32),
        ("disk_conf", "backing_dev", 1, String),
        ("disk_conf", "meta_dev", 2, String),
        ("disk_conf", "meta_dev_idx", 3, S32),
        ("disk_conf", "disk_size", 4, U64),
        ("disk_conf", "on_io_error", 6, U32),
        ("disk_conf", "resync_after", 9, S32),
        ("disk_conf", "al_extents", 10, U32),
        ("disk_conf", "disk_barrier", 16, Flag),
        ("disk_conf", "disk_flushes", 17, Flag),
        ("disk_conf", "disk_drain", 18, Flag),
        ("disk_conf", "md_flushes", 19, Flag),
        ("disk_conf", "disk_timeout", 20, U32),
        ("disk_conf", "read_balancing", 21, U32),
        ("disk_conf", "unplug_watermark", 22, U32),
        ("disk_conf", "al_updates", 23, Flag),
        ("disk_conf", "discard_zeroes_if_aligned", 24, Flag),
        ("disk_conf", "rs_discard_granularity", 25, U32),
        ("disk_conf", "disable_write_same", 26, Flag),
        ("disk_conf", "d_bitmap", 27, Flag),
        ("res_opts", "cpu_mask", 1, String),
        ("res_opts", "on_no_data", 2, U32),
        ("res_opts", "auto_promote", 3, Flag),
        ("res_opts", "node_id", 4, U32),
        ("res_opts", "peer_ack_window", 5, U32),
        ("res_opts", "twopc_timeout", 6, U32),
        ("res_opts", "twopc_retry_timeout", 7, U32),
        ("res_opts", "peer_ack_delay", 8, U32),
        ("res_opts", "auto_promote_timeout", 9, U32),
        ("res_opts", "nr_requests", 10, U32),
        ("res_opts", "quorum", 11, S32),
        ("res_opts", "on_no_quorum", 12, U32),
        ("res_opts", "quorum_min_redundancy", 13, S32),
        ("res_opts", "on_susp_primary_outdated", 14, U32),
        ("res_opts", "drbd8_compat_mode", 15, Flag),
        ("res_opts", "explicit_drbd8_compat", 16, Flag),
        ("net_conf", "shared_secret", 1, String),
        ("net_conf", "cram_hmac_alg", 2, String),
        ("net_conf", "integrity_alg", 3, String),
        ("net_conf", "verify_alg", 4, String),
        ("net_conf", "csums_alg", 5, String),
        ("net_conf", "wire_protocol", 6, U32),
        ("net_conf", "connect_int", 7, U32),
        ("net_conf", "timeout", 8, U32),
        ("net_conf", "ping_int", 9, U32),
        ("net_conf", "ping_timeo", 10, U32),
        ("net_conf", "sndbuf_size", 11, U32),
        ("net_conf", "rcvbuf_size", 12, U32),
        ("net_conf", "ko_count", 13, U32),
        ("net_conf", "max_epoch_size", 15, U32),
        ("net_conf", "after_sb_0p", 17, U32),
        ("net_conf", "after_sb_1p", 18, U32),
        ("net_conf", "after_sb_2p", 19, U32),
        ("net_conf", "rr_conflict", 20, U32),
        ("net_conf", "on_congestion", 21, U32),
        ("net_conf", "cong_fill", 22, U32),
        ("net_conf", "cong_extents", 23, U32),
        ("net_conf", "two_primaries", 24, Flag),
        ("net_conf", "tcp_cork", 26, Flag),
        ("net_conf", "always_asbp", 27, Flag),
        ("net_conf", "use_rle", 29, Flag),
        ("net_conf", "fencing_policy", 30, U32),
        ("net_conf", "name", 31, String),
        ("net_conf", "csums_after_crash_only", 33, Flag),
        ("net_conf", "sock_check_timeo", 34, U32),
        ("net_conf", "transport_name", 35, String),
        ("net_conf", "max_buffers", 36, U32),
        ("net_conf", "allow_remote_read", 37, Flag),
        ("net_conf", "tls", 38, Flag),
        ("net_conf", "tls_privkey", 39, S32),
        ("net_conf", "tls_certificate", 40, S32),
        ("net_conf", "tls_keyring", 41, S32),
        ("net_conf", "load_balance_paths", 42, Flag),
        ("net_conf", "rdma_ctrl_rcvbuf_size", 43, U32),
        ("net_conf", "rdma_ctrl_sndbuf_size", 44, U32),
        ("set_role_parms", "force", 1, Flag),
        ("resize_parms", "resize_size", 1, U64),
        ("resize_parms", "resize_force", 2, Flag),
        ("resize_parms", "no_resync", 3, Flag),
        ("resize_parms", "al_stripes", 4, U32),
        ("resize_parms", "al_stripe_size", 5, U32),
        ("start_ov_parms", "ov_start_sector", 1, U64),
        ("start_ov_parms", "ov_stop_sector", 2, U64),
        ("new_c_uuid_parms", "clear_bm", 1, Flag),
        ("new_c_uuid_parms", "force_resync", 2, Flag),
        ("timeout_parms", "timeout_type", 1, U32),
        ("disconnect_parms", "force_disconnect", 1, Flag),
        ("detach_parms", "force_detach", 1, Flag),
        ("detach_parms", "intentional_diskless_detach", 2, Flag),
        ("device_conf", "max_bio_size", 1, U32),
        ("device_conf", "intentional_diskless", 2, Flag),
        ("device_conf", "block_size", 3, U32),
        ("device_conf", "discard_granularity", 4, U32),
        ("resource_info", "res_role", 1, U32),
        ("resource_info", "res_susp", 2, Flag),
        ("resource_info", "res_susp_nod", 3, Flag),
        ("resource_info", "res_susp_fen", 4, Flag),
        ("resource_info", "res_susp_quorum", 5, Flag),
        ("resource_info", "res_fail_io", 6, Flag),
        ("device_info", "dev_disk_state", 1, U32),
        ("device_info", "is_intentional_diskless", 2, Flag),
        ("device_info", "dev_has_quorum", 3, Flag),
        ("device_info", "backing_dev_path", 4, String),
        ("device_info", "dev_is_open", 5, Flag),
        ("connection_info", "conn_connection_state", 1, U32),
        ("connection_info", "conn_role", 2, U32),
        ("peer_device_info", "peer_repl_state", 1, U32),
        ("peer_device_info", "peer_disk_state", 2, U32),
        ("peer_device_info", "peer_resync_susp_user", 3, U32),
        ("peer_device_info", "peer_resync_susp_peer", 4, U32),
        ("peer_device_info", "peer_resync_susp_dependency", 5, U32),
        ("peer_device_info", "peer_is_intentional_diskless", 6, Flag),
        ("peer_device_info", "peer_resync_susp_max_parallel", 7, U32),
        ("resource_statistics", "res_stat_write_ordering", 1, U32),
        ("device_statistics", "dev_size", 1, U64),
        ("device_statistics", "dev_read", 2, U64),
        ("device_statistics", "dev_write", 3, U64),
        ("device_statistics", "dev_al_writes", 4, U64),
        ("device_statistics", "dev_bm_writes", 5, U64),
        ("device_statistics", "dev_upper_pending", 6, U32),
        ("device_statistics", "dev_lower_pending", 7, U32),
        ("device_statistics", "dev_upper_blocked", 8, Flag),
        ("device_statistics", "dev_lower_blocked", 9, Flag),
        ("device_statistics", "dev_al_suspended", 10, Flag),
        ("device_statistics", "dev_exposed_data_uuid", 11, U64),
        ("device_statistics", "dev_current_uuid", 12, U64),
        ("device_statistics", "dev_disk_flags", 13, U32),
        ("device_statistics", "history_uuids", 14, Binary),
        ("connection_statistics", "conn_congested", 1, Flag),
        ("connection_statistics", "ap_in_flight", 2, U64),
        ("connection_statistics", "rs_in_flight", 3, U64),
        ("peer_device_statistics", "peer_dev_received", 1, U64),
        ("peer_device_statistics", "peer_dev_sent", 2, U64),
        ("peer_device_statistics", "peer_dev_pending", 3, U32),
        ("peer_device_statistics", "peer_dev_unacked", 4, U32),
        ("peer_device_statistics", "peer_dev_out_of_sync", 5, U64),
        ("peer_device_statistics", "peer_dev_resync_failed", 6, U64),
        ("peer_device_statistics", "peer_dev_bitmap_uuid", 7, U64),
        ("peer_device_statistics", "peer_dev_flags", 9, U32),
        ("peer_device_statistics", "peer_dev_rs_total", 10, U64),
        (
            "peer_device_statistics",
            "peer_dev_ov_start_sector",
            11,
            U64,
        ),
        ("peer_device_statistics", "peer_dev_ov_stop_sector", 12, U64),
        ("peer_device_statistics", "peer_dev_ov_position", 13, U64),
        ("peer_device_statistics", "peer_dev_ov_left", 14, U64),
        ("peer_device_statistics", "peer_dev_ov_skipped", 15, U64),
        ("peer_device_statistics", "peer_dev_rs_same_csum", 16, U64),
        ("peer_device_statistics", "peer_dev_rs_dt_start_ms", 17, U64),
        ("peer_device_statistics", "peer_dev_rs_paused_ms", 18, U64),
        ("peer_device_statistics", "peer_dev_rs_dt0_ms", 19, U64),
        ("peer_device_statistics", "peer_dev_rs_db0_sectors", 20, U64),
        ("peer_device_statistics", "peer_dev_rs_dt1_ms", 21, U64),
        ("peer_device_statistics", "peer_dev_rs_db1_sectors", 22, U64),
        ("peer_device_statistics", "peer_dev_rs_c_sync_rate", 23, U32),
        ("peer_device_statistics", "peer_dev_uuid_flags", 24, U64),
        ("notification_header", "nh_type", 1, U32),
        ("helper_info", "helper_name", 1, String),
        ("helper_info", "helper_status", 2, U32),
        ("invalidate_parms", "sync_from_peer_node_id", 1, S32),
        ("invalidate_parms", "reset_bitmap", 2, Flag),
        ("forget_peer_parms", "forget_peer_node_id", 1, S32),
        ("peer_device_conf", "resync_rate", 1, U32),
        ("peer_device_conf", "c_plan_ahead", 2, U32),
        ("peer_device_conf", "c_delay_target", 3, U32),
        ("peer_device_conf", "c_fill_target", 4, U32),
        ("peer_device_conf", "c_max_rate", 5, U32),
        ("peer_device_conf", "c_min_rate", 6, U32),
        ("peer_device_conf", "bitmap", 7, Flag),
        ("peer_device_conf", "resync_without_replication", 8, Flag),
        ("peer_device_conf", "peer_tiebreaker", 9, Flag),
        ("path_parms", "my_addr", 1, Binary),
        ("path_parms", "peer_addr", 2, Binary),
        ("connect_parms", "tentative", 1, Flag),
        ("connect_parms", "discard_my_data", 2, Flag),
        ("path_info", "path_established", 1, Flag),
        ("rename_resource_parms", "new_resource_name", 1, String),
        ("rename_resource_info", "res_new_name", 1, String),
        ("inval_peer_parms", "p_reset_bitmap", 1, Flag),
        ("suspend_io_parms", "bdev_freeze", 1, Flag),
    ]
};

#[test]
fn members() {
    let mut count = 0;
    for (set, name, nr, ty) in MEMBERS {
        let s = SETS
            .iter()
            .find(|s| s.name == *set)
            .unwrap_or_else(|| panic!("set {set}"));
        let m = s
            .member_by_name(name)
            .unwrap_or_else(|| panic!("{set}.{name} missing"));
        assert_eq!(m.nr, *nr, "{set}.{name}");
        assert_eq!(m.ty, *ty, "{set}.{name}");
        count += 1;
    }
    let total: usize = SETS.iter().map(|s| s.members.len()).sum();
    assert_eq!(total, count, "members in drbd.yaml but not in this table");
    // Spot checks of the per-set constants the module uses.
    assert_eq!(cfg_context::CTX_VOLUME, 1);
    assert_eq!(cfg_context::CTX_RESOURCE_NAME, 2);
    assert_eq!(cfg_context::CTX_PEER_NODE_ID, 6);
    assert_eq!(disk_conf::BACKING_DEV, 1);
    assert_eq!(disk_conf::META_DEV, 2);
    assert_eq!(disk_conf::META_DEV_IDX, 3);
    assert_eq!(res_opts::NODE_ID, 4);
    assert_eq!(set_role_parms::FORCE, 1);
    assert_eq!(notification_header::NH_TYPE, 1);
    assert_eq!(cfg_reply::INFO_TEXT, 1);
    assert_eq!(resource_info::RES_ROLE, 1);
    assert_eq!(device_info::DEV_DISK_STATE, 1);
    assert_eq!(detach_parms::FORCE_DETACH, 1);
}

#[test]
fn member_flags_and_defaults() {
    let be = disk_conf::SET.member(disk_conf::BACKING_DEV).unwrap();
    assert!(be.has(member_flags::REQUIRED) && be.has(member_flags::INVARIANT));
    assert_eq!(be.max_len, 128);
    let node = res_opts::SET.member(res_opts::NODE_ID).unwrap();
    assert!(node.has(member_flags::REQUIRED) && node.has(member_flags::INVARIANT));
    let secret = net_conf::SET.member(net_conf::SHARED_SECRET).unwrap();
    assert!(secret.has(member_flags::SENSITIVE));
    let d = |s: &AttrSet, opt: &str| s.member_by_option(opt).unwrap().default;
    assert_eq!(
        d(&net_conf::SET, "timeout"),
        Some(DefaultValue::Unsigned(60))
    );
    assert_eq!(
        d(&net_conf::SET, "protocol"),
        Some(DefaultValue::Unsigned(3))
    );
    assert_eq!(
        d(&disk_conf::SET, "al-extents"),
        Some(DefaultValue::Unsigned(1237))
    );
    assert_eq!(
        d(&disk_conf::SET, "on-io-error"),
        Some(DefaultValue::Unsigned(2))
    );
    assert_eq!(
        d(&disk_conf::SET, "resync-after"),
        Some(DefaultValue::Signed(-1))
    );
    assert_eq!(
        d(&peer_device_conf::SET, "resync-rate"),
        Some(DefaultValue::Unsigned(250))
    );
    assert_eq!(
        d(&peer_device_conf::SET, "c-max-rate"),
        Some(DefaultValue::Unsigned(102400))
    );
    assert_eq!(
        d(&res_opts::SET, "auto-promote"),
        Some(DefaultValue::Unsigned(1))
    );
    assert_eq!(
        d(&res_opts::SET, "on-no-quorum"),
        Some(DefaultValue::Unsigned(1))
    );
    assert_eq!(
        peer_device_conf::SET
            .member_by_option("resync-rate")
            .unwrap()
            .scale,
        b'k'
    );
    assert_eq!(
        disk_conf::SET.member_by_option("bitmap").unwrap().nr,
        disk_conf::D_BITMAP
    );
}

#[test]
fn enums() {
    assert_eq!(Role::from_u32(1), Some(Role::Primary));
    assert_eq!(Role::Secondary.name(), "Secondary");
    assert_eq!(Role::from_u32(3), None);
    let conn = [
        "StandAlone",
        "Disconnecting",
        "Unconnected",
        "Timeout",
        "BrokenPipe",
        "NetworkFailure",
        "ProtocolError",
        "TearDown",
        "Connecting",
        "Connected",
    ];
    for (i, n) in conn.iter().enumerate() {
        assert_eq!(ConnState::from_u32(i as u32).unwrap().name(), *n);
    }
    let repl = [
        "Off",
        "Established",
        "StartingSyncS",
        "StartingSyncT",
        "WFBitMapS",
        "WFBitMapT",
        "WFSyncUUID",
        "SyncSource",
        "SyncTarget",
        "VerifyS",
        "VerifyT",
        "PausedSyncS",
        "PausedSyncT",
        "Ahead",
        "Behind",
    ];
    for (i, n) in repl.iter().enumerate() {
        assert_eq!(ReplState::from_u32(i as u32 + 9).unwrap().name(), *n);
    }
    assert_eq!(ReplState::from_u32(8), None);
    let disk = [
        "Diskless",
        "Attaching",
        "Detaching",
        "Failed",
        "Negotiating",
        "Inconsistent",
        "Outdated",
        "DUnknown",
        "Consistent",
        "UpToDate",
    ];
    for (i, n) in disk.iter().enumerate() {
        assert_eq!(DiskState::from_u32(i as u32).unwrap().name(), *n);
        assert_eq!(DiskState::from_name(n).unwrap() as u32, i as u32);
    }
    assert_eq!(enums::io_error_p::from_name("detach"), Some(2));
    assert_eq!(enums::io_error_p::from_name("call-local-io-error"), Some(1));
    assert_eq!(enums::fencing::from_name("resource-and-stonith"), Some(2));
    assert_eq!(enums::after_sb_p::name(12), Some("auto-discard"));
    assert_eq!(enums::rr_conflict::from_name("violently"), Some(10));
    assert_eq!(enums::after_sb_1p::from_name("discard-zero-changes"), None);
    assert_eq!(enums::quorum::from_name("majority"), Some(1024));
    assert_eq!(enums::protocol::from_name("C"), Some(3));
    assert_eq!(enums::on_no_data::from_name("suspend-io"), Some(1));
}

#[test]
fn ret_and_state_codes() {
    assert_eq!(ret::NO_ERROR, 101);
    assert_eq!(ret::ERR_LOCAL_ADDR, 102);
    assert_eq!(ret::ERR_OPEN_DISK, 104);
    assert_eq!(ret::ERR_DISK_TOO_SMALL, 111);
    assert_eq!(ret::ERR_MD_IDX_INVALID, 116);
    assert_eq!(ret::ERR_MD_INVALID, 119);
    assert_eq!(ret::ERR_MANDATORY_TAG, 126);
    assert_eq!(ret::ERR_MINOR_INVALID, 127);
    assert_eq!(ret::ERR_NO_DISK, 138);
    assert_eq!(ret::ERR_PERM, 152);
    assert_eq!(ret::ERR_RES_NOT_KNOWN, 158);
    assert_eq!(ret::ERR_RES_IN_USE, 159);
    assert_eq!(ret::ERR_MINOR_CONFIGURED, 160);
    assert_eq!(ret::ERR_MINOR_OR_VOLUME_EXISTS, 161);
    assert_eq!(ret::ERR_INVALID_REQUEST, 162);
    assert_eq!(ret::ERR_MD_UNCLEAN, 165);
    assert_eq!(ret::ERR_INVALID_PEER_NODE_ID, 171);
    assert_eq!(ret::ERR_ALREADY_EXISTS, 174);
    assert_eq!(ret::text(158), "Unknown resource");
    assert_eq!(ret::text(127), "Device minor not allocated");
    assert_eq!(
        ret::text(161),
        "Minor or volume exists already (delete it first)"
    );
    assert_eq!(ret::text(9999), "Unknown... maybe API_VERSION mismatch?");
    assert_eq!(ss::SUCCESS, 1);
    assert_eq!(ss::NOTHING_TO_DO, 2);
    assert_eq!(ss::CW_SUCCESS, 3);
    assert_eq!(ss::CW_NO_NEED, 4);
    assert_eq!(ss::UNKNOWN_ERROR, 0);
    assert_eq!(ss::TWO_PRIMARIES, -1);
    assert_eq!(ss::NO_UP_TO_DATE_DISK, -2);
    assert_eq!(ss::NO_LOCAL_DISK, -4);
    assert_eq!(ss::DEVICE_IN_USE, -12);
    assert_eq!(ss::LOWER_THAN_OUTDATED, -16);
    assert_eq!(ss::NO_QUORUM, -25);
    assert_eq!(ss::text(-12), "Device is held open by someone");
    assert_eq!(ss::text(-2), "Need access to UpToDate data");
    assert_eq!(ss::text(-99), "?");
    assert_eq!(notify::EXISTS, 0);
    assert_eq!(notify::CREATE, 1);
    assert_eq!(notify::CHANGE, 2);
    assert_eq!(notify::DESTROY, 3);
    assert_eq!(notify::CALL, 4);
    assert_eq!(notify::RESPONSE, 5);
    assert_eq!(notify::RENAME, 6);
    assert_eq!(notify::CONTINUES, 0x8000);
    assert_eq!(
        notify::word(notify::CHANGE | notify::CONTINUES),
        Some("change")
    );
}
