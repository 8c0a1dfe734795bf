//! Checksums of the stored feature maps: HDF5's own Fletcher-32 filter, after the compressor, on
//! every chunk (one sample). HDF5 checks it on every read, h5py included, so damaged bytes are an
//! error instead of silently different maps; incept also checks it on the raw chunk (without
//! decompressing) where it copies chunks as stored and in `incept verify`.

use hdf5::filters::Filter;

#[cfg(test)]
thread_local! {
    /// Tests only: write `features` as incept did before checksums (this thread's writes).
    pub(crate) static WITHOUT_CHECKSUMS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Benchmarks only ([`benchmark_without_checksums`]): this process writes no checksums.
static BENCHMARK_WITHOUT_CHECKSUMS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// For benchmarks that measure what checksums cost (`just bench-checksums`, `bench-extract`):
/// from now on this process writes `features` without them, as incept did before. Nothing else
/// calls it.
#[doc(hidden)]
pub fn benchmark_without_checksums(without: bool) {
    BENCHMARK_WITHOUT_CHECKSUMS.store(without, std::sync::atomic::Ordering::SeqCst);
}

/// Whether new `features` datasets get the checksum filter: always, except in benchmarks and in
/// tests that make a piece as earlier versions wrote it.
pub(crate) fn write_checksums() -> bool {
    #[cfg(test)]
    if WITHOUT_CHECKSUMS.with(std::cell::Cell::get) {
        return false;
    }
    !BENCHMARK_WITHOUT_CHECKSUMS.load(std::sync::atomic::Ordering::SeqCst)
}

/// Bytes the Fletcher-32 filter appends to each chunk.
pub(crate) const CHECKSUM_BYTES: usize = 4;

/// The position of the Fletcher-32 filter in a `features` dataset's pipeline, if it has one (pieces
/// written before checksums do not): the bit of a chunk's filter mask that says the filter was
/// skipped for that chunk.
pub(crate) fn checksum_filter_position(dataset: &hdf5::Dataset) -> Option<usize> {
    dataset.filters().iter().position(|filter| matches!(filter, Filter::Fletcher32))
}

/// HDF5's Fletcher-32 (`H5_checksum_fletcher32`): big-endian 16-bit words, sums folded every
/// 360 words, a trailing odd byte as the high byte of a last word.
pub(crate) fn fletcher32(data: &[u8]) -> u32 {
    let (mut sum1, mut sum2) = (0u32, 0u32);
    let fold = |sum: u32| (sum & 0xffff) + (sum >> 16);
    let words = data.chunks_exact(2);
    let odd = words.remainder().first().copied();
    let words: Vec<u32> = words.map(|w| (u32::from(w[0]) << 8) | u32::from(w[1])).collect();
    for block in words.chunks(360) {
        for &word in block {
            sum1 += word;
            sum2 += sum1;
        }
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    if let Some(byte) = odd {
        sum1 += u32::from(byte) << 8;
        sum2 += sum1;
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    sum1 = fold(sum1);
    sum2 = fold(sum2);
    (sum2 << 16) | sum1
}

/// Whether a chunk as stored (compressed bytes, then the 4-byte checksum HDF5 appended) is whole.
/// HDF5 stores the checksum little-endian; HDF5 before 1.6.1 wrote it with its bytes in the
/// other order, which HDF5 still accepts, and so does this.
pub(crate) fn chunk_is_whole(stored: &[u8]) -> bool {
    let Some(split) = stored.len().checked_sub(CHECKSUM_BYTES) else {
        return false;
    };
    let (data, tail) = stored.split_at(split);
    let recorded = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = fletcher32(data);
    let reversed = ((computed & 0x0000_00ff) << 24)
        | ((computed & 0x0000_ff00) << 8)
        | ((computed & 0x00ff_0000) >> 8)
        | ((computed & 0xff00_0000) >> 24);
    recorded == computed || recorded == reversed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fletcher32_matches_known_values() {
        // HDF5 reads big-endian words, so its values are the textbook ones (little-endian
        // words: "abcde" → 0xF04FC729) with the bytes of each word swapped. That it agrees with
        // the HDF5 library itself is checked on chunks HDF5 wrote (`tests.rs`).
        assert_eq!(fletcher32(b"abcde"), 0x4FF0_29C7);
        assert_eq!(fletcher32(b"abcdef"), 0x5056_2A2D);
        assert_eq!(fletcher32(b"abcdefgh"), 0xE1EB_9195);
        // Long inputs exercise the folding every 360 words.
        let long: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut damaged = long.clone();
        damaged[54_321] ^= 0x10;
        assert_ne!(fletcher32(&long), fletcher32(&damaged));
    }

    #[test]
    fn a_flipped_byte_breaks_a_chunk() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
        let mut stored = data.clone();
        stored.extend_from_slice(&fletcher32(&data).to_le_bytes());
        assert!(chunk_is_whole(&stored));
        for position in [0, 500, 999, 1001] {
            let mut damaged = stored.clone();
            damaged[position] ^= 0x01;
            assert!(!chunk_is_whole(&damaged), "flip at {position} not seen");
        }
        assert!(!chunk_is_whole(&[1, 2, 3]));
    }
}
