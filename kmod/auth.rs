//! CRAM-HMAC peer authentication, run by the link thread right after the feature exchange
//! when `cram-hmac-alg` is set: both sides send a random challenge, answer the peer's with
//! `HMAC_secret(challenge ‖ be32(own node id))` and check the peer's answer to theirs. Only a
//! peer that knows the shared secret gets a connection; the pure rules are in
//! `proto::wire_auth`, the keyed hash in `sys::hmac`.

use crate::connection::AuthConf;
use crate::packet;
use crate::proto::wire::{self, HeaderKind, VOLUME_CONNECTION};
use crate::proto::wire_auth::{self, AuthError, CHALLENGE_LEN, MAX_DIGEST_LEN, MAX_RESPONSE_INPUT};
use crate::sys::hmac::{self, Hmac};
use crate::sys::socket::Socket;
use kernel::prelude::*;

/// How authentication ended when it did not succeed.
pub(crate) enum Refused {
    /// The peer does not know the secret (or misbehaved): do not retry, as DRBD does.
    Denied(AuthError),
    /// The stream broke or the peer sent something else: try the connection again.
    Retry,
}

impl From<Error> for Refused {
    fn from(_: Error) -> Self {
        Refused::Retry
    }
}

impl From<kernel::alloc::AllocError> for Refused {
    fn from(_: kernel::alloc::AllocError) -> Self {
        Refused::Retry
    }
}

/// Authenticates the peer on the data stream of a handshaken link (agreed `version`).
pub(crate) fn authenticate(
    data: &Socket,
    version: u32,
    conf: &AuthConf,
    my_id: u32,
    peer_id: u32,
) -> Result<(), Refused> {
    let kind = HeaderKind::for_version(version);
    let mut hmac = Hmac::new(conf.alg())?;
    hmac.set_key(conf.secret())?;

    let mut mine = [0u8; CHALLENGE_LEN];
    hmac::random_bytes(&mut mine);
    packet::send(
        data,
        kind,
        wire::P_AUTH_CHALLENGE,
        VOLUME_CONNECTION,
        &[&mine],
    )?;

    let payload = expect(
        data,
        kind,
        wire::P_AUTH_CHALLENGE,
        wire_auth::MAX_PEER_CHALLENGE_LEN,
    )?;
    let theirs = wire_auth::peer_challenge(&payload, &mine).map_err(Refused::Denied)?;

    let mut input = [0u8; MAX_RESPONSE_INPUT];
    let mut digest = [0u8; MAX_DIGEST_LEN];
    let n =
        wire_auth::response_input(theirs, my_id, version, &mut input).map_err(Refused::Denied)?;
    let d = hmac.digest(input.get(..n).ok_or(EINVAL)?, &mut digest)?;
    packet::send(
        data,
        kind,
        wire::P_AUTH_RESPONSE,
        VOLUME_CONNECTION,
        &[digest.get(..d).ok_or(EINVAL)?],
    )?;

    let response = expect(data, kind, wire::P_AUTH_RESPONSE, MAX_DIGEST_LEN)?;
    let n =
        wire_auth::response_input(&mine, peer_id, version, &mut input).map_err(Refused::Denied)?;
    let d = hmac.digest(input.get(..n).ok_or(EINVAL)?, &mut digest)?;
    wire_auth::check_response(&response, digest.get(..d).ok_or(EINVAL)?)
        .map_err(Refused::Denied)?;
    Ok(())
}

/// Receives the next packet, which must be `cmd` with at most `max` payload bytes.
fn expect(data: &Socket, kind: HeaderKind, cmd: u16, max: usize) -> Result<KVec<u8>, Refused> {
    let h = packet::recv_header(data, kind)?;
    if h.cmd != cmd {
        pr_warn!(
            "expected authentication packet {:#x}, received {:#x}\n",
            cmd,
            h.cmd
        );
        return Err(Refused::Retry);
    }
    if h.length as usize > max {
        // A length only a confused or hostile peer sends: refuse without reading it.
        return Err(Refused::Denied(if cmd == wire::P_AUTH_CHALLENGE {
            AuthError::BadChallengeLength
        } else {
            AuthError::BadResponseLength
        }));
    }
    Ok(packet::recv_payload(data, h.length, max as u32)?)
}
