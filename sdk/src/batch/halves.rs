//! Splitting a column between two partitions by key, with both write positions held in
//! registers. Pushing each item onto the vector of its partition, chosen per item, keeps the
//! vectors' lengths in memory, and each push waits for the length the previous push to that
//! vector stored: about a fifth of the work of a workflow in two partitions went there.

use crate::data::Key;

use super::partition_of;

/// Moves the items of `column` into two vectors, each in the column's order: those whose key
/// (in `keys`, one per item, in the same order) belongs to partition 0 of 2, then those of
/// partition 1. Items past the end of `keys` are dropped (callers pass columns of equal
/// length).
pub(super) fn halves<U>(column: impl IntoIterator<Item = U>, keys: &[Key]) -> [Vec<U>; 2] {
    let mut first: Vec<U> = Vec::with_capacity(keys.len());
    let mut second: Vec<U> = Vec::with_capacity(keys.len());
    let to = [first.as_mut_ptr(), second.as_mut_ptr()];
    let (mut a, mut b) = (0usize, 0usize);
    for (item, key) in column.into_iter().zip(keys) {
        let in_second = partition_of(*key, 2) == 1;
        let at = if in_second { b } else { a };
        let base = to[usize::from(in_second)];
        // SAFETY: `a + b` items were written so far, fewer than `keys.len()`, the capacity of
        // both vectors, so `at < keys.len()`; each position of each vector is written once, in
        // order, and nothing here can panic between a write and the lengths set below.
        unsafe { base.add(at).write(item) };
        a += usize::from(!in_second);
        b += usize::from(in_second);
    }
    // SAFETY: positions `0..a` of `first` and `0..b` of `second` were written above.
    unsafe {
        first.set_len(a);
        second.set_len(b);
    }
    [first, second]
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The halves hold what pushing each item onto its partition's vector gives, with keys
        /// from both ends of the range; every item is dropped once (each holds a count of a
        /// shared `Rc`, which is back to one once the halves are gone: none leaked).
        #[test]
        fn halves_are_the_items_of_each_partition_in_order(
            keys in prop::collection::vec(any::<u64>(), 0..300),
        ) {
            let shared = Rc::new(());
            let keys: Vec<Key> = keys.into_iter().map(Key).collect();
            let values: Vec<(usize, Rc<()>)> =
                (0..keys.len()).map(|i| (i, shared.clone())).collect();
            let mut expected: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
            for (i, k) in keys.iter().enumerate() {
                expected[partition_of(*k, 2)].push(i);
            }
            let got: [Vec<usize>; 2] =
                halves(values, &keys).map(|h| h.into_iter().map(|(i, _)| i).collect());
            prop_assert_eq!(got, expected);
            prop_assert_eq!(Rc::strong_count(&shared), 1);
        }
    }

    #[test]
    fn items_past_the_keys_are_dropped() {
        let shared = Rc::new(());
        let values = vec![
            (1, shared.clone()),
            (2, shared.clone()),
            (3, shared.clone()),
        ];
        let [a, b] = halves(values, &[Key(0), Key(u64::MAX)]);
        assert_eq!((a[0].0, b[0].0, a.len() + b.len()), (1, 2, 2));
        assert_eq!(Rc::strong_count(&shared), 3, "the third item is dropped");
        drop((a, b));
        assert_eq!(Rc::strong_count(&shared), 1);
    }

    #[test]
    fn fewer_items_than_keys_give_what_there_is() {
        let [a, b] = halves(vec![7], &[Key(u64::MAX), Key(0), Key(0)]);
        assert_eq!((a, b), (Vec::<i32>::new(), vec![7]));
    }
}
