//! MQTT 3.1.1 / 5 framing, just enough to split a byte stream into packets: the fixed
//! header's type nibble and the variable-length "remaining length" (1 to 4 bytes of 7
//! bits each). Plus the packet id of PUBACKs and QoS 1/2 PUBLISHes.

/// The control packet types the proxy tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    Connect,
    ConnAck,
    Publish,
    PubAck,
    Subscribe,
    SubAck,
    PingReq,
    PingResp,
    Disconnect,
    /// Any other type (PUBREC, PUBREL, PUBCOMP, UNSUBSCRIBE, ...), by its number.
    Other(u8),
}

impl PacketKind {
    fn from_type(t: u8) -> Self {
        match t {
            1 => PacketKind::Connect,
            2 => PacketKind::ConnAck,
            3 => PacketKind::Publish,
            4 => PacketKind::PubAck,
            8 => PacketKind::Subscribe,
            9 => PacketKind::SubAck,
            12 => PacketKind::PingReq,
            13 => PacketKind::PingResp,
            14 => PacketKind::Disconnect,
            other => PacketKind::Other(other),
        }
    }
}

/// One whole packet as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: PacketKind,
    pub bytes: Vec<u8>,
    /// Where the variable header starts in `bytes`.
    body_at: usize,
}

impl Frame {
    /// The packet id of a PUBACK, or of a PUBLISH with QoS 1 or 2.
    pub fn packet_id(&self) -> Option<u16> {
        let body = self.bytes.get(self.body_at..)?;
        match self.kind {
            PacketKind::PubAck => Some(u16::from_be_bytes([*body.first()?, *body.get(1)?])),
            PacketKind::Publish if self.qos() > 0 => {
                let topic_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
                let at = 2 + topic_len;
                Some(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]))
            }
            _ => None,
        }
    }

    /// The QoS bits of a PUBLISH (0 for other packets).
    pub fn qos(&self) -> u8 {
        match self.kind {
            PacketKind::Publish => (self.bytes[0] >> 1) & 0b11,
            _ => 0,
        }
    }

    /// The topic of a PUBLISH.
    pub fn topic(&self) -> Option<String> {
        if self.kind != PacketKind::Publish {
            return None;
        }
        let body = self.bytes.get(self.body_at..)?;
        let len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
        let raw = body.get(2..2 + len)?;
        Some(String::from_utf8_lossy(raw).into_owned())
    }
}

/// Why a byte stream is not MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed remaining length (more than 4 bytes)")]
    RemainingLength,
}

/// Takes the first whole packet off the front of `buf`; `Ok(None)` when more bytes
/// are needed.
pub fn split_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut remaining: usize = 0;
    let mut shift = 0;
    let mut at = 1;
    loop {
        let Some(&byte) = buf.get(at) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << shift;
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if at > 4 {
            return Err(FrameError::RemainingLength);
        }
    }
    let total = at + remaining;
    if buf.len() < total {
        return Ok(None);
    }
    let bytes: Vec<u8> = buf.drain(..total).collect();
    Ok(Some(Frame {
        kind: PacketKind::from_type(first >> 4),
        bytes,
        body_at: at,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn remaining_length(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                return out;
            }
        }
    }

    fn publish(topic: &str, pkid: u16, payload_len: usize) -> Vec<u8> {
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(&pkid.to_be_bytes());
        body.extend(std::iter::repeat_n(b'x', payload_len));
        let mut out = vec![0x32]; // PUBLISH, QoS 1
        out.extend(remaining_length(body.len()));
        out.extend(body);
        out
    }

    #[test]
    fn splits_packets_across_reads_and_reads_packet_ids() {
        let mut wire = publish("edge/v1/d/up/status", 7, 300); // two-byte length
        wire.extend([0x40, 0x02, 0x00, 0x09]); // PUBACK 9
        wire.extend([0xc0, 0x00]); // PINGREQ
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for chunk in wire.chunks(5) {
            buf.extend_from_slice(chunk);
            while let Some(f) = split_frame(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert!(buf.is_empty());
        let kinds: Vec<_> = frames.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [PacketKind::Publish, PacketKind::PubAck, PacketKind::PingReq]
        );
        assert_eq!(frames[0].packet_id(), Some(7));
        assert_eq!(frames[0].qos(), 1);
        assert_eq!(frames[0].topic().as_deref(), Some("edge/v1/d/up/status"));
        assert_eq!(frames[1].packet_id(), Some(9));
        assert_eq!(frames[2].packet_id(), None);
        assert_eq!(frames.concat_bytes(), wire);
    }

    #[test]
    fn refuses_a_five_byte_remaining_length() {
        let mut buf = vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(split_frame(&mut buf), Err(FrameError::RemainingLength));
    }

    trait Concat {
        fn concat_bytes(&self) -> Vec<u8>;
    }

    impl Concat for Vec<Frame> {
        fn concat_bytes(&self) -> Vec<u8> {
            self.iter().flat_map(|f| f.bytes.clone()).collect()
        }
    }
}
