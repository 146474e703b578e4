//! CRAM-HMAC peer authentication on the data stream (`P_AUTH_CHALLENGE`, `P_AUTH_RESPONSE`).
//!
//! After the feature exchange, when `cram-hmac-alg` is configured, each side sends 64 random
//! bytes; the peer answers with `HMAC_secret(challenge ‖ be32(its node id))` (the node id only
//! for protocol >= 110, so a response cannot be replayed by a node posing as another one).
//! This module holds the pure parts: payload checks, the HMAC input, the shash name and a
//! comparison that does not leak where a response differs. The keyed hash itself is the
//! kernel's (`kmod/sys/hmac.rs`).

use super::wire::WireError;

/// Bytes of a challenge this side sends.
pub const CHALLENGE_LEN: usize = 64;
/// Longest challenge accepted from a peer (a peer may send a longer one than ours).
pub const MAX_PEER_CHALLENGE_LEN: usize = 2 * CHALLENGE_LEN;
/// Longest shared secret (bytes).
pub const MAX_SECRET_LEN: usize = 64;
/// Longest digest of any hash usable here (sha512).
pub const MAX_DIGEST_LEN: usize = 64;
/// Room for the HMAC input: the longest peer challenge and a node id.
pub const MAX_RESPONSE_INPUT: usize = MAX_PEER_CHALLENGE_LEN + 4;
/// First protocol version whose responses cover the responder's node id.
pub const NODE_ID_IN_RESPONSE_VERSION: u32 = 110;

/// Why an authentication step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// A challenge payload shorter than ours or longer than we accept.
    BadChallengeLength,
    /// The peer sent our own challenge back (a reflection attack or a loop to ourselves).
    Reflected,
    /// A response whose length is not the digest size.
    BadResponseLength,
    /// The response does not match the shared secret.
    Mismatch,
}

impl AuthError {
    /// Text for the kernel log.
    pub fn text(self) -> &'static str {
        match self {
            AuthError::BadChallengeLength => "challenge has an invalid length",
            AuthError::Reflected => "peer presented the same challenge",
            AuthError::BadResponseLength => "response has an invalid length",
            AuthError::Mismatch => "response does not match the shared secret",
        }
    }
}

impl From<AuthError> for WireError {
    fn from(e: AuthError) -> WireError {
        match e {
            AuthError::BadChallengeLength | AuthError::BadResponseLength => WireError::BadLength,
            AuthError::Reflected | AuthError::Mismatch => WireError::BadValue,
        }
    }
}

/// Checks the peer's challenge payload against ours and returns it.
pub fn peer_challenge<'a>(
    payload: &'a [u8],
    mine: &[u8; CHALLENGE_LEN],
) -> Result<&'a [u8], AuthError> {
    if !(CHALLENGE_LEN..=MAX_PEER_CHALLENGE_LEN).contains(&payload.len()) {
        return Err(AuthError::BadChallengeLength);
    }
    if payload.get(..CHALLENGE_LEN) == Some(&mine[..]) {
        return Err(AuthError::Reflected);
    }
    Ok(payload)
}

/// Writes the HMAC input for answering `challenge` as node `responder` into `out`: the
/// challenge, then (protocol >= 110) the responder's node id big-endian. Returns its length.
pub fn response_input(
    challenge: &[u8],
    responder: u32,
    version: u32,
    out: &mut [u8; MAX_RESPONSE_INPUT],
) -> Result<usize, AuthError> {
    let n = challenge.len();
    let dst = out.get_mut(..n).ok_or(AuthError::BadChallengeLength)?;
    dst.copy_from_slice(challenge);
    if version < NODE_ID_IN_RESPONSE_VERSION {
        return Ok(n);
    }
    let id = out.get_mut(n..n + 4).ok_or(AuthError::BadChallengeLength)?;
    id.copy_from_slice(&responder.to_be_bytes());
    Ok(n + 4)
}

/// Compares the peer's response with the expected digest, in time independent of where they
/// differ.
pub fn check_response(response: &[u8], expected: &[u8]) -> Result<(), AuthError> {
    if response.len() != expected.len() || expected.is_empty() {
        return Err(AuthError::BadResponseLength);
    }
    let diff = response
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(AuthError::Mismatch)
    }
}

/// Longest shash name built by [`shash_name`] (with its NUL).
pub const MAX_SHASH_NAME: usize = 64 + 7;

/// The kernel crypto name of the keyed hash for `alg` (`sha256` → `hmac(sha256)`), NUL
/// terminated, or `None` for an empty or unusable name.
pub fn shash_name(alg: &[u8], out: &mut [u8; MAX_SHASH_NAME]) -> Option<usize> {
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'(' | b')');
    if alg.is_empty() || alg.len() + 7 > MAX_SHASH_NAME || !alg.iter().all(ok) {
        return None;
    }
    let n = alg.len();
    out.get_mut(..5)?.copy_from_slice(b"hmac(");
    out.get_mut(5..5 + n)?.copy_from_slice(alg);
    *out.get_mut(5 + n)? = b')';
    *out.get_mut(6 + n)? = 0;
    Some(n + 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_length_and_reflection() {
        let mine = [7u8; CHALLENGE_LEN];
        let other = [8u8; CHALLENGE_LEN];
        assert_eq!(peer_challenge(&other, &mine), Ok(&other[..]));
        assert_eq!(
            peer_challenge(&other[..63], &mine),
            Err(AuthError::BadChallengeLength)
        );
        let long = [9u8; MAX_PEER_CHALLENGE_LEN + 1];
        assert_eq!(
            peer_challenge(&long, &mine),
            Err(AuthError::BadChallengeLength)
        );
        assert_eq!(
            peer_challenge(&long[..MAX_PEER_CHALLENGE_LEN], &mine).map(<[u8]>::len),
            Ok(MAX_PEER_CHALLENGE_LEN)
        );
        assert_eq!(peer_challenge(&mine, &mine), Err(AuthError::Reflected));
        // Only the first 64 bytes count as "ours".
        let mut longer = [7u8; 80];
        longer[70] = 1;
        assert_eq!(peer_challenge(&longer, &mine), Err(AuthError::Reflected));
        assert_eq!(
            peer_challenge(&[], &mine),
            Err(AuthError::BadChallengeLength)
        );
    }

    #[test]
    fn response_input_appends_node_id_from_110() {
        let ch = [0xabu8; CHALLENGE_LEN];
        let mut out = [0u8; MAX_RESPONSE_INPUT];
        let n = response_input(&ch, 0x0102_0304, 118, &mut out).expect("fits");
        assert_eq!(n, 68);
        assert_eq!(&out[..64], &ch[..]);
        assert_eq!(&out[64..68], &[1, 2, 3, 4]);
        assert_eq!(response_input(&ch, 5, 100, &mut out), Ok(64));
        let max = [1u8; MAX_PEER_CHALLENGE_LEN];
        assert_eq!(
            response_input(&max, 5, 118, &mut out),
            Ok(MAX_RESPONSE_INPUT)
        );
        assert_eq!(&out[MAX_PEER_CHALLENGE_LEN..], &[0, 0, 0, 5]);
        let too_long = [1u8; MAX_RESPONSE_INPUT];
        assert_eq!(
            response_input(&too_long, 5, 118, &mut out),
            Err(AuthError::BadChallengeLength)
        );
    }

    #[test]
    fn response_comparison() {
        let d = [3u8; 32];
        assert_eq!(check_response(&d, &d), Ok(()));
        let mut e = d;
        e[31] ^= 1;
        assert_eq!(check_response(&e, &d), Err(AuthError::Mismatch));
        assert_eq!(
            check_response(&d[..20], &d),
            Err(AuthError::BadResponseLength)
        );
        assert_eq!(check_response(&[], &[]), Err(AuthError::BadResponseLength));
        assert_eq!(WireError::from(AuthError::Mismatch), WireError::BadValue);
    }

    #[test]
    fn shash_names() {
        let mut out = [0u8; MAX_SHASH_NAME];
        let n = shash_name(b"sha256", &mut out).expect("valid");
        assert_eq!(&out[..n], b"hmac(sha256)\0");
        assert_eq!(shash_name(b"", &mut out), None);
        assert_eq!(shash_name(b"sha 1", &mut out), None);
        assert_eq!(shash_name(b"a\0b", &mut out), None);
        let long = [b'a'; 64];
        let n = shash_name(&long, &mut out).expect("64 chars fit");
        assert_eq!(n, MAX_SHASH_NAME);
        assert_eq!(shash_name(&[b'a'; 65], &mut out), None);
    }
}
