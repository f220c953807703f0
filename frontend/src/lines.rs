//! Line numbers by bytecode offset, filled by the caller from `co_positions()`.

/// Line number of every code unit, indexed by offset; negative where CPython has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineTable(Vec<i32>);

impl LineTable {
    /// Wrap one line number per code unit (negative for "no line", as `co_positions` gives None).
    pub fn new(lines: Vec<i32>) -> Self {
        LineTable(lines)
    }

    /// Line of the code unit at `offset`, or `None` if it has no line or is out of range.
    pub fn line_at(&self, offset: u32) -> Option<u32> {
        let line = *self.0.get(usize::try_from(offset).ok()?)?;
        u32::try_from(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let table = LineTable::new(vec![1, -1, 3, 0]);
        assert_eq!(table.line_at(0), Some(1));
        assert_eq!(table.line_at(1), None);
        assert_eq!(table.line_at(2), Some(3));
        // Line 0 is real: CPython uses it for some synthetic module-level code.
        assert_eq!(table.line_at(3), Some(0));
        assert_eq!(table.line_at(4), None);
        assert_eq!(table.line_at(u32::MAX), None);
    }
}
