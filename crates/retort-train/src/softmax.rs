//! Softmax over the last dimension and the log-probability of target tokens, fused and
//! parallel, with backward passes.
//!
//! candle's composite `softmax` and `log_softmax` make five passes (max, subtract, exp, sum,
//! divide), each on one thread and each allocating; its fused `softmax_last_dim` has no
//! backward pass. Attention's softmax here is one parallel pass over the rows, its backward
//! `y ⊙ (g − Σ g ⊙ y)` in tensor ops. The loss needs only the target token's log-probability
//! of each row of logits (49k wide): `target_logprobs` computes `x_t − logsumexp(x)` per row,
//! and its backward `g · (onehot(t) − softmax(x))`, each in one parallel pass.

use candle_core::{bail, CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor, D};

use crate::fused::{data, with_data};
use crate::par::for_chunks;

struct SoftmaxLastDim;

/// The contiguous f32 rows of an op's input and their width.
fn rows<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<(&'a [f32], usize)> {
    let width = *layout.shape().dims().last().unwrap_or(&1);
    Ok((data(storage, layout, op)?, width.max(1)))
}

fn row_max(row: &[f32]) -> f32 {
    row.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "retort-softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (src, width) = rows(storage, layout, "softmax")?;
        let mut dst = vec![0f32; src.len()];
        for_chunks(&mut dst, width, |i, out| {
            let row = &src[i * width..(i + 1) * width];
            let max = row_max(row);
            if max == f32::NEG_INFINITY {
                return; // a row masked everywhere: zeros, as no token is attended
            }
            let mut sum = 0f32;
            for (x, y) in row.iter().zip(out.iter_mut()) {
                *y = (x - max).exp();
                sum += *y;
            }
            let inverse = 1.0 / sum;
            out.iter_mut().for_each(|y| *y *= inverse);
        });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let gy = (grad * res)?;
        let sum = gy.sum_keepdim(D::Minus1)?;
        Ok(Some((gy - res.broadcast_mul(&sum)?)?))
    }
}

/// Softmax over the last dimension of an f32 tensor.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxLastDim)
}

/// `log softmax(x)[t]` for each row of logits and its target.
struct TargetLogprobs {
    targets: Vec<u32>,
}

fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row_max(row);
    max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

impl CustomOp1 for TargetLogprobs {
    fn name(&self) -> &'static str {
        "retort-target-logprobs"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (logits, width) = rows(storage, layout, "target logprobs")?;
        if logits.len() != self.targets.len() * width {
            bail!("target logprobs: {} rows of logits for {} targets", logits.len() / width, self.targets.len());
        }
        let mut out = vec![0f32; self.targets.len()];
        for_chunks(&mut out, 1, |i, out| {
            let row = &logits[i * width..(i + 1) * width];
            out[0] = row[self.targets[i] as usize] - log_sum_exp(row);
        });
        Ok((CpuStorage::F32(out), Shape::from(self.targets.len())))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let width = arg.dim(1)?;
        let (res, grad) = (res.to_vec1::<f32>()?, grad.to_vec1::<f32>()?);
        let out = with_data(arg, self.name(), |logits| {
            let mut out = vec![0f32; logits.len()];
            for_chunks(&mut out, width, |i, out| {
                let row = &logits[i * width..(i + 1) * width];
                let t = self.targets[i] as usize;
                let lse = row[t] - res[i];
                for (o, x) in out.iter_mut().zip(row) {
                    *o = -grad[i] * (x - lse).exp();
                }
                out[t] += grad[i];
            });
            Ok(out)
        })?;
        Ok(Some(Tensor::from_vec(out, arg.shape(), &Device::Cpu)?))
    }
}

/// `log softmax(logits)[i, targets[i]]` for each row `i` of (n, vocab) logits: an (n) tensor.
pub(crate) fn target_logprobs(logits: &Tensor, targets: Vec<u32>) -> Result<Tensor> {
    logits.contiguous()?.apply_op1(TargetLogprobs { targets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// Whether two tensors agree element by element within `tolerance`.
    fn close(a: &Tensor, b: &Tensor, tolerance: f32) -> bool {
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < tolerance)
    }

    #[test]
    fn target_logprobs_match_candles_log_softmax_and_gather() {
        let data = [[0.5f32, -1.0, 2.0, 0.25], [3.0, 3.0, -2.0, 0.0], [1.0, 0.0, -1.0, 4.0]];
        let targets = vec![2u32, 0, 1];
        let ours = Var::new(&data, &Device::Cpu).unwrap();
        let theirs = Var::new(&data, &Device::Cpu).unwrap();
        let weights = Tensor::new(&[1f32, -2.0, 0.5], &Device::Cpu).unwrap();
        let y_ours = target_logprobs(ours.as_tensor(), targets.clone()).unwrap();
        let index = Tensor::from_vec(targets, (3, 1), &Device::Cpu).unwrap();
        let y_theirs = candle_nn::ops::log_softmax(theirs.as_tensor(), D::Minus1).unwrap().gather(&index, 1).unwrap().squeeze(1).unwrap();
        assert!(close(&y_ours, &y_theirs, 1e-5));
        let g_ours = (y_ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (y_theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(close(g_ours.get(&ours).unwrap(), g_theirs.get(&theirs).unwrap(), 1e-5));
    }

    #[test]
    fn matches_candles_softmax_forward_and_backward() {
        let data = [[0.5f32, -1.0, 2.0, f32::NEG_INFINITY], [3.0, 3.0, -2.0, 0.0]];
        let ours = Var::new(&data, &Device::Cpu).unwrap();
        let theirs = Var::new(&data, &Device::Cpu).unwrap();
        let weights = Tensor::new(&[[1f32, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, 1.0]], &Device::Cpu).unwrap();
        let y_ours = softmax_last_dim(ours.as_tensor()).unwrap();
        let y_theirs = candle_nn::ops::softmax(theirs.as_tensor(), D::Minus1).unwrap();
        assert!(close(&y_ours, &y_theirs, 1e-6));
        let g_ours = (y_ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (y_theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(close(g_ours.get(&ours).unwrap(), g_theirs.get(&theirs).unwrap(), 1e-6));
    }
}
