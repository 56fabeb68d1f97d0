//! A linear layer whose weight is frozen: its backward pass gives the input's gradient only.
//!
//! candle's `matmul` computes the gradient of both operands, so a LoRA model built from plain
//! matmuls would spend a full backward pass on gradients of frozen weights and throw them
//! away. This custom op multiplies by the weight in the forward pass and by its transpose in
//! the backward pass, and nothing else.

use candle_core::{bail, CpuStorage, CustomOp1, Device, Layout, Result, Shape, Storage, Tensor};

/// `x @ Wᵀ` for a frozen `W` of shape (out, in); `x` is (n, in).
pub(crate) struct Frozen {
    pub(crate) weight: Tensor,
}

/// `g @ W`: the input's gradient of [`Frozen`]; `g` is (n, out). Not differentiated again.
struct FrozenGrad {
    weight: Tensor,
}

/// `x (m, k) @ Wᵀ` (`transpose`) or `x (m, out) @ W`, through BLAS when it is loaded, else
/// candle's matmul.
fn product(storage: &CpuStorage, layout: &Layout, weight: &Tensor, transpose: bool, op: &str) -> Result<(CpuStorage, Shape)> {
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{op}: the input is not contiguous") };
    let x = &storage.as_slice::<f32>()?[start..end];
    let (rows, inner) = layout.shape().dims2()?;
    let (out, input) = weight.dims2()?;
    let n = if transpose { out } else { input };
    let (w_storage, w_layout) = weight.storage_and_layout();
    if let (Storage::Cpu(w_cpu), Some((w_start, w_end))) = (&*w_storage, w_layout.contiguous_offsets()) {
        let w = &w_cpu.as_slice::<f32>()?[w_start..w_end];
        if let Some(y) = crate::blas::matmul(x, w, rows, n, inner, transpose) {
            return Ok((CpuStorage::F32(y), Shape::from((rows, n))));
        }
    }
    drop(w_storage);
    let x = Tensor::from_slice(x, (rows, inner), &Device::Cpu)?;
    let y = if transpose { x.matmul(&weight.t()?)? } else { x.matmul(weight)? };
    let (y_storage, y_layout) = y.storage_and_layout();
    match (&*y_storage, y_layout.contiguous_offsets()) {
        (Storage::Cpu(cpu), Some((0, _))) => Ok((cpu.clone(), y.shape().clone())),
        _ => bail!("{op}: expected a contiguous CPU result"),
    }
}

impl CustomOp1 for Frozen {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        product(storage, layout, &self.weight, true, self.name())
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&FrozenGrad { weight: self.weight.clone() })?))
    }
}

impl CustomOp1 for FrozenGrad {
    fn name(&self) -> &'static str {
        "frozen-linear-grad"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        product(storage, layout, &self.weight, false, self.name())
    }
}

/// `x @ Wᵀ` with no gradient for `W`; `x` of any shape (…, in).
pub(crate) fn linear(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inner = *dims.last().unwrap_or(&0);
    let rows = x.elem_count() / inner.max(1);
    let flat = x.reshape((rows, inner))?.contiguous()?;
    let y = flat.apply_op1(Frozen { weight: weight.clone() })?;
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = weight.dim(0)?;
    }
    y.reshape(out_dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn the_input_gradient_is_the_matmuls_and_the_weight_gets_none() {
        let w = Tensor::new(&[[1f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu).unwrap();
        let x = Var::new(&[[1f32, -1.0, 0.5]], &Device::Cpu).unwrap();
        let y = linear(x.as_tensor(), &w).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), vec![vec![0.5, 2.0]]);
        let reference = x.as_tensor().matmul(&w.t().unwrap()).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let expected = reference.sum_all().unwrap().backward().unwrap();
        assert_eq!(
            grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap(),
            expected.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap()
        );
        assert!(grads.get(&w).is_none());
    }
}
