//! Per-thread scratch buffers, kept between calls so that the patch matrices of every conv do not
//! allocate (and page-fault) afresh on each step.

use crate::elem::Float;
use std::cell::RefCell;

thread_local! {
    static SLOTS: [RefCell<Vec<u64>>; 2] = const { [RefCell::new(Vec::new()), RefCell::new(Vec::new())] };
}

/// Runs `f` on this thread's scratch slot `slot` (0 or 1) viewed as `len` elements of `T`. The
/// contents are unspecified on entry; callers overwrite what they read. The two slots can be held
/// at the same time. When the slot is already in use on this thread (a nested parallel call that
/// picked up other work while waiting), a fresh buffer is used instead.
pub(crate) fn with_scratch<T: Float, R>(slot: usize, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    SLOTS.with(|slots| {
        let Ok(mut buf) = slots[slot].try_borrow_mut() else {
            return f(&mut vec![T::zero(); len]);
        };
        let words = (len * std::mem::size_of::<T>()).div_ceil(8);
        if buf.len() < words {
            buf.resize(words, 0);
        }
        // SAFETY: the buffer holds at least `len · size_of::<T>()` bytes, u64 storage is aligned
        // for f32 and f64, every bit pattern is a valid f32/f64, and the RefCell borrow keeps the
        // slice exclusive for the duration of `f`.
        let data = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut T, len) };
        f(data)
    })
}
