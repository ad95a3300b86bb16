//! SPDY/3 name/value header blocks: the uncompressed layout (count, then length-prefixed
//! names and NUL-separated values) and its zlib compression with the SPDY/3 dictionary,
//! one stateful context per direction per connection.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::spdy_dictionary::SPDY3_DICTIONARY;

/// Default bound on a decompressed header block (zip-bomb guard).
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Ordered header names (lowercase, as SPDY/3 requires on the wire) with their values.
/// Several values of one name travel NUL-separated in one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    entries: Vec<(String, String)>,
}

/// Why a header block could not be encoded, compressed or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("header block ends inside an entry")]
    Truncated,
    #[error("{0} trailing bytes after the last header entry")]
    TrailingBytes(usize),
    #[error("header name or value is not UTF-8")]
    NotUtf8,
    #[error("header name {0:?} is empty or not lowercase")]
    InvalidName(String),
    #[error("header name {0:?} appears twice")]
    DuplicateName(String),
    #[error("decompressed header block exceeds {max} bytes")]
    TooLarge { max: usize },
    #[error("header block is not valid zlib data: {0}")]
    Corrupt(String),
    #[error("header block does not end on a zlib flush boundary")]
    Incomplete,
    #[error("zlib compression failed: {0}")]
    Compress(String),
}

impl HeaderBlock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value under `name` (lowercased); a second value for the same name is
    /// appended NUL-separated, as SPDY carries multi-valued headers.
    pub fn add(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push('\0');
                existing.push_str(value);
            }
            None => self.entries.push((name, value.to_owned())),
        }
    }

    /// Builder form of [`HeaderBlock::add`].
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.add(name, value);
        self
    }

    /// The first value of `name` (case-insensitive), like Go's `http.Header.Get`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every value of `name` (case-insensitive).
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(move |(n, _)| *n == name)
            .flat_map(|(_, v)| v.split('\0'))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The uncompressed wire layout.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for (name, value) in &self.entries {
            for part in [name.as_bytes(), value.as_bytes()] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    /// Parses the uncompressed wire layout. Names must be non-empty, lowercase and
    /// unique (SPDY/3 section 2.6.10).
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let mut rest = bytes;
        let count = take_u32(&mut rest)? as usize;
        // Every entry needs at least 8 bytes: never trust `count` for allocation.
        if count > rest.len() / 8 {
            return Err(HeaderError::Truncated);
        }
        let mut block = HeaderBlock {
            entries: Vec::with_capacity(count),
        };
        for _ in 0..count {
            let name = take_string(&mut rest)?;
            let value = take_string(&mut rest)?;
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(HeaderError::InvalidName(name));
            }
            if block.entries.iter().any(|(n, _)| *n == name) {
                return Err(HeaderError::DuplicateName(name));
            }
            block.entries.push((name, value));
        }
        if !rest.is_empty() {
            return Err(HeaderError::TrailingBytes(rest.len()));
        }
        Ok(block)
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, HeaderError> {
    let (head, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(HeaderError::Truncated)?;
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(rest: &mut &[u8]) -> Result<String, HeaderError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(HeaderError::Truncated);
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(bytes.to_vec()).map_err(|_| HeaderError::NotUtf8)
}

/// Compresses outgoing header blocks. One per connection for the sending direction:
/// every block is a sync-flushed continuation of one zlib stream.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor").finish_non_exhaustive()
    }
}

impl HeaderCompressor {
    pub fn new() -> Result<Self, HeaderError> {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(SPDY3_DICTIONARY)
            .map_err(|e| HeaderError::Compress(e.to_string()))?;
        Ok(Self { zlib })
    }

    /// The compressed bytes of `block`, ending on a sync flush so the peer can decode
    /// it without the blocks that follow.
    pub fn compress(&mut self, block: &HeaderBlock) -> Result<Vec<u8>, HeaderError> {
        let input = block.encode();
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = (self.zlib.total_in(), self.zlib.total_out());
            self.zlib
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Compress(e.to_string()))?;
            let all_in = (self.zlib.total_in() - start) as usize == input.len();
            // Room left after the call means the flush completed.
            if all_in && out.len() < out.capacity() {
                return Ok(out);
            }
            if (self.zlib.total_in(), self.zlib.total_out()) == before {
                return Err(HeaderError::Compress("zlib made no progress".into()));
            }
        }
    }
}

/// Decompresses incoming header blocks. One per connection for the receiving direction;
/// every block must be fed in order, even those of refused streams.
pub struct HeaderDecompressor {
    zlib: Decompress,
    max_block: usize,
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor")
            .field("max_block", &self.max_block)
            .finish_non_exhaustive()
    }
}

impl HeaderDecompressor {
    /// `max_block`: largest accepted decompressed block.
    pub fn new(max_block: usize) -> Self {
        Self {
            zlib: Decompress::new(true),
            max_block,
        }
    }

    /// Decompresses and parses one header block.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<HeaderBlock, HeaderError> {
        let raw = self.inflate(compressed)?;
        HeaderBlock::decode(&raw)
    }

    fn inflate(&mut self, compressed: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let too_large = HeaderError::TooLarge {
            max: self.max_block,
        };
        let start = self.zlib.total_in();
        let mut out: Vec<u8> = Vec::new();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            let room = (self.max_block + 1)
                .saturating_sub(out.len())
                .min(16 * 1024);
            if room == 0 {
                return Err(too_large);
            }
            // Never let zlib write more than max_block + 1 bytes in total.
            let limit = out.len() + room;
            let (before_in, before_out) = (self.zlib.total_in(), self.zlib.total_out());
            let result =
                decompress_bounded(&mut self.zlib, &compressed[consumed..], &mut out, limit);
            match result {
                Ok(Status::StreamEnd) => {
                    return Err(HeaderError::Corrupt("zlib stream ended".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib
                        .set_dictionary(SPDY3_DICTIONARY)
                        .map_err(|e| HeaderError::Corrupt(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(HeaderError::Corrupt(e.to_string())),
            }
            if out.len() > self.max_block {
                return Err(too_large);
            }
            let all_in = (self.zlib.total_in() - start) as usize == compressed.len();
            if all_in && out.len() < limit {
                return Ok(out);
            }
            if self.zlib.total_in() == before_in && self.zlib.total_out() == before_out {
                return Err(HeaderError::Incomplete);
            }
        }
    }
}

/// Runs one inflate call that writes at most up to `limit` total bytes in `out`.
fn decompress_bounded(
    zlib: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<Status, flate2::DecompressError> {
    let len = out.len();
    out.resize(limit, 0);
    let before = zlib.total_out();
    let result = zlib.decompress(input, &mut out[len..], FlushDecompress::Sync);
    let written = (zlib.total_out() - before) as usize;
    out.truncate(len + written);
    result
}

#[cfg(test)]
mod tests;
