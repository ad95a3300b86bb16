use flate2::{Compress, Compression, FlushCompress};

use super::*;

fn sample() -> HeaderBlock {
    HeaderBlock::new()
        .with("streamType", "stdout")
        .with("x-multi", "a")
        .with("X-Multi", "b")
}

#[test]
fn names_are_lowercased_and_multi_values_nul_joined() {
    let block = sample();
    assert_eq!(block.get("STREAMTYPE"), Some("stdout"));
    assert_eq!(block.get_all("x-multi").collect::<Vec<_>>(), ["a", "b"]);
    let raw = block.encode();
    assert_eq!(&raw[..4], &[0, 0, 0, 2]);
    assert_eq!(HeaderBlock::decode(&raw).unwrap(), block);
}

#[test]
fn uncompressed_block_errors_are_typed() {
    assert_eq!(HeaderBlock::decode(&[0, 0]), Err(HeaderError::Truncated));
    // A huge count in a tiny block: rejected without allocating for it.
    assert_eq!(
        HeaderBlock::decode(&[0xff, 0xff, 0xff, 0xff, 0, 0]),
        Err(HeaderError::Truncated)
    );
    let upper = [&[0, 0, 0, 1][..], &[0, 0, 0, 1], b"A", &[0, 0, 0, 0]].concat();
    assert_eq!(
        HeaderBlock::decode(&upper),
        Err(HeaderError::InvalidName("A".into()))
    );
    let twice = [
        &[0, 0, 0, 2][..],
        &[0, 0, 0, 1],
        b"a",
        &[0, 0, 0, 0],
        &[0, 0, 0, 1],
        b"a",
        &[0, 0, 0, 0],
    ]
    .concat();
    assert_eq!(
        HeaderBlock::decode(&twice),
        Err(HeaderError::DuplicateName("a".into()))
    );
    let trailing = [&[0, 0, 0, 0][..], &[1]].concat();
    assert_eq!(
        HeaderBlock::decode(&trailing),
        Err(HeaderError::TrailingBytes(1))
    );
}

#[test]
fn compression_context_is_stateful_across_frames() {
    let mut compressor = HeaderCompressor::new().unwrap();
    let mut decompressor = HeaderDecompressor::new(DEFAULT_MAX_HEADER_BLOCK);
    let first = compressor.compress(&sample()).unwrap();
    let second = compressor.compress(&sample()).unwrap();
    // The second block refers back to the first: shorter, and only decodable in order.
    assert!(
        second.len() < first.len(),
        "{} < {}",
        second.len(),
        first.len()
    );
    assert_eq!(decompressor.decompress(&first).unwrap(), sample());
    assert_eq!(decompressor.decompress(&second).unwrap(), sample());
    let mut fresh = HeaderDecompressor::new(DEFAULT_MAX_HEADER_BLOCK);
    assert!(fresh.decompress(&second).is_err());
}

#[test]
fn first_block_uses_the_spdy3_dictionary() {
    let mut compressor = HeaderCompressor::new().unwrap();
    let first = compressor.compress(&sample()).unwrap();
    // zlib header with FDICT set, followed by the dictionary's adler32.
    let dictionary = crate::stream_protocols::spdy_dictionary::SPDY3_DICTIONARY;
    let (mut a, mut b) = (1u32, 0u32);
    for byte in dictionary {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    assert_eq!(first[0], 0x78);
    assert_ne!(first[1] & 0x20, 0);
    assert_eq!(&first[2..6], &((b << 16) | a).to_be_bytes());
    assert_eq!(dictionary.len(), 1423);
}

#[test]
fn decompression_is_bounded_against_zip_bombs() {
    // 1 MiB of zeros as a header value compresses to about a kilobyte.
    let bomb = HeaderBlock::new().with("x", &"\0".repeat(1 << 20).replace('\0', "a"));
    let compressed = HeaderCompressor::new().unwrap().compress(&bomb).unwrap();
    assert!(compressed.len() < 8 * 1024);
    let mut decompressor = HeaderDecompressor::new(64 * 1024);
    assert_eq!(
        decompressor.decompress(&compressed),
        Err(HeaderError::TooLarge { max: 64 * 1024 })
    );
}

#[test]
fn garbage_and_unflushed_input_are_errors() {
    let mut decompressor = HeaderDecompressor::new(DEFAULT_MAX_HEADER_BLOCK);
    assert!(matches!(
        decompressor.decompress(&[0x12, 0x34, 0x56]),
        Err(HeaderError::Corrupt(_))
    ));
    // A dictionary-primed block cut in the middle.
    let mut zlib = Compress::new(Compression::default(), true);
    zlib.set_dictionary(crate::stream_protocols::spdy_dictionary::SPDY3_DICTIONARY)
        .unwrap();
    let mut out = Vec::with_capacity(1024);
    zlib.compress_vec(&sample().encode(), &mut out, FlushCompress::Sync)
        .unwrap();
    let cut = &out[..out.len() / 2];
    let mut decompressor = HeaderDecompressor::new(DEFAULT_MAX_HEADER_BLOCK);
    assert!(decompressor.decompress(cut).is_err());
}

#[test]
fn blocks_under_the_limit_decode_across_several_inflate_rounds() {
    let value: String = (0..40_000u32)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let block = HeaderBlock::new().with("x-big", &value).with("y", "z");
    let mut compressor = HeaderCompressor::new().unwrap();
    let mut decompressor = HeaderDecompressor::new(DEFAULT_MAX_HEADER_BLOCK);
    for _ in 0..3 {
        let compressed = compressor.compress(&block).unwrap();
        assert_eq!(decompressor.decompress(&compressed).unwrap(), block);
    }
}
