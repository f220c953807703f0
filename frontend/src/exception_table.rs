//! Parsing of CPython 3.11's `co_exceptiontable` (see `Objects/exception_handling_notes.txt`).
//!
//! The table is a flat sequence of entries `(start, length, target, depth << 1 | lasti)`,
//! each field a big-endian varint of 6-bit chunks: bit 6 (0x40) says another chunk follows
//! and bit 7 (0x80) marks the first byte of an entry. Offsets are in code units.
//!
//! CPython binary-searches the table using the 0x80 markers and assumes entries are sorted
//! and disjoint. `dis._parse_exception_table` checks none of that, but a table that breaks
//! those assumptions would make our lookup disagree with the interpreter's, so it is
//! rejected here; compiler output always satisfies them.

use std::fmt;

/// One protected range: an exception raised at an offset in `start..end` jumps to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExceptionEntry {
    /// First covered offset, in code units.
    pub start: u32,
    /// First offset past the covered range (exclusive), in code units.
    pub end: u32,
    /// Handler offset, in code units.
    pub target: u32,
    /// Value stack depth to unwind to before pushing the exception.
    pub depth: u32,
    /// Whether the offset of the raising instruction is pushed before the exception.
    pub lasti: bool,
}

/// Why an exception table could not be parsed; offsets are byte offsets into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionTableError {
    /// The table ends in the middle of an entry.
    Truncated {
        /// Byte offset of the entry that is incomplete.
        byte_offset: usize,
    },
    /// The first byte of an entry lacks the 0x80 start marker.
    MissingEntryStart {
        /// Byte offset of the unmarked byte.
        byte_offset: usize,
    },
    /// A byte inside an entry carries the 0x80 start marker.
    StrayEntryStart {
        /// Byte offset of the marked byte.
        byte_offset: usize,
    },
    /// A field, or `start + length`, exceeds CPython's `int`.
    Overflow {
        /// Byte offset of the entry holding the field.
        byte_offset: usize,
    },
    /// An entry starts before the previous one ends (entries must be sorted and disjoint).
    Unsorted {
        /// Byte offset of the out-of-order entry.
        byte_offset: usize,
    },
}

impl fmt::Display for ExceptionTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExceptionTableError::Truncated { byte_offset } => write!(
                f,
                "exception table entry at byte {byte_offset} is truncated"
            ),
            ExceptionTableError::MissingEntryStart { byte_offset } => write!(
                f,
                "exception table byte {byte_offset} should start an entry but lacks the 0x80 marker"
            ),
            ExceptionTableError::StrayEntryStart { byte_offset } => write!(
                f,
                "exception table byte {byte_offset} has the entry-start marker inside an entry"
            ),
            ExceptionTableError::Overflow { byte_offset } => write!(
                f,
                "exception table entry at byte {byte_offset} has a value above 2**31-1"
            ),
            ExceptionTableError::Unsorted { byte_offset } => write!(
                f,
                "exception table entry at byte {byte_offset} overlaps or precedes the previous entry"
            ),
        }
    }
}

impl std::error::Error for ExceptionTableError {}

const ENTRY_START: u8 = 0x80;
const CONTINUE: u8 = 0x40;
const CHUNK: u8 = 0x3f;
// CPython parses into a C int.
const MAX_VALUE: u32 = i32::MAX as u32;

/// Byte cursor over one table; `entry` is the offset of the entry being read, for errors.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    entry: usize,
}

impl Reader<'_> {
    fn varint(&mut self, first_of_entry: bool) -> Result<u32, ExceptionTableError> {
        let mut value: u32 = 0;
        let mut first = true;
        loop {
            let byte_offset = self.pos;
            let &b = self
                .bytes
                .get(byte_offset)
                .ok_or(ExceptionTableError::Truncated {
                    byte_offset: self.entry,
                })?;
            self.pos += 1;
            let marked = b & ENTRY_START != 0;
            if first && first_of_entry && !marked {
                return Err(ExceptionTableError::MissingEntryStart { byte_offset });
            }
            if !(first && first_of_entry) && marked {
                return Err(ExceptionTableError::StrayEntryStart { byte_offset });
            }
            first = false;
            if value > MAX_VALUE >> 6 {
                return Err(ExceptionTableError::Overflow {
                    byte_offset: self.entry,
                });
            }
            value = (value << 6) | u32::from(b & CHUNK);
            if b & CONTINUE == 0 {
                return Ok(value);
            }
        }
    }
}

/// Parse a 3.11 `co_exceptiontable` into entries with offsets in code units.
pub fn parse_exception_table(bytes: &[u8]) -> Result<Vec<ExceptionEntry>, ExceptionTableError> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        entry: 0,
    };
    let mut entries: Vec<ExceptionEntry> = Vec::new();
    while reader.pos < bytes.len() {
        reader.entry = reader.pos;
        let start = reader.varint(true)?;
        let length = reader.varint(false)?;
        let target = reader.varint(false)?;
        let depth_lasti = reader.varint(false)?;
        let end = start
            .checked_add(length)
            .filter(|&end| end <= MAX_VALUE)
            .ok_or(ExceptionTableError::Overflow {
                byte_offset: reader.entry,
            })?;
        if entries.last().is_some_and(|prev| start < prev.end) {
            return Err(ExceptionTableError::Unsorted {
                byte_offset: reader.entry,
            });
        }
        entries.push(ExceptionEntry {
            start,
            end,
            target,
            depth: depth_lasti >> 1,
            lasti: depth_lasti & 1 != 0,
        });
    }
    Ok(entries)
}

/// The entry covering `offset` (in code units), if any; `entries` must be as parsed
/// (sorted and disjoint), which makes this agree with CPython's own lookup.
pub fn handler_at(entries: &[ExceptionEntry], offset: u32) -> Option<&ExceptionEntry> {
    let after = entries.partition_point(|e| e.start <= offset);
    let candidate = entries.get(after.checked_sub(1)?)?;
    (offset < candidate.end).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encode like CPython's assembler (`assemble_emit_exception_table_item`).
    fn encode_varint(out: &mut Vec<u8>, value: u32, mut marker: u8) {
        let mut shift = 30;
        while shift > 0 {
            if value >= 1 << shift {
                out.push(((value >> shift) & 0x3f) as u8 | CONTINUE | marker);
                marker = 0;
            }
            shift -= 6;
        }
        out.push((value & 0x3f) as u8 | marker);
    }

    fn encode(entries: &[(u32, u32, u32, u32, bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(start, end, target, depth, lasti) in entries {
            encode_varint(&mut out, start, ENTRY_START);
            encode_varint(&mut out, end - start, 0);
            encode_varint(&mut out, target, 0);
            encode_varint(&mut out, depth << 1 | u32::from(lasti), 0);
        }
        out
    }

    #[test]
    fn round_trips_small_and_large_values() {
        let table = [
            (2, 10, 20, 0, false),
            (10, 11, 30, 1, true),
            (64, 4_200, 70_000, 3, true),
            (5_000_000, 300_000_000, 0x3fff_ffff, 12, false),
        ];
        let parsed = parse_exception_table(&encode(&table)).expect("valid table");
        let got: Vec<_> = parsed
            .iter()
            .map(|e| (e.start, e.end, e.target, e.depth, e.lasti))
            .collect();
        assert_eq!(got, table);
    }

    #[test]
    fn known_bytes_from_cpython() {
        // `try: x()` / `except: pass` in a function, as compiled by 3.11.7.
        let parsed = parse_exception_table(&[0x81, 0x0e, 0x11, 0x00, 0x91, 0x02, 0x16, 0x03])
            .expect("valid table");
        let got: Vec<_> = parsed
            .iter()
            .map(|e| (e.start, e.end, e.target, e.depth, e.lasti))
            .collect();
        assert_eq!(got, [(1, 15, 17, 0, false), (17, 19, 22, 1, true)]);
    }

    #[test]
    fn handler_lookup() {
        let entries = parse_exception_table(&encode(&[
            (2, 5, 40, 0, false),
            (5, 9, 50, 1, true),
            (12, 13, 60, 2, false),
        ]))
        .expect("valid table");
        let targets: Vec<_> = (0..15)
            .map(|o| handler_at(&entries, o).map(|e| e.target))
            .collect();
        let n = None;
        let (a, b, c) = (Some(40), Some(50), Some(60));
        assert_eq!(targets, [n, n, a, a, a, b, b, b, b, n, n, n, c, n, n]);
        assert_eq!(handler_at(&[], 0), None);
    }

    #[test]
    fn malformed_tables_are_errors() {
        use ExceptionTableError::*;
        assert_eq!(parse_exception_table(&[]), Ok(vec![]));
        assert_eq!(
            parse_exception_table(&[0x82, 0x06, 0x09]),
            Err(Truncated { byte_offset: 0 })
        );
        assert_eq!(
            parse_exception_table(&[0x82, 0x46]),
            Err(Truncated { byte_offset: 0 })
        );
        assert_eq!(
            parse_exception_table(&[0x02, 0x06, 0x09, 0x00]),
            Err(MissingEntryStart { byte_offset: 0 })
        );
        assert_eq!(
            parse_exception_table(&[0x82, 0x86, 0x09, 0x00]),
            Err(StrayEntryStart { byte_offset: 1 })
        );
        assert_eq!(
            parse_exception_table(&[0xc2, 0x7f, 0x7f, 0x7f, 0x7f, 0x3f, 0, 0, 0]),
            Err(Overflow { byte_offset: 0 })
        );
        // i32::MAX itself still fits CPython's int.
        let max = parse_exception_table(&[0xc1, 0x7f, 0x7f, 0x7f, 0x7f, 0x3f, 0, 0, 0])
            .expect("i32::MAX is a valid start");
        assert_eq!(max[0].start, i32::MAX as u32);
        // start + length above i32::MAX.
        let mut big = Vec::new();
        encode_varint(&mut big, 0x7fff_0000, ENTRY_START);
        encode_varint(&mut big, 0x0010_0000, 0);
        big.extend([0, 0]);
        assert_eq!(
            parse_exception_table(&big),
            Err(Overflow { byte_offset: 0 })
        );
        let overlapping = encode(&[(2, 6, 0, 0, false), (5, 8, 0, 0, false)]);
        assert_eq!(
            parse_exception_table(&overlapping),
            Err(Unsorted { byte_offset: 4 })
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Ok(entries) = parse_exception_table(&bytes) {
                for e in &entries {
                    assert!(e.start <= e.end);
                    let _ = handler_at(&entries, e.start);
                }
            }
        }
        assert!(ExceptionTableError::Truncated { byte_offset: 3 }
            .to_string()
            .contains("byte 3"));
    }
}
