//! Rendezvous (highest random weight) hashing: which live replica owns a device.
//!
//! Every replica scores every (replica, device) pair with the same stable hash and the
//! device goes to the replica with the highest score. When a replica leaves, only its
//! own devices move (each to its runner-up); when one joins, it takes exactly the devices
//! it now scores highest on, from whoever had them. The hash is FNV-1a followed by the
//! SplitMix64 finalizer, fixed here so that replicas of different builds agree.

use edge_protocol::DeviceId;

/// The score of `device` on `member`: higher wins. Stable across processes and builds.
pub fn weight(member: &str, device: &DeviceId) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    // a separator that cannot occur in either name keeps ("ab","c") apart from ("a","bc")
    for b in member
        .as_bytes()
        .iter()
        .chain(&[0u8])
        .chain(device.as_str().as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // SplitMix64 finalizer: spreads FNV's weak low bits over the whole word
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The member that owns `device` among `members` (none when there are no members). Ties
/// (practically impossible) go to the smaller name, so every replica decides the same.
pub fn owner<'a, I>(device: &DeviceId, members: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    members
        .into_iter()
        .map(|m| (weight(m, device), m))
        .max_by(|(wa, ma), (wb, mb)| wa.cmp(wb).then_with(|| mb.cmp(ma)))
        .map(|(_, m)| m)
}

#[cfg(test)]
mod tests;
