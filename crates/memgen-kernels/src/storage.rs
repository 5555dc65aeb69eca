//! Reading Candle CPU storages as slices and wrapping results back into storages.

use crate::elem::Float;
use candle::{CpuStorage, Layout, Result, Storage, Tensor};

/// The contiguous slice of `storage` that `layout` describes; an error for strided layouts (the
/// layers make their inputs contiguous before calling an op).
pub(crate) fn slice<'a, T: Float>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(storage)?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle::bail!("{op}: expected a contiguous input, got strides {:?}", layout.stride()),
    }
}

/// Runs `f` on the contiguous data of a CPU tensor.
pub(crate) fn with_slice<T: Float, R>(t: &Tensor, op: &str, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(slice::<T>(cpu, layout, op)?),
        _ => candle::bail!("{op}: expected a CPU tensor"),
    }
}
